// Int4 weight-only layers (nn/int4_gemm.h): the quantization's contract, and PackedLinear at Int4 on both paths
// (AVX-512 dequantized panels, generic OpenBLAS blocks) against a double-precision product with the dequantized
// weights, at ragged sizes (k not a multiple of the group, n not of the panel width), every epilogue and threads.
#include "nn/int4_gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "nn/linear.h"
#include "nn/ops.h"
#include "nn/thread_pool.h"
#include "support/activations.h"
#include "support/random.h"
#include "zeroshot/error.h"

namespace zeroshot::nn {
namespace {

using zeroshot::testing::act_ref;
using zeroshot::testing::randn;

std::vector<KernelChoice> choices() {
  std::vector<KernelChoice> c = {KernelChoice::Generic};
  if (avx512_kernels(Precision::Int4)) c.push_back(KernelChoice::Auto);
  return c;
}

TEST(Int4Quantize, ErrorWithinHalfAStepAndGroupRangeKept) {
  for (const int group : {32, 64, 128}) {
    const int n = 5, k = 200;  // 200: a short last group for every group size
    const std::vector<float> w = randn(static_cast<size_t>(n) * k, 7);
    const Int4Weights q = quantize_int4(w.data(), n, k, group);
    ASSERT_EQ(q.groups(), (k + group - 1) / group);
    const std::vector<float> d = dequantize_int4(q);
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < k; ++i) {
        const size_t p = static_cast<size_t>(j) * q.groups() + i / group;
        const size_t e = static_cast<size_t>(j) * k + i;
        EXPECT_LE(std::fabs(d[e] - w[e]), 0.5f * q.scale[p] * (1 + 1e-5f) + 1e-7f) << group << " " << j << " " << i;
        EXPECT_GE(w[e], q.minimum[p]);
      }
    // Deterministic: quantizing again gives the same bytes (saved files rely on it).
    const Int4Weights again = quantize_int4(w.data(), n, k, group);
    EXPECT_EQ(again.q, q.q);
    EXPECT_EQ(again.scale, q.scale);
  }
}

TEST(Int4Quantize, ConstantAndNonFiniteGroups) {
  std::vector<float> w(96, 0.25f);
  w[40] = std::numeric_limits<float>::infinity();
  w[70] = std::numeric_limits<float>::quiet_NaN();
  const Int4Weights q = quantize_int4(w.data(), 1, 96, 32);
  const std::vector<float> d = dequantize_int4(q);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(d[i], 0.25f);   // constant group: exact
  for (int i = 32; i < 64; ++i) EXPECT_EQ(d[i], 0.0f);   // an infinity makes the group zero, not undefined
  for (int i = 64; i < 96; ++i) EXPECT_EQ(d[i], 0.25f);  // a NaN is skipped by min / max and lands on the minimum
  EXPECT_THROW(quantize_int4(w.data(), 1, 64, 48), Error);
}

TEST(Int4Quantize, CheckRefusesInconsistentWeights) {
  const std::vector<float> w = randn(4 * 70, 3);
  Int4Weights q = quantize_int4(w.data(), 4, 70, 32);
  EXPECT_NO_THROW(check_int4(q, "x"));
  Int4Weights bad = q;
  bad.group = 48;
  EXPECT_THROW(check_int4(bad, "x"), Error);
  bad = q;
  bad.group = 64;  // 2 groups per row, the arrays hold 3
  EXPECT_THROW(check_int4(bad, "x"), Error);
  bad = q;
  bad.scale[1] = -1.0f;
  EXPECT_THROW(check_int4(bad, "x"), Error);
  bad = q;
  bad.minimum[2] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(check_int4(bad, "x"), Error);
  bad = q;
  bad.q.pop_back();
  EXPECT_THROW(check_int4(bad, "x"), Error);
  try {
    bad = q;
    bad.group = 48;
    check_int4(bad, "model/zeroshot-int4.safetensors");
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos);
    EXPECT_NE(msg.find("group size 48"), std::string::npos) << msg;
  }
}

struct Case {
  int m, k, n;
};
const Case kCases[] = {{1, 1, 1},    {3, 5, 7},     {10, 33, 32},  {11, 64, 33},  {23, 130, 70},
                       {50, 97, 31}, {7, 300, 100}, {21, 257, 16}, {64, 588, 65}, {13, 1000, 200}};

TEST(Int4Linear, MatchesDoubleProductOfDequantizedWeights) {
  ThreadPool pool(2);
  for (const KernelChoice kc : choices())
    for (const Case& c : kCases)
      for (const int group : {32, 128})
        for (int post = 0; post < 4; ++post) {
          const std::vector<float> x = randn(static_cast<size_t>(c.m) * c.k, 1 + c.k, 1.0f);
          const std::vector<float> w = randn(static_cast<size_t>(c.n) * c.k, 2 + c.n, 1.0f / std::sqrt(c.k));
          const std::vector<float> b = randn(static_cast<size_t>(c.n), 3, 0.1f);
          const std::vector<float> gamma = randn(static_cast<size_t>(c.k), 4, 0.1f);
          const Int4Weights q = quantize_int4(w.data(), c.n, c.k, group);
          const std::vector<float> wd = dequantize_int4(q);
          const PackedLinear L(q, b.data(), kc);
          ASSERT_EQ(L.precision(), Precision::Int4);
          ASSERT_EQ(L.uses_avx512(), kc == KernelChoice::Auto);
          EXPECT_LT(L.weight_bytes(), static_cast<size_t>(c.n) * c.k * 4 + 4096);
          std::vector<float> xn = x;  // the layer-normalized input, for post == 3
          std::vector<float> g1(gamma);
          for (float& v : g1) v += 1.0f;
          RowLayerNorm norm{g1.data(), nullptr, 1e-5f};
          if (post == 3) layer_norm(x.data(), c.m, c.k, g1.data(), nullptr, 1e-5f, xn.data(), nullptr);
          const std::vector<float> y0 = randn(static_cast<size_t>(c.m) * c.n, 5);
          std::vector<float> y = y0;
          const LinearPost lp = post == 1   ? LinearPost::activate(Act::Gelu)
                                : post == 2 ? LinearPost::accumulate()
                                            : LinearPost::store();
          L.forward(x.data(), c.m, y.data(), post % 2 ? &pool : nullptr, lp, post == 3 ? &norm : nullptr);
          for (int r = 0; r < c.m; ++r)
            for (int j = 0; j < c.n; ++j) {
              double acc = b[j], mag = std::fabs(b[j]);
              for (int i = 0; i < c.k; ++i) {
                const double p =
                    static_cast<double>(xn[static_cast<size_t>(r) * c.k + i]) * wd[static_cast<size_t>(j) * c.k + i];
                acc += p;
                mag += std::fabs(p);
              }
              double want = acc;
              if (post == 1) want = act_ref(Act::Gelu, acc);
              if (post == 2) want += y0[static_cast<size_t>(r) * c.n + j];
              const double got = y[static_cast<size_t>(r) * c.n + j];
              ASSERT_NEAR(got, want, 2e-6 * (mag + 1.0) + 1e-6)
                  << "kc " << static_cast<int>(kc) << " m " << c.m << " k " << c.k << " n " << c.n << " group " << group
                  << " post " << post << " at " << r << "," << j;
            }
        }
}

TEST(Int4Linear, QuantizingAtBuildEqualsPrequantizedAndStaysCloseToF32) {
  const int m = 9, k = 384, n = 96;
  const std::vector<float> x = randn(static_cast<size_t>(m) * k, 11);
  const std::vector<float> w = randn(static_cast<size_t>(n) * k, 12, 1.0f / std::sqrt(k));
  for (const KernelChoice kc : choices()) {
    const PackedLinear a(w.data(), nullptr, n, k, Precision::Int4, kc);
    const PackedLinear b(quantize_int4(w.data(), n, k), nullptr, kc);
    const PackedLinear f(w.data(), nullptr, n, k, Precision::F32, KernelChoice::Generic);
    std::vector<float> ya(static_cast<size_t>(m) * n), yb(ya.size()), yf(ya.size());
    a.forward(x.data(), m, ya.data(), nullptr);
    b.forward(x.data(), m, yb.data(), nullptr);
    f.forward(x.data(), m, yf.data(), nullptr);
    EXPECT_EQ(ya, yb);
    // Group-wise 4-bit weights: each output keeps most of its direction (cosine per row against f32).
    for (int r = 0; r < m; ++r) {
      double dot = 0, na = 0, nf = 0;
      for (int j = 0; j < n; ++j) {
        const double u = ya[static_cast<size_t>(r) * n + j], v = yf[static_cast<size_t>(r) * n + j];
        dot += u * v;
        na += u * u;
        nf += v * v;
      }
      EXPECT_GT(dot / std::sqrt(na * nf), 0.99) << r;
    }
    // 4 bits per weight plus two floats per group of 32: 6 bits, well under a quarter of f32.
    EXPECT_LT(a.weight_bytes(), static_cast<size_t>(n) * k * 4 / 4);
  }
}

}  // namespace
}  // namespace zeroshot::nn
