// Each command registers itself on the CLI11 app and, when chosen, sets the action main() runs.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace zeroshot::cli {

void add_classify_command(CLI::App& app, std::function<int()>* action);
void add_embed_command(CLI::App& app, std::function<int()>* action);
void add_moderate_command(CLI::App& app, std::function<int()>* action);
void add_index_command(CLI::App& app, std::function<int()>* action);
void add_search_command(CLI::App& app, std::function<int()>* action);
void add_index_embeddings_command(CLI::App& app, std::function<int()>* action);
void add_dedup_command(CLI::App& app, std::function<int()>* action);
void add_bench_command(CLI::App& app, std::function<int()>* action);
void add_eval_command(CLI::App& app, std::function<int()>* action);
void add_serve_command(CLI::App& app, std::function<int()>* action);
void add_quantize_command(CLI::App& app, std::function<int()>* action);
void add_score_command(CLI::App& app, std::function<int()>* action);
void add_rank_command(CLI::App& app, std::function<int()>* action);
void add_fit_command(CLI::App& app, std::function<int()>* action);
void add_explain_command(CLI::App& app, std::function<int()>* action);
void add_cache_command(CLI::App& app, std::function<int()>* action);

}  // namespace zeroshot::cli
