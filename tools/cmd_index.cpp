// zeroshot index: embed every image under folders into the index database (incremental, resumable).
#include <csignal>
#include <cstdio>

#include "commands.h"
#include "index/fingerprint.h"
#include "index_cli.h"

namespace zeroshot::cli {

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_sigint(int) { g_stop.store(true); }

// Ctrl-C: finish the image in hand, commit, report. A second Ctrl-C kills at once (SA_RESETHAND) — also safe.
struct SigintGuard {
  struct sigaction old {};
  SigintGuard() {
    g_stop.store(false);
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
  }
  ~SigintGuard() { sigaction(SIGINT, &old, nullptr); }
};

struct IndexCmdArgs {
  ModelArgs model;
  IndexCliArgs index;
  std::vector<std::string> roots;
  std::string format;
  bool quiet = false;
};

std::string human_summary(const index::IndexReport& r) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "embedded %zu, unchanged %zu, touched %zu, renamed %zu, copied %zu, removed %zu",
                r.embedded, r.unchanged, r.touched, r.renamed, r.copied, r.removed);
  std::string s = buf;
  if (r.skipped_failed) s += ", " + std::to_string(r.skipped_failed) + " unreadable (unchanged, skipped)";
  return s;
}

int run(const IndexCmdArgs& a) {
  const Format fmt = resolve_format(a.format);
  auto model = a.model.load(a.quiet);
  index::Store store = open_store(a.index, *model, true);
  const index::IndexReport r = run_indexing(store, *model, a.roots, a.index, a.quiet);
  if (!r.interrupted) refresh_ann(store, a.index, a.quiet);
  const size_t total = store.count();
  const double rate = r.embed_seconds > 0 ? static_cast<double>(r.embedded) / r.embed_seconds : 0;
  if (fmt == Format::Json) {
    std::string failures = "[";
    for (size_t i = 0; i < r.failures.size(); ++i)
      failures += (i ? ", " : "") + std::string("{\"path\": ") + json_string(r.failures[i].first) +
                  ", \"error\": " + json_string(r.failures[i].second) + "}";
    failures += "]";
    std::string others = "[";  // the first few, as the text summary names them
    for (size_t i = 0; i < r.other_files.size() && i < 20; ++i)
      others += (i ? ", " : "") + json_string(r.other_files[i]);
    others += "]";
    std::printf(
        "{\"db\": %s, \"images\": %zu, \"files\": %zu, \"embedded\": %zu, \"unchanged\": %zu, \"touched\": %zu, "
        "\"renamed\": %zu, \"copied\": %zu, \"removed\": %zu, \"skipped_unreadable\": %zu, \"failures\": %s, "
        "\"other_files\": %zu, \"other_file_examples\": %s, \"interrupted\": %s, \"seconds\": %s, "
        "\"images_per_second\": %s}\n",
        json_string(store.path()).c_str(), total, r.files, r.embedded, r.unchanged, r.touched, r.renamed, r.copied,
        r.removed, r.skipped_failed, failures.c_str(), r.other_files.size(), others.c_str(),
        r.interrupted ? "true" : "false", json_float(static_cast<float>(r.seconds)).c_str(),
        json_float(static_cast<float>(rate)).c_str());
  } else {
    std::printf("%s: %zu images under %zu folder(s), %zu in the index (%.1f s%s)\n", store.path().c_str(), r.files,
                a.roots.size(), total, r.seconds,
                rate > 0 ? (", " + std::to_string(static_cast<int>(rate + 0.5)) + " images/s").c_str() : "");
    std::printf("  %s\n", human_summary(r).c_str());
    if (!r.failures.empty()) {
      std::printf("  %zu file(s) could not be read (skipped until they change):\n", r.failures.size());
      for (const auto& [p, e] : r.failures)
        std::printf("    %s\n", e.rfind(p, 0) == 0 ? e.c_str() : (p + ": " + e).c_str());  // errors name the file
    }
    if (!r.other_files.empty()) std::printf("  %s\n", other_files_summary(r.other_files).c_str());
    if (r.interrupted) std::printf("  interrupted: what was embedded is saved; run again to go on\n");
  }
  if (r.interrupted) return kInterruptedExit;
  // Files known unreadable from an earlier run are skipped, not read again: reported then, counted now.
  return r.failures.empty() ? kExitOk : kExitSomeInputsFailed;
}

}  // namespace

void IndexCliArgs::add_to(CLI::App& app) {
  app.add_option("--db", db,
                 "Index database file (default: $XDG_DATA_HOME/zeroshot/index.db or "
                 "~/.local/share/zeroshot/index.db)")
      ->envname("ZEROSHOT_DB");
  app.add_option("--exclude", excludes,
                 "Skip files and folders whose name or path (relative to the folder "
                 "given) matches this glob (repeatable), e.g. \"*.gif\", \".thumbnails\"")
      ->allow_extra_args(false);  // one glob each: `--exclude '*.gif' DIR` must leave DIR alone
  app.add_option("--batch", batch, "Images per encoder batch and per database commit")
      ->default_val(16)
      ->check(CLI::Range(1, 4096));
  app.add_flag("--reindex", reindex, "Empty the index and embed everything again (needed after changing model)");
  app.add_option("--ann-threshold", ann_threshold,
                 "Images at which search uses the FAISS ANN index instead of an exact scan (0: never)")
      ->default_val(index::kDefaultAnnThreshold);
}

std::string IndexCliArgs::db_path() const { return db.empty() ? index::default_db_path() : db; }

index::Store open_store(const IndexCliArgs& a, const Model& model, bool create) {
  // Model::fingerprint covers the weights, the preprocessing and the precision: an index made at f32 is never
  // mixed with int8 embeddings.
  index::ModelId id{model.name(), model.fingerprint(), model.embedding_dim()};
  return index::Store::open(a.db_path(), id, create, a.reindex);
}

index::IndexReport run_indexing(index::Store& store, const Model& model, const std::vector<std::string>& roots,
                                const IndexCliArgs& a, bool quiet) {
  SigintGuard guard;
  index::IndexOptions o;
  o.excludes = a.excludes;
  o.batch = a.batch;
  o.progress = !quiet;
  o.stop = &g_stop;
  return index::update_index(store, roots, index::embed_with(model), o);
}

void print_index_brief(const index::IndexReport& r) {
  if (r.embedded + r.touched + r.renamed + r.copied + r.removed > 0 || r.interrupted)
    std::fprintf(stderr, "zeroshot: index: %s%s (%.1f s)\n", human_summary(r).c_str(),
                 r.interrupted ? ", interrupted" : "", r.seconds);
  for (const auto& [p, e] : r.failures)
    std::fprintf(stderr, "zeroshot: skipped %s\n", explain_limits(e.rfind(p, 0) == 0 ? e : p + ": " + e).c_str());
}

void refresh_ann(const index::Store& store, const IndexCliArgs& a, bool quiet) {
  if (a.ann_threshold == 0 || store.count() < a.ann_threshold) return;
  index::AnnStatus st;
  index::ann_for(store, {}, &st);
  if (!quiet && st.action != index::AnnStatus::Loaded)
    std::fprintf(stderr, "zeroshot: ANN index %s in %.1f s%s%s\n",
                 st.action == index::AnnStatus::Built ? "built" : "updated", st.seconds, st.note.empty() ? "" : ": ",
                 st.note.c_str());
}

void add_index_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<IndexCmdArgs>();
  CLI::App* c = app.add_subcommand("index", "Embed every image under folders into the search index (incremental)");
  a->model.add_to(*c);
  a->index.add_to(*c);
  c->add_option("folders", a->roots, "Folders (walked recursively) or image files")->required();
  add_format_option(*c, &a->format);
  c->add_flag("-q,--quiet", a->quiet, "No progress bars");
  c->footer(
      "Only new and changed files are embedded; renamed or moved files (same content) are not; rows of deleted\n"
      "files are dropped. Work is committed every --batch images: Ctrl-C or a crash loses at most one batch, and\n"
      "the next run goes on. Files that cannot be decoded are listed and skipped (until they change).\n"
      "One database holds one model's embeddings: another model needs --reindex or another --db.\n"
      "JSON: {\"db\", \"images\", \"files\", \"embedded\", \"unchanged\", \"touched\", \"renamed\", \"copied\",\n"
      "\"removed\", \"skipped_unreadable\", \"failures\": [{\"path\", \"error\"}], \"interrupted\", \"seconds\",\n"
      "\"images_per_second\"}\n"
      "Exit code: 0 done; 1 some files could not be read (listed; the rest are indexed); 2 error; 130 interrupted.");
  c->callback([a, action] { *action = [a] { return run(*a); }; });
}

}  // namespace zeroshot::cli
