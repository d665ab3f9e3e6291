// What `zeroshot index`, `search` and `dedup` share (implemented in cmd_index.cpp): the database and indexing
// options, and one incremental indexing pass with a progress bar, Ctrl-C handling and a summary.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli_common.h"
#include "exit_codes.h"
#include "index/indexer.h"
#include "index/search.h"

namespace zeroshot::cli {

struct IndexCliArgs {
  std::string db;                     // "" -> index::default_db_path()
  std::vector<std::string> excludes;  // --exclude globs
  size_t batch = 16;
  bool reindex = false;
  size_t ann_threshold = index::kDefaultAnnThreshold;
  void add_to(CLI::App& app);
  std::string db_path() const;
};

// Opens (creating) the database for `model`.
index::Store open_store(const IndexCliArgs& a, const Model& model, bool create);

// Indexes `roots` into `store`; Ctrl-C stops after the current image (what is done stays committed).
// Progress bars unless quiet. Returns the report; the caller prints it.
index::IndexReport run_indexing(index::Store& store, const Model& model, const std::vector<std::string>& roots,
                                const IndexCliArgs& a, bool quiet);

// Brief: one line on stderr when something changed, plus the files that could not be read.
void print_index_brief(const index::IndexReport& r);

// Brings the ANN index in step when the database is over the threshold (so the next search need not).
void refresh_ann(const index::Store& store, const IndexCliArgs& a, bool quiet);

// Exit code for an interrupted command (128 + SIGINT).
inline constexpr int kInterruptedExit = kExitInterrupted;

}  // namespace zeroshot::cli
