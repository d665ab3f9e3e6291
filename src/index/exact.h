// Exact nearest neighbours by inner product (cosine, for normalized rows): a matrix-vector product (OpenBLAS sgemv)
// and a top-k heap; all pairs above a threshold by blocked matrix products (for dedup).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "index/store.h"

namespace zeroshot::index {

struct Hit {
  int64_t id = 0;
  float score = 0;
};

// Indexes of the k largest scores, best first; ties broken by lower index.
std::vector<size_t> top_k_indices(const float* scores, size_t n, size_t k);

// scores[i] = dot(mat row i, q) for n rows of dim.
void dot_all(const float* mat, size_t n, size_t dim, const float* q, float* scores);

// The k rows of `v` most similar to q, best first (ties: lower id first).
std::vector<Hit> exact_top_k(const Vectors& v, const float* q, size_t k);

struct Pair {
  size_t a = 0, b = 0;  // row indexes, a < b
  float score = 0;
};
// Every pair of rows with dot >= threshold.
std::vector<Pair> exact_pairs_above(const float* mat, size_t n, size_t dim, float threshold);

}  // namespace zeroshot::index
