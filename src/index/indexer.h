// Incremental indexing: bring the index in step with folders on disk, embedding only what is new.
//
// For each image file under the roots: same size and mtime as its row -> unchanged (not even hashed). Otherwise it
// is hashed (SHA-256) and
//   - same content as its row (a touched file)       -> size/mtime updated, not re-embedded;
//   - content found in a row whose file has gone     -> that row moves to the new path (a rename), not re-embedded;
//   - content found in another row                   -> a copy of that row's embedding (a duplicate file);
//   - else                                           -> embedded (once per distinct content).
// Rows under the roots whose files are gone are removed. Files that cannot be read or decoded are recorded
// (failures table) and skipped until they change. Work is committed every `batch` embedded images (WAL), so an
// interrupted run (kill -9 included) loses at most one batch and the next run resumes.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "index/store.h"
#include "zeroshot/zeroshot.h"

namespace zeroshot::index {

// Model::embed_image_files' shape: embeds `paths` in batches, on_result(i, embedding or nullptr, error) in order.
using EmbedFilesFn =
    std::function<void(const std::vector<std::string>& paths, size_t batch, const Model::ImageResultFn& on_result)>;
EmbedFilesFn embed_with(const Model& model);

struct IndexOptions {
  std::vector<std::string> excludes;        // globs (scan.h)
  size_t batch = 16;                        // images per encoder batch and per commit
  unsigned threads = 0;                     // hashing threads; 0: all cores
  bool progress = false;                    // progress bars on stderr (when it is a terminal)
  const std::atomic<bool>* stop = nullptr;  // when set: finish the current image, commit, return (interrupted)
};

struct IndexReport {
  size_t files = 0;                                           // image files found under the roots
  size_t unchanged = 0;                                       // skipped without hashing
  size_t embedded = 0;                                        // new or changed content, embedded
  size_t touched = 0;                                         // changed mtime/size, same content
  size_t renamed = 0;                                         // moved rows (content found under a path that has gone)
  size_t copied = 0;                                          // duplicates of content already embedded
  size_t removed = 0;                                         // rows whose files have gone
  size_t skipped_failed = 0;                                  // failed before and unchanged since: not tried again
  std::vector<std::pair<std::string, std::string>> failures;  // (path, error) met in this run, scan errors included
  std::vector<std::string> other_files;  // files under the roots that are not images by their extension (scan.h)
  bool interrupted = false;
  double seconds = 0, embed_seconds = 0;
};

IndexReport update_index(Store& store, const std::vector<std::string>& roots, const EmbedFilesFn& embed,
                         const IndexOptions& opt = {});

}  // namespace zeroshot::index
