// Comparing computed floats with expected ones: the error measures the parity tests use, and the tolerances of
// ../shared/fixtures/README.md (CLIP) and fixtures/clap/README.md (CLAP) as named constants, so a test cites the
// line of the table it holds rather than a bare number.
// NaN is never "close": a NaN difference makes max_abs_diff NaN, which fails every <= comparison.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace zeroshot::testing {

// fixtures/README.md, "Tolerances the tests should hold" (CLIP).
inline constexpr float kPixelTol = 1e-5f;          // pixel_values: max abs diff
inline constexpr float kCmykPixelMeanTol = 0.02f;  // pixel_values of cmyk.jpg: mean abs diff
inline constexpr float kEmbedRelTol = 1e-4f;       // image_embeds, text_embeds: max abs diff / max abs value
inline constexpr float kLogitTol = 1e-3f;          // logits_per_image: max abs diff
inline constexpr float kScoreTol = 1e-4f;          // zero_shot scores: max abs diff
// fixtures/clap/README.md, "Tolerances a C++ engine should hold" (CLAP).
inline constexpr float kAudioEmbedRelTol = 2e-4f;  // audio_pooled, audio_embeds, audio_features
inline constexpr float kTextEmbedRelTol = 1e-4f;   // text_pooled, text_embeds, text_features
inline constexpr float kClapLogitTol = 1e-3f;      // logits_per_audio, logits_per_text

float max_abs(const float* a, size_t n);
float max_abs(const std::vector<float>& a);
// max |a[i] - b[i]|; NaN when any difference is NaN.
float max_abs_diff(const float* a, const float* b, size_t n);
// The same over two vectors; sizes that differ are a test failure and give +infinity.
float max_abs_diff(const std::vector<float>& got, const std::vector<float>& want);
// max_abs_diff(got, want) / max_abs(want): the error relative to the expected tensor's scale.
float rel_err(const std::vector<float>& got, const std::vector<float>& want);

// a.b / (|a| |b|), accumulated in double (a test's measure of an embedding's direction, not the engine's own).
template <class T>
double cosine(const T* a, const T* b, size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * static_cast<double>(b[i]);
    aa += static_cast<double>(a[i]) * static_cast<double>(a[i]);
    bb += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  return ab / std::sqrt(aa * bb);
}
// The smallest cosine of a row of `a` with the same row of `b` (rows of `dim` floats, row-major): how far a lower
// precision turned the worst embedding. NaN when any row's cosine is NaN; sizes that differ are a test failure and
// give NaN.
double min_cosine(const std::vector<float>& a, const std::vector<float>& b, size_t dim);
// The same over one vector per row.
double min_cosine(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b);

// Row by row (rows x cols, row-major): each row of `got` within `tol` (max abs diff) of the same row of `want`;
// the failure names the first row that is not, `what` and `names[row]` when given.
::testing::AssertionResult rows_near(const float* got, const float* want, size_t rows, size_t cols, float tol,
                                     const std::vector<std::string>& names = {});

// A text encoder's rows must not depend on the batch around them (padding, lengths, order). Encodes `ids` as one
// batch, each sequence alone, and reversed with the first three repeated after them; returns the largest max-abs
// difference of any row from its row in the first batch (GEMM rounding only, for a correct encoder).
using EncodeTexts = std::function<void(const std::vector<std::vector<int32_t>>& ids, float* out)>;
float batch_composition_error(const EncodeTexts& encode, const std::vector<std::vector<int32_t>>& ids, size_t dim,
                              std::vector<float>* together = nullptr);

}  // namespace zeroshot::testing
