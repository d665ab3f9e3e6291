// zeroshot search: the images most similar to a query (texts, images, weighted sums), indexing first like rclip.
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "commands.h"
#include "index/embeddings.h"
#include "index/query.h"
#include "index_cli.h"
#include "preview.h"

namespace zeroshot::cli {

namespace {

struct SearchArgs {
  ModelArgs model;
  IndexCliArgs index;
  std::vector<std::string> words, images, dirs;
  size_t top_k = 10;
  size_t nprobe = 0;
  bool all = false, no_index = false;
  bool filepath_only = false;  // -f, rclip's: --format paths
  bool preview = false;        // -p: images drawn under the table rows
  int preview_height = 400;
  std::string preview_protocol = "auto";
  std::string format;
  bool quiet = false;
  std::string embeddings, embeddings_index;  // --embeddings OUT [--embeddings-index FILE]
};

struct Found {
  std::string path, caption;
  float score = 0;
};

// --embeddings: the index of an embedding folder (index/embeddings.h) instead of the photo database. The query is
// embedded by the model recorded in the folder unless --model names one (then it must be that model).
std::vector<Found> search_embeddings(const SearchArgs& a, const std::vector<index::QueryTerm>& terms) {
  if (!a.dirs.empty() || a.all)  // (not --db: $ZEROSHOT_DB may set it for the photo index)
    throw Error("--embeddings", "searches an embedding folder: not with --dir or --all");
  const auto e = index::EmbeddingsIndex::open(a.embeddings, a.embeddings_index);
  ModelArgs m = a.model;
  if (!m.model_option || m.model_option->count() == 0) {
    if (e.plan().model.empty())
      throw Error(a.embeddings, "no zeroshot-inference.json: name the model that made the embeddings (--model)");
    m.model = e.plan().model;
    if (m.precision == "f32" && !e.plan().precision.empty()) m.precision = e.plan().precision;
  }
  auto model = m.load(a.quiet);
  e.check_model(*model);
  const std::vector<float> q = index::query_vector(*model, terms);
  std::vector<Found> out;
  for (auto& h : e.search(q.data(), a.top_k, a.nprobe))
    out.push_back({std::move(h.path), std::move(h.caption), h.score});
  return out;
}

// The photo database (indexing the folders first unless --no-index); nullopt when Ctrl-C stopped the indexing.
std::optional<std::vector<Found>> search_database(const SearchArgs& a, const std::vector<index::QueryTerm>& terms,
                                                  bool* unreadable) {
  const std::vector<std::string> dirs = a.dirs.empty() ? std::vector<std::string>{"."} : a.dirs;
  auto model = a.model.load(a.quiet);
  index::Store store = open_store(a.index, *model, !a.no_index);
  if (!a.no_index) {
    const index::IndexReport r = run_indexing(store, *model, dirs, a.index, a.quiet);
    if (!a.quiet || !r.failures.empty()) print_index_brief(r);
    if (r.interrupted) return std::nullopt;
    *unreadable = !r.failures.empty();
  }
  const std::vector<float> q = index::query_vector(*model, terms);
  index::SearchOptions o;
  o.top_k = a.top_k;
  o.ann_threshold = a.index.ann_threshold;
  o.nprobe = a.nprobe;
  if (!a.all)
    for (const auto& d : dirs) o.scope.push_back(index::absolute_path(d));
  index::SearchInfo info;
  std::vector<Found> out;
  for (auto& r : index::search(store, q.data(), o, &info)) out.push_back({std::move(r.path), "", r.score});
  if (!a.quiet && info.ann && info.ann_status.action != index::AnnStatus::Loaded)
    std::fprintf(stderr, "zeroshot: ANN index %s in %.1f s\n",
                 info.ann_status.action == index::AnnStatus::Built ? "built" : "updated", info.ann_status.seconds);
  return out;
}

int run(const SearchArgs& a) {
  const auto terms = index::parse_query(a.words, a.images);
  if (a.filepath_only && a.format != "auto" && a.format != "paths")
    throw Error("-f", "prints paths only (--format paths): not with --format " + a.format);
  if (a.preview && (a.filepath_only || (a.format != "auto" && a.format != "table")))
    throw Error("--preview", "draws images between the rows of the table: not with --format json or paths (-f)");
  const std::string f = a.filepath_only      ? "paths"
                        : a.format == "auto" ? (a.preview || stdout_is_tty() ? "table" : "json")
                                             : a.format;
  const auto env = [](const char* name) -> const char* { return std::getenv(name); };
  const PreviewProtocol protocol = a.preview ? preview_protocol(env, a.preview_protocol) : PreviewProtocol::None;
  if (a.preview && protocol == PreviewProtocol::None)
    std::fprintf(stderr,
                 "zeroshot: --preview: this terminal is not known to show images (kitty, Ghostty, iTerm2, WezTerm, "
                 "Konsole, mintty, foot, mlterm); --preview-protocol kitty|iterm2|sixel chooses one\n");
  std::vector<Found> results;
  bool unreadable = false;  // files met while indexing that could not be read: named on stderr
  if (!a.embeddings.empty()) {
    results = search_embeddings(a, terms);
  } else {
    auto found = search_database(a, terms, &unreadable);
    if (!found) return kInterruptedExit;
    results = std::move(*found);
  }
  size_t rank = 0;
  for (const auto& r : results) {
    ++rank;
    if (f == "json")
      std::printf("{\"rank\": %zu, \"path\": %s, \"score\": %s%s}\n", rank, json_string(r.path).c_str(),
                  json_float(r.score).c_str(),
                  r.caption.empty() ? "" : (", \"caption\": " + json_string(r.caption)).c_str());
    else if (f == "paths") std::printf("%s\n", r.path.c_str());
    else std::printf("%3zu  %7.4f  %s\n", rank, r.score, r.path.c_str());
    if (protocol != PreviewProtocol::None) {
      try {
        const std::string img = preview_escape(r.path, protocol, a.preview_height, preview_in_tmux(env),
                                               static_cast<uint64_t>(a.model.max_megapixels * 1e6));
        std::fwrite(img.data(), 1, img.size(), stdout);
      } catch (const Error& e) {
        std::fprintf(stderr, "zeroshot: %s\n", explain_limits(e.what()).c_str());
      }
    }
  }
  if (results.empty() && f == "table")
    std::printf("no images indexed under %s\n", !a.embeddings.empty() ? a.embeddings.c_str()
                                                : a.all               ? "the index"
                                                                      : "these folders");
  return unreadable ? kExitSomeInputsFailed : kExitOk;
}

}  // namespace

void add_search_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<SearchArgs>();
  CLI::App* c = app.add_subcommand("search", "Find the images most similar to a text, an image, or a mix of them");
  a->model.add_to(*c);
  a->index.add_to(*c);
  c->add_option("query", a->words,
                "Query words: terms joined by + and -, \"W:term\" weights a term; a term that "
                "names an image file (or starts with ./ / ../ ~/) is an image");
  c->add_option("--image", a->images, "An image to search by (repeatable; added to the query)")
      ->allow_extra_args(false);
  // rclip's short flags where they do not clash: -t (top), -f (filepath only), -n (no indexing), -p (preview).
  c->add_option("-k,-t,--top-k,--top", a->top_k, "Results to show")->default_val(10)->check(CLI::Range(1, 1000000));
  c->add_option("-d,--dir", a->dirs,
                "Search (and first index) the images under this folder (repeatable; "
                "default: the current folder)")
      ->allow_extra_args(false);
  c->add_flag("--all", a->all, "Search every image in the index, not only those under --dir");
  c->add_flag("-n,--no-index,--no-indexing", a->no_index, "Do not index first: search the database as it is");
  c->add_flag("-f,--filepath-only", a->filepath_only, "Print only the paths, one per line (= --format paths)");
  c->add_flag("-p,--preview", a->preview,
              "Draw each image under its row in the terminal (kitty, Ghostty, iTerm2, WezTerm, Konsole, mintty, "
              "foot, mlterm; inside tmux too)");
  c->add_option("-H,--preview-height", a->preview_height, "Height of the --preview images, pixels")
      ->default_val(400)
      ->check(CLI::Range(8, 4096));
  c->add_option("--preview-protocol", a->preview_protocol,
                "auto (from TERM, TERM_PROGRAM, KITTY_WINDOW_ID, ...), kitty, iterm2 or sixel")
      ->default_val("auto")
      ->check(CLI::IsMember({"auto", "kitty", "iterm2", "sixel"}));
  c->add_option("--nprobe", a->nprobe, "ANN lists scanned per query (0: default; more: better recall, slower)")
      ->default_val(0);
  c->add_option("--embeddings", a->embeddings,
                "Search an embedding folder (zeroshot.inference's output, indexed by zeroshot index-embeddings) "
                "instead of the photo database; the model is the one recorded there");
  c->add_option("--embeddings-index", a->embeddings_index, "Its index file (default OUT/index.faiss)");
  c->add_option("--format", a->format,
                "Output: table, json (one object per line) or paths (one per line); "
                "default: table on a terminal, json otherwise")
      ->default_val("auto")
      ->check(CLI::IsMember({"auto", "table", "json", "paths"}));
  c->add_flag("-q,--quiet", a->quiet, "No progress bars or notes");
  c->footer(
      "Examples:\n"
      "  zeroshot search golden retriever                      # text\n"
      "  zeroshot search ./pool.jpg                            # image (or --image pool.jpg)\n"
      "  zeroshot search \"2:golden retriever\" + ./pool.jpg - fruit\n"
      "  zeroshot search -t 5 -p sunset                        # rclip's flags: top 5, previews in the terminal\n"
      "Scores are cosines between each image and the normalized weighted sum of the terms' normalized\n"
      "embeddings. Like rclip, the folder searched (--dir, default the current one) is indexed first\n"
      "(incrementally); --no-index skips that. JSON: {\"rank\", \"path\", \"score\"} per line, best first.\n"
      "--embeddings OUT searches what zeroshot.inference embedded (after zeroshot index-embeddings OUT): paths\n"
      "and captions from its metadata.");
  c->callback([a, action] { *action = [a] { return run(*a); }; });
}

}  // namespace zeroshot::cli
