// zeroshot: the command-line tool. Each command lives in cmd_<name>.cpp.
#include <cstdio>
#include <exception>

#include "commands.h"
#include "zeroshot/error.h"
#include "zeroshot/version.h"

int main(int argc, char** argv) {
  CLI::App app{"zeroshot: exact zero-shot classification with contrastive models (CLIP for images, CLAP for audio)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "zeroshot " ZEROSHOT_VERSION);
  std::function<int()> action;
  zeroshot::cli::add_classify_command(app, &action);
  zeroshot::cli::add_embed_command(app, &action);
  zeroshot::cli::add_moderate_command(app, &action);
  zeroshot::cli::add_index_command(app, &action);
  zeroshot::cli::add_search_command(app, &action);
  zeroshot::cli::add_dedup_command(app, &action);
  zeroshot::cli::add_bench_command(app, &action);
  zeroshot::cli::add_eval_command(app, &action);
  zeroshot::cli::add_serve_command(app, &action);
  zeroshot::cli::add_quantize_command(app, &action);
  zeroshot::cli::add_score_command(app, &action);
  zeroshot::cli::add_rank_command(app, &action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return action ? action() : 0;
  } catch (const zeroshot::Error& e) {
    std::fprintf(stderr, "zeroshot: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "zeroshot: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zeroshot: %s\n", e.what());
    return 1;
  }
}
