// zeroshot dedup: groups of near-duplicate images (cosine >= threshold) under folders.
#include <cstdio>

#include "commands.h"
#include "index_cli.h"
#include "util/progress.h"

namespace zeroshot::cli {

namespace {

struct DedupArgs {
  ModelArgs model;
  IndexCliArgs index;
  std::vector<std::string> roots;
  float threshold = 0.94f;
  bool no_index = false;
  std::string format;
  bool quiet = false;
};

int run(const DedupArgs& a) {
  const Format fmt = resolve_format(a.format);
  auto model = a.model.load(a.quiet);
  index::Store store = open_store(a.index, *model, !a.no_index);
  bool unreadable = false;  // files met while indexing that could not be read: named on stderr
  if (!a.no_index) {
    const index::IndexReport r = run_indexing(store, *model, a.roots, a.index, a.quiet);
    if (!a.quiet || !r.failures.empty()) print_index_brief(r);
    if (r.interrupted) return kInterruptedExit;
    unreadable = !r.failures.empty();
  }
  index::Scope scope;
  for (const auto& d : a.roots) scope.push_back(index::absolute_path(d));
  index::DedupOptions o;
  o.threshold = a.threshold;
  o.ann_threshold = a.index.ann_threshold;
  const auto groups = index::find_duplicates(store, scope, o);
  size_t g = 0;
  for (const auto& grp : groups) {
    ++g;
    if (fmt == Format::Json) {
      std::string line = "{\"group\": " + std::to_string(g) + ", \"images\": [";
      for (size_t i = 0; i < grp.size(); ++i)
        line += (i ? ", " : "") + std::string("{\"path\": ") + json_string(grp[i].path) +
                ", \"size\": " + std::to_string(grp[i].size) + ", \"score\": " + json_float(grp[i].score) + "}";
      std::printf("%s]}\n", line.c_str());
    } else {
      std::printf("group %zu (%zu images)\n", g, grp.size());
      for (const auto& m : grp)
        std::printf("  %7.4f  %9s  %s\n", m.score, util::format_bytes(static_cast<double>(m.size)).c_str(),
                    m.path.c_str());
    }
  }
  if (fmt == Format::Table && groups.empty()) std::printf("no near-duplicates (cosine >= %.3f)\n", a.threshold);
  return unreadable ? kExitSomeInputsFailed : kExitOk;
}

}  // namespace

void add_dedup_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<DedupArgs>();
  CLI::App* c = app.add_subcommand("dedup", "List groups of near-duplicate images under folders");
  a->model.add_to(*c);
  a->index.add_to(*c);
  c->add_option("folders", a->roots, "Folders (indexed first, incrementally) or image files")->required();
  c->add_option("-t,--threshold", a->threshold, "Cosine at or above which two images are near-duplicates")
      ->default_val(0.94f)
      ->check(CLI::Range(-1.0f, 1.0f));
  c->add_flag("--no-index", a->no_index, "Do not index first: use the database as it is");
  add_format_option(*c, &a->format);
  c->add_flag("-q,--quiet", a->quiet, "No progress bars or notes");
  c->footer(
      "Groups are connected components of the graph \"cosine >= threshold\". In a group the largest file comes\n"
      "first; each score is the cosine to it. JSON: one line per group:\n"
      "  {\"group\": N, \"images\": [{\"path\", \"size\", \"score\"}, ...]}");
  c->callback([a, action] { *action = [a] { return run(*a); }; });
}

}  // namespace zeroshot::cli
