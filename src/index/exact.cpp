#include "index/exact.h"

#include <cblas.h>

#include <algorithm>
#include <queue>

namespace zeroshot::index {

std::vector<size_t> top_k_indices(const float* scores, size_t n, size_t k) {
  k = std::min(k, n);
  if (k == 0) return {};
  // "better" = higher score, then lower index; the heap's top is the worst of the k kept.
  auto better = [&](size_t a, size_t b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); };
  std::priority_queue<size_t, std::vector<size_t>, decltype(better)> heap(better);
  for (size_t i = 0; i < n; ++i) {
    if (heap.size() < k) heap.push(i);
    else if (better(i, heap.top())) {
      heap.pop();
      heap.push(i);
    }
  }
  std::vector<size_t> out(heap.size());
  for (size_t j = out.size(); j-- > 0;) {
    out[j] = heap.top();
    heap.pop();
  }
  return out;
}

void dot_all(const float* mat, size_t n, size_t dim, const float* q, float* scores) {
  if (n == 0) return;
  cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(dim), 1.0f, mat, static_cast<int>(dim),
              q, 1, 0.0f, scores, 1);
}

std::vector<Hit> exact_top_k(const Vectors& v, const float* q, size_t k) {
  std::vector<float> scores(v.rows());
  dot_all(v.data.data(), v.rows(), v.dim, q, scores.data());
  std::vector<Hit> out;
  for (size_t i : top_k_indices(scores.data(), scores.size(), k)) out.push_back({v.ids[i], scores[i]});
  return out;
}

std::vector<Pair> exact_pairs_above(const float* mat, size_t n, size_t dim, float threshold) {
  constexpr size_t B = 1024;
  std::vector<Pair> out;
  std::vector<float> c(B * B);
  for (size_t i0 = 0; i0 < n; i0 += B) {
    const size_t bi = std::min(B, n - i0);
    for (size_t j0 = i0; j0 < n; j0 += B) {
      const size_t bj = std::min(B, n - j0);
      // C[bi x bj] = A[i0:] * A[j0:]^T
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(bi), static_cast<int>(bj),
                  static_cast<int>(dim), 1.0f, mat + i0 * dim, static_cast<int>(dim), mat + j0 * dim,
                  static_cast<int>(dim), 0.0f, c.data(), static_cast<int>(bj));
      for (size_t a = 0; a < bi; ++a)
        for (size_t b = (j0 == i0 ? a + 1 : 0); b < bj; ++b)
          if (c[a * bj + b] >= threshold) out.push_back({i0 + a, j0 + b, c[a * bj + b]});
    }
  }
  return out;
}

}  // namespace zeroshot::index
