// PackedLinear (f32 / bf16 / int8, AVX-512 and portable paths), the vector activations, the strided attention and
// layer norm, against naive double-precision references, at odd sizes and with every epilogue.
#include "nn/linear.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "nn/kernels.h"
#include "nn/ops.h"
#include "nn/peak_probe.h"
#include "nn/thread_pool.h"
#include "support/activations.h"
#include "support/random.h"
#include "zeroshot/error.h"

namespace zeroshot::nn {
namespace {

using zeroshot::testing::act_ref;
using zeroshot::testing::randn;

// The paths a precision can take on this machine.
std::vector<KernelChoice> choices(Precision p) {
  std::vector<KernelChoice> c = {KernelChoice::Generic};
  if (avx512_kernels(p)) c.push_back(KernelChoice::Auto);
  return c;
}

struct Case {
  int m, k, n;
};
const Case kCases[] = {{1, 1, 1},     {3, 5, 7},    {10, 17, 32}, {11, 64, 33},
                       {23, 130, 70}, {50, 96, 31}, {7, 3, 100},  {21, 257, 16}};

// Bound of |x.w - xq.wq| when every x and w is off by at most ea and ew (quantization half-steps).
struct Linear {
  std::vector<float> w, b, x;
  int m, k, n;
  Linear(const Case& c, uint32_t seed)
      : w(randn(static_cast<size_t>(c.n) * c.k, seed, 0.2f)),
        b(randn(c.n, seed + 1)),
        x(randn(static_cast<size_t>(c.m) * c.k, seed + 2)),
        m(c.m),
        k(c.k),
        n(c.n) {
    // An outlier and a row of zeros: the quantizers' edge cases.
    x[0] = 9.0f;
    if (m > 2)
      for (int i = 0; i < k; ++i) x[static_cast<size_t>(2) * k + i] = 0.0f;
    if (n > 1)
      for (int i = 0; i < k; ++i) w[static_cast<size_t>(1) * k + i] = 0.0f;
  }
};

// Runs the layer with x / y at row strides wider than k / n (and a residual in y for Accumulate).
std::vector<float> run(const PackedLinear& L, const Linear& t, LinearPost post, ThreadPool* pool,
                       const std::vector<float>& y0) {
  const long ldx = t.k + 3, ldy = t.n + 5;
  std::vector<float> xs(static_cast<size_t>(t.m) * ldx, 77.0f), ys(static_cast<size_t>(t.m) * ldy, -55.0f);
  for (int r = 0; r < t.m; ++r) {
    std::copy_n(&t.x[static_cast<size_t>(r) * t.k], t.k, &xs[static_cast<size_t>(r) * ldx]);
    std::copy_n(&y0[static_cast<size_t>(r) * t.n], t.n, &ys[static_cast<size_t>(r) * ldy]);
  }
  L.forward(xs.data(), t.m, ldx, ys.data(), ldy, pool, post);
  std::vector<float> y(static_cast<size_t>(t.m) * t.n);
  for (int r = 0; r < t.m; ++r) {
    std::copy_n(&ys[static_cast<size_t>(r) * ldy], t.n, &y[static_cast<size_t>(r) * t.n]);
    for (long j = t.n; j < ldy; ++j) EXPECT_EQ(ys[static_cast<size_t>(r) * ldy + j], -55.0f) << "wrote past n";
  }
  return y;
}

const LinearPost kPosts[] = {LinearPost::store(),
                             LinearPost::activate(Act::QuickGelu),
                             LinearPost::activate(Act::Gelu),
                             LinearPost::activate(Act::GeluTanh),
                             LinearPost::activate(Act::Relu),
                             LinearPost::activate(Act::Silu),
                             LinearPost::accumulate()};

std::string post_name(const LinearPost& p) {
  if (p.kind == LinearPost::Store) return "store";
  if (p.kind == LinearPost::Accumulate) return "accumulate";
  return std::string("act") + std::to_string(static_cast<int>(p.act));
}

// y_ref = post(x w^T + b) in double from the given (possibly rounded) operands; `err` the allowed error of the
// pre-activation value, per output.
void check(const Linear& t, const std::vector<float>& xr, const std::vector<float>& wr, const std::vector<double>& err,
           LinearPost post, const std::vector<float>& y0, const std::vector<float>& got, const std::string& what) {
  for (int r = 0; r < t.m; ++r)
    for (int j = 0; j < t.n; ++j) {
      double acc = t.b[j];
      for (int i = 0; i < t.k; ++i)
        acc += static_cast<double>(xr[static_cast<size_t>(r) * t.k + i]) * wr[static_cast<size_t>(j) * t.k + i];
      const size_t o = static_cast<size_t>(r) * t.n + j;
      double ref = acc, tol = err[o];
      if (post.kind == LinearPost::Activate) {
        ref = act_ref(post.act, acc);
        // |act'| <= 1.13 for these activations, plus the vector functions' own error.
        tol = 1.13 * tol + 2e-6 * (1.0 + std::fabs(ref));
      } else if (post.kind == LinearPost::Accumulate) {
        ref = y0[o] + acc;
        tol += 1e-6 * std::fabs(ref);
      }
      ASSERT_NEAR(got[o], ref, tol) << what << " row " << r << " col " << j;
    }
}

TEST(PackedLinear, F32MatchesDoubleReference) {
  ThreadPool pool(2);
  uint32_t seed = 1;
  for (const Case& c : kCases)
    for (KernelChoice kc : choices(Precision::F32))
      for (const LinearPost& post : kPosts) {
        Linear t(c, seed++);
        const std::vector<float> y0 = randn(static_cast<size_t>(c.m) * c.n, seed++);
        const PackedLinear L(t.w.data(), t.b.data(), c.n, c.k, Precision::F32, kc);
        EXPECT_EQ(L.uses_avx512(), kc == KernelChoice::Auto);
        std::vector<double> err(static_cast<size_t>(c.m) * c.n);
        for (int r = 0; r < c.m; ++r)
          for (int j = 0; j < c.n; ++j) {
            double s = std::fabs(t.b[j]);
            for (int i = 0; i < c.k; ++i)
              s += std::fabs(t.x[static_cast<size_t>(r) * c.k + i] * t.w[static_cast<size_t>(j) * c.k + i]);
            err[static_cast<size_t>(r) * c.n + j] = 1e-6 * s + 1e-7;  // f32 summation
          }
        for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool})
          check(t, t.x, t.w, err, post, y0, run(L, t, post, p, y0),
                "f32 " + std::string(kc == KernelChoice::Auto ? "avx512" : "generic") + " " + post_name(post) + " m" +
                    std::to_string(c.m) + " k" + std::to_string(c.k) + " n" + std::to_string(c.n));
      }
}

TEST(PackedLinear, Bf16IsExactProductsOfRoundedOperands) {
  ThreadPool pool(2);
  uint32_t seed = 100;
  for (const Case& c : kCases)
    for (KernelChoice kc : choices(Precision::BF16))
      for (const LinearPost& post : kPosts) {
        Linear t(c, seed++);
        const std::vector<float> y0 = randn(static_cast<size_t>(c.m) * c.n, seed++);
        const PackedLinear L(t.w.data(), t.b.data(), c.n, c.k, Precision::BF16, kc);
        std::vector<float> xr(t.x.size()), wr(t.w.size());
        for (size_t i = 0; i < xr.size(); ++i) xr[i] = bf16_round(t.x[i]);
        for (size_t i = 0; i < wr.size(); ++i) wr[i] = bf16_round(t.w[i]);
        std::vector<double> err(static_cast<size_t>(c.m) * c.n);
        for (int r = 0; r < c.m; ++r)
          for (int j = 0; j < c.n; ++j) {
            double s = std::fabs(t.b[j]);
            for (int i = 0; i < c.k; ++i)
              s += std::fabs(xr[static_cast<size_t>(r) * c.k + i] * wr[static_cast<size_t>(j) * c.k + i]);
            err[static_cast<size_t>(r) * c.n + j] = 1e-6 * s + 1e-7;
          }
        check(t, xr, wr, err, post, y0, run(L, t, post, &pool, y0),
              "bf16 " + std::string(kc == KernelChoice::Auto ? "avx512" : "generic") + " " + post_name(post) + " m" +
                  std::to_string(c.m) + " k" + std::to_string(c.k) + " n" + std::to_string(c.n));
      }
}

TEST(PackedLinear, Int8WithinQuantizationBound) {
  // Against the exact f32 product: activations are off by at most half their row step, weights by half their
  // channel step, so |x.w - xq.wq| <= sum_i (sa/2 |w_i| + sw/2 |x_i| + sa sw / 4).
  ThreadPool pool(2);
  uint32_t seed = 200;
  for (const Case& c : kCases)
    for (KernelChoice kc : choices(Precision::Int8))
      for (const LinearPost& post : kPosts) {
        Linear t(c, seed++);
        const std::vector<float> y0 = randn(static_cast<size_t>(c.m) * c.n, seed++);
        const PackedLinear L(t.w.data(), t.b.data(), c.n, c.k, Precision::Int8, kc);
        std::vector<double> err(static_cast<size_t>(c.m) * c.n);
        for (int r = 0; r < c.m; ++r) {
          const float* xr = &t.x[static_cast<size_t>(r) * c.k];
          const double lo = std::min(0.0f, *std::min_element(xr, xr + c.k)),
                       hi = std::max(0.0f, *std::max_element(xr, xr + c.k));
          const double sa = (hi - lo) / 255.0;
          for (int j = 0; j < c.n; ++j) {
            const float* wj = &t.w[static_cast<size_t>(j) * c.k];
            double mw = 0;
            for (int i = 0; i < c.k; ++i) mw = std::max(mw, static_cast<double>(std::fabs(wj[i])));
            const double sw = mw / 127.0;
            double e = 0, s = std::fabs(t.b[j]);
            for (int i = 0; i < c.k; ++i) {
              e += sa / 2 * std::fabs(wj[i]) + sw / 2 * std::fabs(xr[i]) + sa * sw / 4;
              s += std::fabs(xr[i] * wj[i]);
            }
            err[static_cast<size_t>(r) * c.n + j] = e * 1.0001 + 1e-6 * s + 1e-6;
          }
        }
        check(t, t.x, t.w, err, post, y0, run(L, t, post, &pool, y0),
              "int8 " + std::string(kc == KernelChoice::Auto ? "avx512" : "generic") + " " + post_name(post) + " m" +
                  std::to_string(c.m) + " k" + std::to_string(c.k) + " n" + std::to_string(c.n));
      }
}

TEST(PackedLinear, AvxAndGenericComputeTheSameFunction) {
  // Same rounded / quantized operands on both paths: only the f32 summation order differs (int8: nothing).
  for (Precision p : {Precision::F32, Precision::BF16, Precision::Int8}) {
    if (!avx512_kernels(p)) continue;
    uint32_t seed = 300;
    for (const Case& c : kCases) {
      Linear t(c, seed++);
      const std::vector<float> y0(static_cast<size_t>(c.m) * c.n, 0.0f);
      const PackedLinear a(t.w.data(), t.b.data(), c.n, c.k, p, KernelChoice::Auto);
      const PackedLinear g(t.w.data(), t.b.data(), c.n, c.k, p, KernelChoice::Generic);
      const std::vector<float> ya = run(a, t, LinearPost::store(), nullptr, y0),
                               yg = run(g, t, LinearPost::store(), nullptr, y0);
      for (size_t i = 0; i < ya.size(); ++i)
        ASSERT_NEAR(ya[i], yg[i], 2e-6 * (1.0 + std::fabs(yg[i])))
            << precision_name(p) << " m" << c.m << " k" << c.k << " n" << c.n << " at " << i;
    }
  }
}

TEST(PackedLinear, RowLayerNormEqualsLayerNormThenProduct) {
  ThreadPool pool(2);
  uint32_t seed = 400;
  for (Precision p : {Precision::F32, Precision::BF16, Precision::Int8})
    for (KernelChoice kc : choices(p))
      for (const Case& c : kCases) {
        Linear t(c, seed++);
        for (float& v : t.x) v = v * 3.0f + 1.0f;
        const std::vector<float> g = randn(c.k, seed++), be = randn(c.k, seed++),
                                 y0(static_cast<size_t>(c.m) * c.n, 0.0f);
        const PackedLinear L(t.w.data(), t.b.data(), c.n, c.k, p, kc);
        Linear normed = t;
        layer_norm(t.x.data(), c.m, c.k, g.data(), be.data(), 1e-5f, normed.x.data(), nullptr);
        const std::vector<float> want = run(L, normed, LinearPost::store(), nullptr, y0);
        const RowLayerNorm rn{g.data(), be.data(), 1e-5f};
        std::vector<float> got(static_cast<size_t>(c.m) * c.n);
        L.forward(t.x.data(), c.m, got.data(), &pool, LinearPost::store(), &rn);
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_NEAR(got[i], want[i], 1e-5 * (1.0 + std::fabs(want[i])))
              << precision_name(p) << (kc == KernelChoice::Auto ? " avx512" : " generic") << " m" << c.m << " k" << c.k
              << " n" << c.n;
      }
}

TEST(PackedLinear, Int8RowLayerNormIsBitIdenticalToLayerNormThenProduct) {
  // The AVX-512 int8 conversion takes the norm's statistics of two rows at once and the rows' ranges as it
  // normalizes them: it must quantize exactly what nn::layer_norm then the plain conversion would (odd and even
  // row counts, k with and without a tail, no gamma / beta, a zero row, several threads).
  if (!avx512_kernels(Precision::Int8)) GTEST_SKIP() << "no VNNI on this CPU";
  ThreadPool pool(2);
  uint32_t seed = 900;
  const Case cases[] = {{1, 5, 3}, {2, 16, 7}, {3, 17, 33}, {10, 768, 40}, {11, 257, 16}, {301, 3600, 9}};
  for (const Case& c : cases)
    for (bool affine : {true, false}) {
      Linear t(c, seed++);
      // Plain: rows far from 0, so that a lane past k taken as x = 0 would widen the row's range.
      for (float& v : t.x) v = v * 3.0f + (affine ? 1.0f : 40.0f);
      const std::vector<float> g = randn(c.k, seed++), be = randn(c.k, seed++);
      const float* gp = affine ? g.data() : nullptr;
      const float* bp = affine ? be.data() : nullptr;
      const PackedLinear L(t.w.data(), t.b.data(), c.n, c.k, Precision::Int8);
      std::vector<float> normed(t.x.size());
      layer_norm(t.x.data(), c.m, c.k, gp, bp, 1e-5f, normed.data(), nullptr);
      std::vector<float> want(static_cast<size_t>(c.m) * c.n), got(want.size());
      L.forward(normed.data(), c.m, want.data(), &pool);
      const RowLayerNorm rn{gp, bp, 1e-5f};
      L.forward(t.x.data(), c.m, got.data(), &pool, LinearPost::store(), &rn);
      EXPECT_EQ(got, want) << "m" << c.m << " k" << c.k << " n" << c.n << (affine ? " affine" : " plain");
    }
}

TEST(PackedLinear, ParallelConversionEqualsSerial) {
  // Big enough (m x k > 2^20) that the input conversion is split across the pool; rows are independent, so the
  // AVX-512 result must be bit-identical to the serial run.
  ThreadPool pool(2);
  const Case c{300, 3600, 40};
  Linear t(c, 21);
  const std::vector<float> g = randn(c.k, 22), be = randn(c.k, 23);
  const RowLayerNorm rn{g.data(), be.data(), 1e-5f};
  for (Precision p : {Precision::F32, Precision::BF16, Precision::Int8})
    for (KernelChoice kc : choices(p)) {
      const PackedLinear L(t.w.data(), t.b.data(), c.n, c.k, p, kc);
      for (const RowLayerNorm* norm : {static_cast<const RowLayerNorm*>(nullptr), &rn}) {
        std::vector<float> serial(static_cast<size_t>(c.m) * c.n), parallel(serial.size());
        L.forward(t.x.data(), c.m, serial.data(), nullptr, LinearPost::store(), norm);
        L.forward(t.x.data(), c.m, parallel.data(), &pool, LinearPost::store(), norm);
        const std::string what = std::string(precision_name(p)) + (kc == KernelChoice::Auto ? " avx512" : " generic") +
                                 (norm ? " norm" : "");
        if (kc == KernelChoice::Auto) {
          EXPECT_EQ(serial, parallel) << what;
        } else {  // OpenBLAS may sum a column block differently from the whole (its edge kernels)
          for (size_t i = 0; i < serial.size(); ++i)
            ASSERT_NEAR(serial[i], parallel[i], 1e-4 * (1 + std::fabs(serial[i]))) << what;
        }
      }
    }
}

TEST(PackedLinear, Int8FromQuantizedWeightsEqualsQuantizingAtLoad) {
  const Case c{13, 70, 45};
  Linear t(c, 9);
  const Int8Weights q = quantize_int8(t.w.data(), c.n, c.k);
  const std::vector<float> y0(static_cast<size_t>(c.m) * c.n, 0.0f);
  for (KernelChoice kc : choices(Precision::Int8)) {
    const PackedLinear a(t.w.data(), t.b.data(), c.n, c.k, Precision::Int8, kc), b(q, t.b.data(), kc);
    EXPECT_EQ(run(a, t, LinearPost::store(), nullptr, y0), run(b, t, LinearPost::store(), nullptr, y0));
  }
}

TEST(PackedLinear, OwningConstructorKeepsTheWeights) {
  const Case c{5, 40, 20};
  Linear t(c, 11);
  const std::vector<float> y0(static_cast<size_t>(c.m) * c.n, 0.0f);
  const PackedLinear ref(t.w.data(), t.b.data(), c.n, c.k, Precision::F32, KernelChoice::Generic);
  EXPECT_TRUE(ref.borrows_weights());
  std::vector<float> w = t.w, b = t.b;
  const PackedLinear own(std::move(w), std::move(b), c.n, c.k, Precision::F32, KernelChoice::Generic);
  EXPECT_FALSE(own.borrows_weights());
  EXPECT_EQ(run(own, t, LinearPost::store(), nullptr, y0), run(ref, t, LinearPost::store(), nullptr, y0));
  EXPECT_THROW(PackedLinear(std::vector<float>(10), {}, 3, 4, Precision::F32), std::exception);
}

// A layer over a copy of another's panels (as mapped from a packed weights file) computes the same bytes, for every
// shape (padded columns and units included); panels of another size or alignment are refused.
TEST(PackedLinear, FromPanelsEqualsPackingAtLoad) {
  for (const Precision p : {Precision::F32, Precision::BF16, Precision::Int8}) {
    if (!*packed_layout(p)) continue;
    for (const Case& c : kCases) {
      Linear t(c, 5);
      const std::vector<float> y0(static_cast<size_t>(c.m) * c.n, 0.5f);
      const PackedLinear packed(t.w.data(), t.b.data(), c.n, c.k, p);
      ASSERT_NE(packed.panels(), nullptr);
      ASSERT_EQ(packed.panel_bytes(), packed_panel_bytes(c.n, c.k, p));
      std::unique_ptr<uint8_t, decltype(&std::free)> copy(
          static_cast<uint8_t*>(std::aligned_alloc(64, (packed.panel_bytes() + 63) & ~size_t{63})), &std::free);
      std::memcpy(copy.get(), packed.panels(), packed.panel_bytes());
      const PackedLinear mapped = PackedLinear::from_panels(copy.get(), packed.panel_bytes(), t.b.data(), c.n, c.k, p);
      EXPECT_EQ(mapped.panels(), copy.get());
      EXPECT_EQ(mapped.weight_bytes(), static_cast<size_t>(c.n) * sizeof(float));  // the bias copy only
      for (const LinearPost post : {LinearPost::store(), LinearPost::accumulate()})
        EXPECT_EQ(run(mapped, t, post, nullptr, y0), run(packed, t, post, nullptr, y0))
            << precision_name(p) << " " << c.m << "x" << c.k << "x" << c.n;
      EXPECT_THROW(PackedLinear::from_panels(copy.get(), packed.panel_bytes(), nullptr, c.n + 32, c.k, p), Error);
      EXPECT_THROW(PackedLinear::from_panels(copy.get() + 4, packed.panel_bytes(), nullptr, c.n, c.k, p), Error);
    }
  }
  EXPECT_EQ(std::string(packed_layout(Precision::Int4)), "");
}

TEST(Quantize, Int8PerChannelSymmetricRoundHalfEven) {
  // Row 0: max 127 -> scale 1, so values round half to even; row 1 all zero -> scale 1; row 2: scale 2.
  const float w[] = {127.0f, 2.5f, -3.5f, 0.5f, 0, 0, 0, 0, -254.0f, 127.0f, 1.0f, 3.0f};
  const Int8Weights q = quantize_int8(w, 3, 4);
  EXPECT_EQ(q.scale[0], 1.0f);
  EXPECT_EQ(std::vector<int8_t>(q.q.begin(), q.q.begin() + 4), (std::vector<int8_t>{127, 2, -4, 0}));
  EXPECT_EQ(q.scale[1], 1.0f);
  EXPECT_EQ(std::vector<int8_t>(q.q.begin() + 4, q.q.begin() + 8), (std::vector<int8_t>{0, 0, 0, 0}));
  EXPECT_EQ(q.scale[2], 2.0f);
  EXPECT_EQ(std::vector<int8_t>(q.q.begin() + 8, q.q.end()), (std::vector<int8_t>{-127, 64, 0, 2}));
}

TEST(Quantize, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  uint32_t b = 0x3f808000;  // exactly half way between 0x3f80 and 0x3f81: to even
  float x;
  std::memcpy(&x, &b, 4);
  EXPECT_EQ(f32_to_bf16(x), 0x3f80);
  b = 0x3f818000;  // half way between 0x3f81 and 0x3f82: to even
  std::memcpy(&x, &b, 4);
  EXPECT_EQ(f32_to_bf16(x), 0x3f82);
  b = 0x3f808001;  // just above half way
  std::memcpy(&x, &b, 4);
  EXPECT_EQ(f32_to_bf16(x), 0x3f81);
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
  const uint16_t nan = f32_to_bf16(NAN);
  EXPECT_EQ(nan & 0x7f80, 0x7f80);
  EXPECT_NE(nan & 0x7f, 0);
}

TEST(VectorActivations, MatchScalarFunctions) {
  if (!kern::cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::vector<float> x;
  for (float v = -30.0f; v <= 30.0f; v += 0.00731f) x.push_back(v);
  x.push_back(0.0f);
  x.push_back(-0.0f);
  x.push_back(1e-30f);
  x.push_back(-100.0f);
  x.push_back(100.0f);
  for (Act a : {Act::QuickGelu, Act::Gelu, Act::GeluTanh}) {
    std::vector<float> y = x;
    kern::avx512::activate(a, y.data(), static_cast<long>(y.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      const double ref = act_ref(a, x[i]);
      ASSERT_NEAR(y[i], ref, 1e-6 * (1.0 + std::fabs(ref))) << "act " << static_cast<int>(a) << " x=" << x[i];
    }
  }
}

// Naive double attention over back-to-back sequences with q/k/v rows at stride ld.
std::vector<double> attention_ref(const std::vector<float>& qkv, long ld, int d, const std::vector<int>& lens,
                                  int heads, int hd, float scale, bool causal) {
  long rows = 0;
  for (int l : lens) rows += l;
  std::vector<double> out(static_cast<size_t>(rows) * d);
  long start = 0;
  for (int len : lens) {
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < len; ++i) {
        const int valid = causal ? i + 1 : len;
        std::vector<double> s(static_cast<size_t>(valid));
        double mx = -1e300;
        for (int j = 0; j < valid; ++j) {
          double dot = 0;
          for (int e = 0; e < hd; ++e)
            dot += static_cast<double>(qkv[(start + i) * ld + h * hd + e]) * qkv[(start + j) * ld + d + h * hd + e];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (double& v : s) sum += (v = std::exp(v - mx));
        for (int e = 0; e < hd; ++e) {
          double o = 0;
          for (int j = 0; j < valid; ++j) o += s[j] / sum * qkv[(start + j) * ld + 2 * d + h * hd + e];
          out[(start + i) * d + h * hd + e] = o;
        }
      }
    start += len;
  }
  return out;
}

TEST(Attention, StridedMatchesDoubleReferenceOnBothPaths) {
  ThreadPool pool(2);
  for (bool generic : {true, false}) {
    if (!generic && !kern::cpu_has_avx512()) continue;
    force_generic_kernels(generic);
    for (int hd : {12, 16, 24, 64, 80})
      for (bool causal : {false, true})
        for (const std::vector<int>& lens :
             {std::vector<int>{1}, std::vector<int>{5, 17}, std::vector<int>{50, 3, 77}}) {
          const int heads = 3, d = heads * hd;
          const long ld = 3L * d + 4;
          long rows = 0;
          for (int l : lens) rows += l;
          const std::vector<float> qkv =
              randn(static_cast<size_t>(rows * ld), static_cast<uint32_t>(hd * 7 + causal), 1.5f);
          const long ldo = d + 8;
          std::vector<float> out(static_cast<size_t>(rows * ldo), 42.0f);
          const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
          attention(qkv.data(), qkv.data() + d, qkv.data() + 2 * d, ld, lens, heads, hd, scale, causal, out.data(), ldo,
                    &pool);
          const std::vector<double> ref = attention_ref(qkv, ld, d, lens, heads, hd, scale, causal);
          for (long r = 0; r < rows; ++r) {
            for (int e = 0; e < d; ++e)
              ASSERT_NEAR(out[r * ldo + e], ref[r * d + e], 2e-5)
                  << (generic ? "generic" : "avx512") << " hd " << hd << " row " << r;
            for (long e = d; e < ldo; ++e) ASSERT_EQ(out[r * ldo + e], 42.0f) << "wrote past the row";
          }
        }
  }
  force_generic_kernels(false);
}

TEST(LayerNorm, VectorPathMatchesDoubleReference) {
  for (bool generic : {true, false}) {
    if (!generic && !kern::cpu_has_avx512()) continue;
    force_generic_kernels(generic);
    for (int dim : {1, 7, 16, 40, 80, 768, 1000}) {
      std::vector<float> x = randn(static_cast<size_t>(5) * dim, static_cast<uint32_t>(dim), 3.0f);
      for (float& v : x) v += 100.0f;  // |mean| >> std
      const std::vector<float> g = randn(dim, 5), b = randn(dim, 6);
      std::vector<float> y(x.size());
      layer_norm(x.data(), 5, dim, g.data(), b.data(), 1e-5f, y.data(), nullptr);
      for (int r = 0; r < 5; ++r) {
        double mean = 0, var = 0;
        for (int i = 0; i < dim; ++i) mean += x[static_cast<size_t>(r) * dim + i];
        mean /= dim;
        for (int i = 0; i < dim; ++i) var += std::pow(x[static_cast<size_t>(r) * dim + i] - mean, 2);
        var /= dim;
        for (int i = 0; i < dim; ++i) {
          const double ref = (x[static_cast<size_t>(r) * dim + i] - mean) / std::sqrt(var + 1e-5) * g[i] + b[i];
          ASSERT_NEAR(y[static_cast<size_t>(r) * dim + i], ref, 2e-5 * (1 + std::fabs(ref)))
              << (generic ? "generic" : "avx512") << " dim " << dim;
        }
      }
    }
  }
  force_generic_kernels(false);
}

}  // namespace
}  // namespace zeroshot::nn

// ------------------------------------------------------------------------------------------- parallel packing

namespace zeroshot::nn {
namespace {

// Packing shared by a pool's threads (a model load) gives the layer that one thread packs, bit for bit: odd sizes,
// enough weights to take the parallel path, every precision.
TEST(PackedLinearPacking, PoolPacksTheSameLayer) {
  const int n = 97, k = 1001, m = 3;
  const std::vector<float> w = randn(static_cast<size_t>(n) * k, 5), b = randn(n, 6), x = randn(size_t{m} * k, 7);
  ThreadPool pool(3);
  for (Precision p : {Precision::F32, Precision::BF16, Precision::Int8}) {
    const PackedLinear one(w.data(), b.data(), n, k, p), shared(w.data(), b.data(), n, k, p, KernelChoice::Auto, &pool);
    std::vector<float> y1(size_t{m} * n), y2(y1.size());
    one.forward(x.data(), m, y1.data(), nullptr);
    shared.forward(x.data(), m, y2.data(), nullptr);
    EXPECT_EQ(y1, y2) << precision_name(p);
  }
}

}  // namespace
}  // namespace zeroshot::nn

// ------------------------------------------------------------------------------------------- peak probe

namespace zeroshot::nn {
namespace {

TEST(PeakProbe, MeasuresWhereTheKernelsRunAndNowhereElse) {
  ThreadPool pool(2);
  for (Precision p : {Precision::F32, Precision::BF16, Precision::Int8}) {
    const PeakRate r = measure_peak(p, &pool, 0.03);
    if (avx512_kernels(p)) {
      EXPECT_GT(r.gflops, 0.0) << precision_name(p);
      EXPECT_EQ(r.threads, 2);
      EXPECT_NE(std::string(r.instruction), "");
    } else {
      EXPECT_EQ(r.gflops, 0.0) << precision_name(p);
    }
  }
  force_generic_kernels(true);
  EXPECT_EQ(measure_peak(Precision::F32, &pool, 0.03).gflops, 0.0);
  force_generic_kernels(false);
}

// vit_flops against the products the encoder runs, listed GEMM by GEMM (m x n x k) for ViT-B/32 at 224 pixels.
TEST(PeakProbe, VitFlopsCountsEveryProduct) {
  const double seq = 50, d = 768, inter = 3072;
  double macs = 49 * d * 3 * 32 * 32;  // patch embedding
  for (int l = 0; l < 12; ++l) {
    macs += seq * 3 * d * d;      // q|k|v
    macs += 12 * seq * seq * 64;  // q k^T, per head
    macs += 12 * seq * 64 * seq;  // p v, per head
    macs += seq * d * d;          // out_proj
    macs += seq * inter * d + seq * d * inter;
  }
  macs += d * 512;  // projection of the class token
  EXPECT_DOUBLE_EQ(vit_flops(224, 32, 3, 768, 3072, 12, 512), 2 * macs);
}

}  // namespace
}  // namespace zeroshot::nn
