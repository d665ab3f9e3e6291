// Both BF16 products of the AVX-512 path (vdpbf16ps on pairs, and f32 FMAs on widened bf16 values: kernels.h
// bf16_by_fma), whichever one the probe picks on this CPU: each must be the exact product of the bf16-rounded
// operands up to f32 summation, at odd k (a half-filled last pair), every row-block height and every epilogue.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "nn/kernels.h"
#include "nn/linear.h"
#include "nn/thread_pool.h"
#include "support/random.h"

namespace zeroshot::nn {
namespace {

using zeroshot::testing::randn;

// Restores the probe's choice when a test ends (the mode is process-wide).
struct ModeGuard {
  ~ModeGuard() { kern::avx512::set_bf16_by_fma(-1); }
};

TEST(Bf16Kernels, BothProductsAreExactOnRoundedOperands) {
  if (!avx512_kernels(Precision::BF16)) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  const ModeGuard guard;
  ThreadPool pool(2);
  struct Case {
    int m, k, n;
  };
  const Case cases[] = {{1, 1, 1}, {3, 7, 5}, {10, 33, 64}, {13, 45, 70}, {23, 70, 130}, {197, 101, 40}};
  uint32_t seed = 7;
  for (int mode : {0, 1}) {
    kern::avx512::set_bf16_by_fma(mode);
    for (const Case& c : cases)
      for (int post = 0; post < 3; ++post) {
        const std::vector<float> x = randn(static_cast<size_t>(c.m) * c.k, seed++);
        const std::vector<float> w = randn(static_cast<size_t>(c.n) * c.k, seed++);
        const std::vector<float> b = randn(static_cast<size_t>(c.n), seed++);
        const std::vector<float> y0 = randn(static_cast<size_t>(c.m) * c.n, seed++);
        const PackedLinear L(w.data(), b.data(), c.n, c.k, Precision::BF16, KernelChoice::Auto);
        const LinearPost lp = post == 0   ? LinearPost::store()
                              : post == 1 ? LinearPost::accumulate()
                                          : LinearPost::activate(Act::QuickGelu);
        std::vector<float> y = y0;
        L.forward(x.data(), c.m, y.data(), &pool, lp);
        for (int r = 0; r < c.m; ++r)
          for (int j = 0; j < c.n; ++j) {
            double s = b[j], mag = std::fabs(b[j]);
            for (int i = 0; i < c.k; ++i) {
              const double p = static_cast<double>(bf16_round(x[static_cast<size_t>(r) * c.k + i])) *
                               bf16_round(w[static_cast<size_t>(j) * c.k + i]);
              s += p;
              mag += std::fabs(p);
            }
            const size_t at = static_cast<size_t>(r) * c.n + j;
            double want = s, tol = 1e-6 * mag + 1e-7;
            if (post == 1) want += y0[at];
            if (post == 2) {
              want = s / (1.0 + std::exp(-1.702 * s));
              tol += 1e-6 * std::fabs(want);
            }
            ASSERT_NEAR(y[at], want, tol) << "mode " << mode << " m" << c.m << " k" << c.k << " n" << c.n << " post "
                                          << post << " at " << r << "," << j;
          }
      }
  }
}

// The probe decides once and keeps to it; forcing a mode and going back to -1 returns to that decision.
TEST(Bf16Kernels, ChoiceIsStable) {
  if (!avx512_kernels(Precision::BF16)) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  const ModeGuard guard;
  const bool first = kern::avx512::bf16_by_fma();
  kern::avx512::set_bf16_by_fma(first ? 0 : 1);
  EXPECT_NE(kern::avx512::bf16_by_fma(), first);
  EXPECT_EQ(kern::avx512::a_words(Precision::BF16), first ? 1 : 2);
  kern::avx512::set_bf16_by_fma(-1);
  EXPECT_EQ(kern::avx512::bf16_by_fma(), first);
  EXPECT_EQ(kern::avx512::a_words(Precision::F32), 1);
  EXPECT_EQ(kern::avx512::a_words(Precision::Int8), 1);
}

}  // namespace
}  // namespace zeroshot::nn
