// The audio kernels against direct (naive, double precision where it matters) transcriptions of the PyTorch /
// Hugging Face code they replace, on random data, with and without a thread pool.
#include "nn/audio_ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "nn/ops.h"
#include "support/compare.h"

namespace zeroshot::nn {
namespace {

std::vector<float> random_vec(size_t n, unsigned seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

using zeroshot::testing::max_abs_diff;

TEST(AudioOps, Activations) {
  std::vector<float> x = {-3.0f, -0.5f, 0.0f, 0.5f, 3.0f, 40.0f, -40.0f};
  auto r = x, t = x, s = x, si = x;
  relu(r.data(), static_cast<long>(r.size()), nullptr);
  tanh_inplace(t.data(), static_cast<long>(t.size()), nullptr);
  sigmoid(s.data(), static_cast<long>(s.size()), nullptr);
  silu(si.data(), static_cast<long>(si.size()), nullptr);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(r[i], std::max(x[i], 0.0f));
    EXPECT_NEAR(t[i], std::tanh(static_cast<double>(x[i])), 1e-7);
    const double sg = 1.0 / (1.0 + std::exp(-static_cast<double>(x[i])));
    EXPECT_NEAR(s[i], sg, 1e-7);
    EXPECT_NEAR(si[i], x[i] * sg, 1e-6 * std::max(1.0f, std::fabs(x[i])));
  }
  std::vector<float> nan = {std::nanf("")};
  relu(nan.data(), 1, nullptr);
  EXPECT_TRUE(std::isnan(nan[0]));
}

TEST(AudioOps, BatchNormMatchesDefinition) {
  const int c = 7, rows = 300;
  const auto x = random_vec(static_cast<size_t>(rows) * c, 1, -80.0f, 0.0f);
  const auto mean = random_vec(c, 2, -50.0f, -40.0f), var = random_vec(c, 3, 100.0f, 300.0f);
  const auto w = random_vec(c, 4, 0.8f, 1.2f), b = random_vec(c, 5, -0.2f, 0.2f);
  const BatchNormAffine bn = batch_norm_affine(mean.data(), var.data(), w.data(), b.data(), c, 1e-5);
  std::vector<float> y(x.size()), want(x.size());
  ThreadPool pool(2);
  batch_norm_channels_last(x.data(), rows, bn, y.data(), &pool);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < c; ++j) {
      const double v = (x[r * c + j] - static_cast<double>(mean[j])) / std::sqrt(var[j] + 1e-5) * w[j] + b[j];
      want[r * c + j] = static_cast<float>(v);
    }
  EXPECT_LE(max_abs_diff(y, want), 2e-6f);
  // Null weight / bias: 1 / 0.
  const BatchNormAffine plain = batch_norm_affine(mean.data(), var.data(), nullptr, nullptr, c, 1e-5);
  EXPECT_NEAR(plain.scale[0], 1.0 / std::sqrt(var[0] + 1e-5), 1e-7);
  EXPECT_NEAR(plain.shift[0], -mean[0] / std::sqrt(var[0] + 1e-5), 1e-5);
}

TEST(AudioOps, BicubicMatchesTorch) {
  // torch.nn.functional.interpolate(x [1,1,5,2], (8, 2), mode="bicubic", align_corners=True), PyTorch 1.13.
  const std::vector<float> x = {0.5f, -1.0f, 2.0f, 3.0f, -4.0f, 0.25f, 1.5f, 1.0f, 7.0f, -2.0f};
  const std::vector<float> torch_out = {0.5f,
                                        -1.0f,
                                        1.9999992847442627f,
                                        1.6093298196792603f,
                                        1.3199706077575684f,
                                        2.9723031520843506f,
                                        -2.952624797821045f,
                                        1.0685126781463623f,
                                        -3.445333957672119f,
                                        0.27842557430267334f,
                                        0.32288599014282227f,
                                        1.1093316078186035f,
                                        4.386300086975098f,
                                        -0.18075907230377197f,
                                        7.000002861022949f,
                                        -2.0000009536743164f};
  std::vector<float> y(16);
  bicubic_resize_rows(x.data(), 1, 5, 8, 2, y.data(), nullptr);
  EXPECT_LE(max_abs_diff(y, torch_out), 2e-6f);  // a few float ulps at |y| = 7
}

// Keys's cubic convolution written from its definition, in double.
double keys(double s) {
  const double a = -0.75;
  s = std::fabs(s);
  if (s <= 1) return ((a + 2) * s - (a + 3)) * s * s + 1;
  if (s < 2) return ((a * s - 5 * a) * s + 8 * a) * s - 4 * a;
  return 0;
}

TEST(AudioOps, BicubicMatchesDefinition) {
  const int planes = 3, in = 1001, out = 1024, w = 5;
  const auto x = random_vec(static_cast<size_t>(planes) * in * w, 6);
  std::vector<float> y(static_cast<size_t>(planes) * out * w), want(y.size());
  ThreadPool pool(2);
  bicubic_resize_rows(x.data(), planes, in, out, w, y.data(), &pool);
  for (int p = 0; p < planes; ++p)
    for (int o = 0; o < out; ++o) {
      // PyTorch's positions: scale in float, index = floor of the float product, t from the exact product.
      const float scale = static_cast<float>(in - 1) / static_cast<float>(out - 1);
      const int base = std::min(static_cast<int>(std::floor(scale * static_cast<float>(o))), in - 1);
      const double src = static_cast<double>(scale) * o;
      for (int j = 0; j < w; ++j) {
        double acc = 0;
        for (int k = -1; k <= 2; ++k) {
          const int idx = std::clamp(base + k, 0, in - 1);
          acc += keys(src - (base + k)) * x[(static_cast<size_t>(p) * in + idx) * w + j];
        }
        want[(static_cast<size_t>(p) * out + o) * w + j] = static_cast<float>(acc);
      }
    }
  EXPECT_LE(max_abs_diff(y, want), 2e-6f);
  // Same length: identity (t = 0 gives weights 0, 1, 0, 0 exactly).
  std::vector<float> same(x.size());
  bicubic_resize_rows(x.data(), planes, in, in, w, same.data(), &pool);
  EXPECT_EQ(same, x);
}

TEST(AudioOps, FoldMatchesHfReshapes) {
  // HF: x [B, C, T, F] -> reshape(B, C * r, T / r, F) -> permute(0, 1, 3, 2) -> reshape(B, C, F * r, T / r).
  const int planes = 2, r = 4, cols = 6, mels = 3, t = r * cols;
  const auto x = random_vec(static_cast<size_t>(planes) * t * mels, 7);
  std::vector<float> y(x.size()), want(x.size());
  fold_mel_to_image(x.data(), planes, r, cols, mels, y.data(), nullptr);
  // After the first reshape, [p][k][j][m] = x[p][k * cols + j][m]; permute gives [p][k][m][j], contiguous; the last
  // reshape just regroups (k, m) rows into F * r rows.
  size_t o = 0;
  for (int p = 0; p < planes; ++p)
    for (int k = 0; k < r; ++k)
      for (int m = 0; m < mels; ++m)
        for (int j = 0; j < cols; ++j) want[o++] = x[(static_cast<size_t>(p) * t + k * cols + j) * mels + m];
  EXPECT_EQ(y, want);
}

TEST(AudioOps, UnrolledPatchesGiveTheConvolution) {
  const int images = 2, h = 9, w = 26, kh = 4, kw = 12, out = 5;  // partial patches at the edges are dropped
  const auto x = random_vec(static_cast<size_t>(images) * h * w, 8);
  const auto weight = random_vec(static_cast<size_t>(out) * kh * kw, 9), bias = random_vec(out, 10);
  const int gh = h / kh, gw = w / kw;
  std::vector<float> cols(static_cast<size_t>(images) * gh * gw * kh * kw),
      y(static_cast<size_t>(images) * gh * gw * out);
  unroll_patches(x.data(), images, h, w, kh, kw, cols.data(), nullptr);
  linear(cols.data(), images * gh * gw, kh * kw, weight.data(), bias.data(), out, y.data(), nullptr);
  std::vector<float> want(y.size());
  for (int i = 0; i < images; ++i)
    for (int py = 0; py < gh; ++py)
      for (int px = 0; px < gw; ++px)
        for (int o = 0; o < out; ++o) {
          double acc = bias[o];
          for (int ky = 0; ky < kh; ++ky)
            for (int kx = 0; kx < kw; ++kx)
              acc += static_cast<double>(weight[(o * kh + ky) * kw + kx]) *
                     x[(static_cast<size_t>(i) * h + py * kh + ky) * w + px * kw + kx];
          want[((static_cast<size_t>(i) * gh + py) * gw + px) * out + o] = static_cast<float>(acc);
        }
  EXPECT_LE(max_abs_diff(y, want), 1e-5f);
}

TEST(AudioOps, RelativePositionBiasLikeSwin) {
  // Swin's relative_position_index: coords (y, x) of each window token, pairwise differences shifted to be
  // non-negative, index = dy' * (2 ws - 1) + dx'.
  const int ws = 4, heads = 3, span = 2 * ws - 1;
  const auto table = random_vec(static_cast<size_t>(span) * span * heads, 11);
  const auto bias = expand_relative_position_bias(table.data(), ws, heads);
  const int n = ws * ws;
  ASSERT_EQ(bias.size(), static_cast<size_t>(heads) * n * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      int rel0 = i / ws - j / ws, rel1 = i % ws - j % ws;
      rel0 += ws - 1;
      rel1 += ws - 1;
      rel0 *= 2 * ws - 1;
      const int index = rel0 + rel1;
      for (int h = 0; h < heads; ++h)
        EXPECT_EQ(bias[(static_cast<size_t>(h) * n + i) * n + j], table[index * heads + h]);
    }
}

// torch.roll(x, (-s, -s)) then window_partition, written out on coordinates.
std::vector<int32_t> naive_permutation(int grid, int ws, int s) {
  std::vector<int32_t> rolled(static_cast<size_t>(grid) * grid);
  for (int r = 0; r < grid; ++r)
    for (int c = 0; c < grid; ++c) rolled[r * grid + c] = ((r + s) % grid) * grid + (c + s) % grid;
  std::vector<int32_t> out;
  for (int wy = 0; wy < grid / ws; ++wy)
    for (int wx = 0; wx < grid / ws; ++wx)
      for (int i = 0; i < ws; ++i)
        for (int j = 0; j < ws; ++j) out.push_back(rolled[(wy * ws + i) * grid + wx * ws + j]);
  return out;
}

TEST(AudioOps, WindowPermutationAndRegions) {
  for (int shift : {0, 2}) {
    const auto perm = window_permutation(8, 4, shift);
    EXPECT_EQ(perm, naive_permutation(8, 4, shift)) << shift;
    std::vector<int32_t> sorted = perm;
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i < 64; ++i) EXPECT_EQ(sorted[i], i);
  }
  EXPECT_TRUE(shifted_window_mask(8, 4, 0).empty());
  // HF's img_mask on the rolled map: slices (0, -ws), (-ws, -s), (-s, None) on each axis, counted row-major.
  const int grid = 16, ws = 8, s = 4;
  std::vector<int> img(static_cast<size_t>(grid) * grid);
  const int cuts[4] = {0, grid - ws, grid - s, grid};
  int count = 0;
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b, ++count)
      for (int r = cuts[a]; r < cuts[a + 1]; ++r)
        for (int c = cuts[b]; c < cuts[b + 1]; ++c) img[r * grid + c] = count;
  const auto mask = shifted_window_mask(grid, ws, s);
  ASSERT_EQ(mask.size(), 4u * 64 * 64);
  // HF: mask_windows = window_partition(img_mask); attn_mask = (m[None, :] - m[:, None]) != 0 -> -100, else 0.
  const auto order = naive_permutation(grid, ws, 0);  // window partition of the (already rolled) label map
  int masked = 0;
  for (int w = 0; w < 4; ++w)
    for (int i = 0; i < 64; ++i)
      for (int j = 0; j < 64; ++j) {
        const bool hf_masked = img[order[w * 64 + j]] - img[order[w * 64 + i]] != 0;
        EXPECT_EQ(mask[(w * 64 + i) * 64 + j], hf_masked ? -100.0f : 0.0f);
        masked += hf_masked;
      }
  EXPECT_GT(masked, 0);
  // The top-left window is never masked; the bottom-right one mixes four regions.
  for (int k = 0; k < 64 * 64; ++k) EXPECT_EQ(mask[k], 0.0f);
}

TEST(AudioOps, GatherScatterRoundTrip) {
  const int grid = 8, dim = 5, batches = 3;
  const auto perm = window_permutation(grid, 4, 2);
  const auto x = random_vec(static_cast<size_t>(batches) * grid * grid * dim, 12);
  std::vector<float> g(x.size());
  ThreadPool pool(2);
  gather_rows(x.data(), perm, batches, dim, g.data(), &pool);
  for (int b = 0; b < batches; ++b)
    for (int i = 0; i < grid * grid; ++i)
      for (int d = 0; d < dim; ++d) ASSERT_EQ(g[(b * 64 + i) * dim + d], x[(b * 64 + perm[i]) * dim + d]);
  std::vector<float> acc(x.size(), 1.0f);
  scatter_add_rows(acc.data(), perm, batches, dim, g.data(), &pool);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(acc[i], 1.0f + x[i]);
}

TEST(AudioOps, WindowAttentionMatchesNaive) {
  const int windows = 6, n = 16, heads = 2, hd = 3, dim = heads * hd, ld = 3 * dim, region_windows = 3;
  const auto qkv = random_vec(static_cast<size_t>(windows) * n * ld, 13, -2.0f, 2.0f);
  const auto bias = random_vec(static_cast<size_t>(heads) * n * n, 14);
  std::vector<float> mask(static_cast<size_t>(region_windows) * n * n);
  std::mt19937 rng(15);
  for (auto& m : mask) m = rng() % 3 == 0 ? -100.0f : 0.0f;
  const float scale = 0.57735026f;
  for (bool masked : {false, true}) {
    std::vector<float> out(static_cast<size_t>(windows) * n * dim), want(out.size());
    ThreadPool pool(2);
    window_attention(qkv.data(), qkv.data() + dim, qkv.data() + 2 * dim, ld, windows, n, heads, hd, scale, bias.data(),
                     masked ? mask.data() : nullptr, region_windows, out.data(), &pool);
    for (int w = 0; w < windows; ++w)
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < n; ++i) {
          std::vector<double> s(n);
          double mx = -1e300;
          for (int j = 0; j < n; ++j) {
            double dot = 0;
            for (int d = 0; d < hd; ++d)
              dot += static_cast<double>(qkv[(w * n + i) * ld + h * hd + d]) * qkv[(w * n + j) * ld + dim + h * hd + d];
            s[j] = dot * scale + bias[(h * n + i) * n + j];
            if (masked) s[j] += mask[((w % region_windows) * n + i) * n + j];
            mx = std::max(mx, s[j]);
          }
          double sum = 0;
          for (int j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - mx));
          for (int d = 0; d < hd; ++d) {
            double acc = 0;
            for (int j = 0; j < n; ++j) acc += s[j] / sum * qkv[(w * n + j) * ld + 2 * dim + h * hd + d];
            want[(w * n + i) * dim + h * hd + d] = static_cast<float>(acc);
          }
        }
    EXPECT_LE(max_abs_diff(out, want), 1e-5f) << masked;
  }
}

TEST(AudioOps, BiasSoftmaxIsAccurate) {
  // Rows with a wide range of values (masked entries far below the rest, ties, one-hot rows).
  const int rows = 40, n = 67;
  auto s = random_vec(static_cast<size_t>(rows) * n, 21, -30.0f, 30.0f);
  const auto bias = random_vec(s.size(), 22, -5.0f, 5.0f);
  std::vector<float> mask(s.size(), 0.0f);
  for (size_t i = 0; i < mask.size(); i += 3) mask[i] = -100.0f;
  for (int j = 0; j < n; ++j) s[j] = 1.0f;  // row 0: all equal before bias
  const auto in = s;
  bias_softmax_rows(s.data(), rows, n, bias.data(), mask.data());
  double worst = 0;
  for (int i = 0; i < rows; ++i) {
    // The exponent arguments as float arithmetic forms them (their rounding is not the exp's error), then double.
    std::vector<float> arg(n);
    std::vector<double> e(n);
    float mx = -1e30f;
    double sum = 0;
    for (int j = 0; j < n; ++j) mx = std::max(mx, arg[j] = (in[i * n + j] + bias[i * n + j]) + mask[i * n + j]);
    for (int j = 0; j < n; ++j) sum += (e[j] = std::exp(static_cast<double>(arg[j] - mx)));
    for (int j = 0; j < n; ++j)
      worst =
          std::max(worst, std::fabs(s[i * n + j] - e[j] / sum) / std::max(e[j] / sum, 1e-30) * (e[j] / sum > 1e-30));
  }
  EXPECT_LE(worst, 2e-6);  // relative, every probability above 1e-30 (a few float ulps)
  // exp of every float in [-87, 0] vs the double one
  double wexp = 0;
  for (float x = -87.0f; x <= 0.0f; x += 0.0137f) {
    std::vector<float> two = {x, 0.0f};
    const std::vector<float> zero(2, 0.0f);
    bias_softmax_rows(two.data(), 1, 2, zero.data(), nullptr);
    const double want = std::exp(static_cast<double>(x)) / (1.0 + std::exp(static_cast<double>(x)));
    wexp = std::max(wexp, std::fabs(two[0] - want) / want);
  }
  EXPECT_LE(wexp, 1e-6);
}

TEST(AudioOps, PatchMergeOrder) {
  const int batches = 2, grid = 4, c = 3;
  const auto x = random_vec(static_cast<size_t>(batches) * grid * grid * c, 16);
  std::vector<float> y(x.size());
  patch_merge(x.data(), batches, grid, c, y.data(), nullptr);
  // HF: cat([x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]], -1) on [H, W, C].
  const int offs[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
  for (int b = 0; b < batches; ++b)
    for (int i = 0; i < grid / 2; ++i)
      for (int j = 0; j < grid / 2; ++j)
        for (int q = 0; q < 4; ++q)
          for (int k = 0; k < c; ++k) {
            const float got = y[((b * 2 + i) * 2 + j) * 4 * c + q * c + k];
            EXPECT_EQ(got, x[((b * grid + 2 * i + offs[q][0]) * grid + 2 * j + offs[q][1]) * c + k]);
          }
}

TEST(AudioOps, AffCombineAndColumnMean) {
  const long rows = 50;
  const int c = 4;
  const auto g = random_vec(rows * c, 17), l = random_vec(rows * c, 18), la = random_vec(rows * c, 19, -3, 3),
             ga = random_vec(c, 20, -3, 3);
  std::vector<float> out(g.size());
  aff_combine(g.data(), l.data(), la.data(), ga.data(), rows, c, out.data(), nullptr);
  for (long r = 0; r < rows; ++r)
    for (int j = 0; j < c; ++j) {
      const double w = 1.0 / (1.0 + std::exp(-(static_cast<double>(la[r * c + j]) + ga[j])));
      EXPECT_NEAR(out[r * c + j], 2 * g[r * c + j] * w + 2 * l[r * c + j] * (1 - w), 1e-6);
    }
  std::vector<float> mean(c);
  column_mean(g.data(), rows, c, mean.data());
  for (int j = 0; j < c; ++j) {
    double s = 0;
    for (long r = 0; r < rows; ++r) s += g[r * c + j];
    EXPECT_NEAR(mean[j], s / rows, 1e-7);
  }
}

}  // namespace
}  // namespace zeroshot::nn
