// Searching the index and finding near-duplicates in it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "index/ann.h"
#include "index/store.h"

namespace zeroshot::index {

// Rows in scope at which search switches from exact to the ANN index.
inline constexpr size_t kDefaultAnnThreshold = 50000;

struct SearchOptions {
  size_t top_k = 10;
  Scope scope;                                  // empty: the whole index
  size_t ann_threshold = kDefaultAnnThreshold;  // 0: always exact
  size_t nprobe = 0;                            // 0: default_nprobe
  AnnOptions ann;
};

struct SearchResult {
  int64_t id = 0;
  std::string path;
  float score = 0;  // cosine
};

struct SearchInfo {
  size_t candidates = 0;  // rows in scope
  bool ann = false;
  AnnStatus ann_status;
};

// The top_k rows in scope most similar to `q` (normalized, the store's dim), best first. Exact (a matrix-vector
// product over the rows loaded from SQLite) under ann_threshold rows; the ANN index (kept in step, ann_for) above,
// falling back to exact when the lists it scans hold fewer than top_k rows of the scope.
std::vector<SearchResult> search(const Store& store, const float* q, const SearchOptions& opt,
                                 SearchInfo* info = nullptr);

struct DuplicateMember {
  std::string path;
  int64_t size = 0;
  float score = 0;  // cosine to the group's first member
};
using DuplicateGroup = std::vector<DuplicateMember>;

struct DedupOptions {
  float threshold = 0.94f;
  size_t ann_threshold = kDefaultAnnThreshold;  // rows at which pairs come from an IVF range search
  size_t nprobe = 0;
};

// Groups of images in scope linked by cosine >= threshold (connected components of that graph). In a group the
// largest file comes first, the rest by cosine to it; groups in path order of their first member.
std::vector<DuplicateGroup> find_duplicates(const Store& store, const Scope& scope, const DedupOptions& opt);

}  // namespace zeroshot::index
