// Int8 attention (nn/attention_int8.h): the VNNI kernel against the portable code (same bytes), both against f32
// attention and against the bounds the quantization itself sets, and inputs that must not crash.
#include "nn/attention_int8.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "nn/kernels.h"
#include "nn/linear.h"
#include "nn/ops.h"
#include "nn/thread_pool.h"
#include "support/random.h"

namespace zeroshot::nn {
namespace {

struct Shape {
  std::vector<int> lens;
  int heads, hd;
  bool causal;
};

// Fused q|k|v rows [sum(lens), 3 * heads * hd] as the models hold them.
struct Qkv {
  std::vector<float> x;
  long dim, rows;
  Qkv(const Shape& s, uint32_t seed, float q_scale = 1.0f) {
    dim = static_cast<long>(s.heads) * s.hd;
    rows = 0;
    for (int l : s.lens) rows += l;
    x = testing::randn(static_cast<size_t>(rows * 3 * dim), seed);
    for (long r = 0; r < rows; ++r)
      for (long c = 0; c < dim; ++c) x[static_cast<size_t>(r * 3 * dim + c)] *= q_scale;
  }
  std::vector<float> run(const Shape& s, AttnPrecision ap, ThreadPool* pool) const {
    std::vector<float> out(static_cast<size_t>(rows * dim), -1.0f);
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.hd)));
    attention(x.data(), x.data() + dim, x.data() + 2 * dim, 3 * dim, s.lens, s.heads, s.hd, scale, s.causal, out.data(),
              dim, pool, ap);
    return out;
  }
};

const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s = {
      {{1}, 1, 64, false},   {{3}, 2, 8, false},        {{17}, 3, 64, false},   {{50}, 2, 72, false},
      {{33}, 2, 5, false},   {{20, 7, 1}, 2, 80, true}, {{77, 5}, 4, 64, true}, {{197}, 2, 64, false},
      {{65}, 1, 128, false}, {{9, 30}, 3, 16, false},   {{12}, 1, 260, true},
  };
  return s;
}

TEST(AttentionInt8, KernelGivesThePortableBytes) {
  if (!kern::cpu_has_avx512_vnni()) GTEST_SKIP() << "no AVX-512 VNNI here: only the portable code runs";
  ThreadPool pool(2);
  uint32_t seed = 1;
  for (const Shape& s : shapes()) {
    const Qkv in(s, seed++, 3.0f);
    const auto kernel = in.run(s, AttnPrecision::Int8, &pool);
    force_generic_kernels(true);
    const auto portable = in.run(s, AttnPrecision::Int8, nullptr);
    force_generic_kernels(false);
    ASSERT_EQ(kernel.size(), portable.size());
    size_t differ = 0;
    for (size_t i = 0; i < kernel.size(); ++i)
      differ += std::bit_cast<uint32_t>(kernel[i]) != std::bit_cast<uint32_t>(portable[i]);
    EXPECT_EQ(differ, 0u) << "len " << s.lens[0] << " hd " << s.hd << (s.causal ? " causal" : "");
  }
}

// Against f32 attention: every output row keeps a cosine > 0.999 (the int8 towers' embedding bound) for scores of
// std up to 1, and > 0.997 for peaked ones (q scaled 4x: scores of std 4, where a key's weight moves by the
// int8 error of its score times the score's size; measured worst 0.9980). The towers' embedding bounds are
// checked on the models (clip_precision_test, siglip_parity_test, clap_test).
TEST(AttentionInt8, CloseToF32) {
  ThreadPool pool(2);
  for (const bool generic : {false, true}) {
    force_generic_kernels(generic);
    uint32_t seed = 100;
    for (const float qs : {0.25f, 1.0f, 4.0f}) {
      for (const Shape& s : shapes()) {
        if (s.hd < 16) continue;  // a handful of channels: per-row scales say little
        const Qkv in(s, seed++, qs);
        const auto f32 = in.run(s, AttnPrecision::F32, &pool);
        const auto i8 = in.run(s, AttnPrecision::Int8, &pool);
        double worst = 1.0;
        for (long r = 0; r < in.rows; ++r)
          for (int h = 0; h < s.heads; ++h) {
            double ab = 0, aa = 0, bb = 0;
            for (int d = 0; d < s.hd; ++d) {
              const size_t i = static_cast<size_t>(r * in.dim + h * s.hd + d);
              ab += static_cast<double>(f32[i]) * i8[i];
              aa += static_cast<double>(f32[i]) * f32[i];
              bb += static_cast<double>(i8[i]) * i8[i];
            }
            worst = std::min(worst, ab / std::sqrt(aa * bb));
          }
        EXPECT_GT(worst, qs > 1.0f ? 0.997 : 0.999) << "q x" << qs << " len " << s.lens[0] << " hd " << s.hd;
      }
    }
  }
  force_generic_kernels(false);
}

// q = 0: every weight is 255, so each output is the mean of v's int8 values: within half a step of v's int8 grid
// (max |v| of the channel / 254) of the f32 mean.
TEST(AttentionInt8, FlatScoresGiveTheMeanOfV) {
  for (const bool generic : {false, true}) {
    force_generic_kernels(generic);
    const Shape s{{37}, 2, 24, false};
    Qkv in(s, 7);
    for (long r = 0; r < in.rows; ++r)
      for (long c = 0; c < in.dim; ++c) in.x[static_cast<size_t>(r * 3 * in.dim + c)] = 0.0f;
    const auto out = in.run(s, AttnPrecision::Int8, nullptr);
    for (long c = 0; c < in.dim; ++c) {
      double mean = 0, mx = 0;
      for (long r = 0; r < in.rows; ++r) {
        const double v = in.x[static_cast<size_t>(r * 3 * in.dim + 2 * in.dim + c)];
        mean += v / static_cast<double>(in.rows);
        mx = std::max(mx, std::fabs(v));
      }
      for (long r = 0; r < in.rows; ++r)
        EXPECT_NEAR(out[static_cast<size_t>(r * in.dim + c)], mean, mx / 254 * (1 + 1e-5)) << c;
    }
  }
  force_generic_kernels(false);
}

TEST(AttentionInt8, ExpMatchesLibm) {
  for (float x = -90.0f; x <= 0.0f; x += 0.0137f)
    // 3.2e-6 from the polynomial (its first dropped term and the rest at |f| = 1/2), |x| 2^-24 from rounding x log2(e)
    // (only e^x >= 1/510 matter: p >= 1 of 255).
    EXPECT_NEAR(exp_softmax(x), std::exp(x), (4e-6 + std::fabs(x) * 6e-8) * std::exp(x) + 1e-38f) << x;
  EXPECT_EQ(exp_softmax(0.0f), 1.0f);  // the max's weight is exactly 255
}

TEST(AttentionInt8, OnlyInt8LayersGetInt8Attention) {
  EXPECT_EQ(attention_precision(Precision::Int8), AttnPrecision::Int8);
  for (const Precision p : {Precision::F32, Precision::BF16, Precision::Int4})
    EXPECT_EQ(attention_precision(p), AttnPrecision::F32);
}

// NaN, infinities and all-zero rows / channels: no crash or undefined behaviour (the sanitizer build checks), and
// rows that see only finite values stay finite.
TEST(AttentionInt8, BadValuesDoNotCrash) {
  for (const bool generic : {false, true}) {
    force_generic_kernels(generic);
    const Shape s{{6, 10}, 1, 32, true};
    Qkv in(s, 9);
    const long ld = 3 * in.dim;
    in.x[static_cast<size_t>(2 * ld + 3)] = std::numeric_limits<float>::quiet_NaN();           // q of row 2
    in.x[static_cast<size_t>(3 * ld + in.dim)] = std::numeric_limits<float>::infinity();       // k of row 3
    in.x[static_cast<size_t>(4 * ld + 2 * in.dim)] = -std::numeric_limits<float>::infinity();  // v of row 4
    for (int c = 0; c < 32; ++c) in.x[static_cast<size_t>(7 * ld + in.dim + c)] = 0.0f;        // a zero k row (seq 2)
    for (long r = 0; r < in.rows; ++r) in.x[static_cast<size_t>(r * ld + 2 * in.dim + 5)] = 0.0f;  // a zero v column
    const auto out = in.run(s, AttnPrecision::Int8, nullptr);
    // Causal: rows 0 and 1 see keys 0..1 only; the second sequence (rows 6..15) sees no bad value at all.
    for (long r : {0L, 1L, 6L, 10L, 15L})
      for (int c = 0; c < 32; ++c) EXPECT_TRUE(std::isfinite(out[static_cast<size_t>(r * in.dim + c)])) << r;
    for (long r = 6; r < in.rows; ++r) EXPECT_EQ(out[static_cast<size_t>(r * in.dim + 5)], 0.0f);
  }
  force_generic_kernels(false);
}

}  // namespace
}  // namespace zeroshot::nn
