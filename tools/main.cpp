// zeroshot: the command-line tool. Each command lives in cmd_<name>.cpp.
#include <cstdio>
#include <exception>

#include "cli_common.h"
#include "commands.h"
#include "exit_codes.h"
#include "zeroshot/error.h"
#include "zeroshot/version.h"

int main(int argc, char** argv) {
  CLI::App app{
      "zeroshot: exact zero-shot classification with contrastive models (CLIP and SigLIP for images, CLAP for audio)"};
  app.require_subcommand(1);
  app.footer(zeroshot::cli::kExitCodesHelp);
  app.set_version_flag("--version", "zeroshot " ZEROSHOT_VERSION);
  std::function<int()> action;
  zeroshot::cli::add_classify_command(app, &action);
  zeroshot::cli::add_embed_command(app, &action);
  zeroshot::cli::add_moderate_command(app, &action);
  zeroshot::cli::add_index_command(app, &action);
  zeroshot::cli::add_search_command(app, &action);
  zeroshot::cli::add_index_embeddings_command(app, &action);
  zeroshot::cli::add_dedup_command(app, &action);
  zeroshot::cli::add_bench_command(app, &action);
  zeroshot::cli::add_eval_command(app, &action);
  zeroshot::cli::add_serve_command(app, &action);
  zeroshot::cli::add_quantize_command(app, &action);
  zeroshot::cli::add_score_command(app, &action);
  zeroshot::cli::add_rank_command(app, &action);
  zeroshot::cli::add_fit_command(app, &action);
  zeroshot::cli::add_explain_command(app, &action);
  zeroshot::cli::add_cache_command(app, &action);
  zeroshot::cli::add_global_options(app);
  zeroshot::cli::prepare_parse(app);
  try {
    app.parse(argc, argv);
    zeroshot::cli::finish_parse(app);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints the help, the version or the usage error
    return code == 0 ? 0 : zeroshot::cli::kExitError;
  }
  try {
    return action ? action() : 0;
  } catch (const zeroshot::Error& e) {
    std::fprintf(stderr, "zeroshot: %s\n", zeroshot::cli::explain_limits(e.what()).c_str());
    return zeroshot::cli::kExitError;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "zeroshot: out of memory\n");
    return zeroshot::cli::kExitError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zeroshot: %s\n", e.what());
    return zeroshot::cli::kExitError;
  }
}
