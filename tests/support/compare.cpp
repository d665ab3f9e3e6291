#include "support/compare.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace zeroshot::testing {

float max_abs(const float* a, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i]));
  return m;
}

float max_abs(const std::vector<float>& a) { return max_abs(a.data(), a.size()); }

float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) {
    const float d = std::fabs(a[i] - b[i]);
    if (std::isnan(d)) return d;  // std::max would drop it, and a later element would hide it
    m = std::max(m, d);
  }
  return m;
}

float max_abs_diff(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  if (got.size() != want.size()) return std::numeric_limits<float>::infinity();
  return max_abs_diff(got.data(), want.data(), got.size());
}

float rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  return max_abs_diff(got, want) / max_abs(want);
}

namespace {

// std::min would drop a NaN (every comparison with it is false) and let a broken row pass.
double worse(double worst, double c) { return std::isnan(c) || c < worst ? c : worst; }

}  // namespace

double min_cosine(const std::vector<float>& a, const std::vector<float>& b, size_t dim) {
  EXPECT_EQ(a.size(), b.size());
  if (a.size() != b.size() || dim == 0) return std::numeric_limits<double>::quiet_NaN();
  double worst = 1;
  for (size_t r = 0; r < a.size() / dim && !std::isnan(worst); ++r)
    worst = worse(worst, cosine(&a[r * dim], &b[r * dim], dim));
  return worst;
}

double min_cosine(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  EXPECT_EQ(a.size(), b.size());
  if (a.size() != b.size()) return std::numeric_limits<double>::quiet_NaN();
  double worst = 1;
  for (size_t r = 0; r < a.size() && !std::isnan(worst); ++r) {
    EXPECT_EQ(a[r].size(), b[r].size()) << "row " << r;
    if (a[r].size() != b[r].size()) return std::numeric_limits<double>::quiet_NaN();
    worst = worse(worst, cosine(a[r].data(), b[r].data(), a[r].size()));
  }
  return worst;
}

::testing::AssertionResult rows_near(const float* got, const float* want, size_t rows, size_t cols, float tol,
                                     const std::vector<std::string>& names) {
  for (size_t r = 0; r < rows; ++r) {
    const float d = max_abs_diff(got + r * cols, want + r * cols, cols);
    if (!(d <= tol))
      return ::testing::AssertionFailure() << "row " << r << (r < names.size() ? " " + names[r] : std::string())
                                           << ": max abs diff " << d << " > " << tol;
  }
  return ::testing::AssertionSuccess();
}

float batch_composition_error(const EncodeTexts& encode, const std::vector<std::vector<int32_t>>& ids, size_t dim,
                              std::vector<float>* together) {
  const size_t n = ids.size();
  std::vector<float> all(n * dim);
  encode(ids, all.data());
  float worst = 0;
  for (size_t i = 0; i < n; ++i) {
    std::vector<float> one(dim);
    encode({ids[i]}, one.data());
    worst = std::max(worst, max_abs_diff(one.data(), &all[i * dim], dim));
  }
  std::vector<std::vector<int32_t>> mixed(ids.rbegin(), ids.rend());
  const size_t repeated = std::min<size_t>(3, n);
  mixed.insert(mixed.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(repeated));
  std::vector<float> out(mixed.size() * dim);
  encode(mixed, out.data());
  for (size_t i = 0; i < n; ++i) worst = std::max(worst, max_abs_diff(&out[(n - 1 - i) * dim], &all[i * dim], dim));
  for (size_t i = 0; i < repeated; ++i) worst = std::max(worst, max_abs_diff(&out[(n + i) * dim], &all[i * dim], dim));
  if (together) *together = std::move(all);
  return worst;
}

}  // namespace zeroshot::testing
