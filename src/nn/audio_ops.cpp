#include "nn/audio_ops.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "nn/gemm.h"
#include "nn/ops.h"

namespace zeroshot::nn {

namespace {

// Element-wise loops: values per thread chunk (below this, threading costs more than it saves).
constexpr long kMinParallelElems = 1L << 14;

template <typename F>
void map_inplace(float* x, long n, ThreadPool* pool, F f) {
  parallel_ranges(pool, n, kMinParallelElems, [&](long b, long e) {
    for (long i = b; i < e; ++i) x[i] = f(x[i]);
  });
}

// PyTorch's cubic convolution kernels (A = -0.75), in float as its CPU kernel evaluates them.
float cubic_convolution1(float x, float a) { return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f; }
float cubic_convolution2(float x, float a) { return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a; }

}  // namespace

void relu(float* x, long n, ThreadPool* pool) {
  map_inplace(x, n, pool, [](float v) { return v > 0.0f ? v : (v == v ? 0.0f : v); });  // NaN stays NaN
}

void tanh_inplace(float* x, long n, ThreadPool* pool) {
  map_inplace(x, n, pool, [](float v) { return std::tanh(v); });
}

void sigmoid(float* x, long n, ThreadPool* pool) {
  map_inplace(x, n, pool, [](float v) { return 1.0f / (1.0f + std::exp(-v)); });
}

void silu(float* x, long n, ThreadPool* pool) {
  map_inplace(x, n, pool, [](float v) { return v / (1.0f + std::exp(-v)); });
}

BatchNormAffine batch_norm_affine(const float* mean, const float* var, const float* weight, const float* bias,
                                  int channels, double eps) {
  BatchNormAffine bn;
  bn.scale.resize(static_cast<size_t>(std::max(channels, 0)));
  bn.shift.resize(bn.scale.size());
  for (int c = 0; c < channels; ++c) {
    const double s = (weight ? static_cast<double>(weight[c]) : 1.0) / std::sqrt(static_cast<double>(var[c]) + eps);
    bn.scale[c] = static_cast<float>(s);
    bn.shift[c] = static_cast<float>((bias ? static_cast<double>(bias[c]) : 0.0) - static_cast<double>(mean[c]) * s);
  }
  return bn;
}

void batch_norm_channels_last(const float* x, long rows, const BatchNormAffine& bn, float* y, ThreadPool* pool) {
  const int c = static_cast<int>(bn.scale.size());
  if (c == 0) return;
  const float* scale = bn.scale.data();
  const float* shift = bn.shift.data();
  parallel_ranges(pool, rows, std::max(1L, kMinParallelElems / c), [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const float* xr = x + r * c;
      float* yr = y + r * c;
      for (int j = 0; j < c; ++j) yr[j] = xr[j] * scale[j] + shift[j];
    }
  });
}

void bicubic_resize_rows(const float* x, int planes, int in_len, int out_len, int width, float* y, ThreadPool* pool) {
  if (planes <= 0 || out_len <= 0 || width <= 0 || in_len <= 0) return;
  // Per output row: the four clamped source rows and their weights (PyTorch: scale in float, src = scale * dst,
  // index = floor(src), t = src - index, both clamped).
  struct Tap {
    int idx[4];
    float w[4];
  };
  std::vector<Tap> taps(static_cast<size_t>(out_len));
  const float scale = out_len > 1 ? static_cast<float>(in_len - 1) / static_cast<float>(out_len - 1) : 0.0f;
  const float a = -0.75f;
  for (int o = 0; o < out_len; ++o) {
    const float src = scale * static_cast<float>(o);
    const int base = std::min(static_cast<int>(std::floor(src)), in_len - 1);
    // PyTorch's compiled kernel contracts `scale * o - index` into one FMA: t is the exact residual of the
    // unrounded product, rounded once (measured on its outputs: 4e-5 closer than src - index in float).
    const float t = std::clamp(std::fma(scale, static_cast<float>(o), -static_cast<float>(base)), 0.0f, 1.0f);
    Tap& tp = taps[o];
    tp.w[0] = cubic_convolution2(t + 1.0f, a);
    tp.w[1] = cubic_convolution1(t, a);
    const float t2 = 1.0f - t;
    tp.w[2] = cubic_convolution1(t2, a);
    tp.w[3] = cubic_convolution2(t2 + 1.0f, a);
    for (int k = 0; k < 4; ++k) tp.idx[k] = std::clamp(base - 1 + k, 0, in_len - 1);
  }
  const long rows = static_cast<long>(planes) * out_len;
  parallel_ranges(pool, rows, std::max(1L, kMinParallelElems / width), [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const long p = r / out_len;
      const Tap& tp = taps[static_cast<size_t>(r % out_len)];
      const float* plane = x + p * in_len * static_cast<long>(width);
      const float* s0 = plane + static_cast<long>(tp.idx[0]) * width;
      const float* s1 = plane + static_cast<long>(tp.idx[1]) * width;
      const float* s2 = plane + static_cast<long>(tp.idx[2]) * width;
      const float* s3 = plane + static_cast<long>(tp.idx[3]) * width;
      float* yr = y + r * width;
      for (int j = 0; j < width; ++j) yr[j] = s0[j] * tp.w[0] + s1[j] * tp.w[1] + s2[j] * tp.w[2] + s3[j] * tp.w[3];
    }
  });
}

void fold_mel_to_image(const float* x, int planes, int ratio, int cols, int mels, float* y, ThreadPool* pool) {
  const long out_rows = static_cast<long>(planes) * ratio * mels;
  parallel_ranges(pool, out_rows, std::max(1L, kMinParallelElems / std::max(cols, 1)), [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const long p = r / (static_cast<long>(ratio) * mels);
      const int k = static_cast<int>((r / mels) % ratio), m = static_cast<int>(r % mels);
      const float* src = x + (p * ratio * cols + static_cast<long>(k) * cols) * mels + m;
      float* dst = y + r * cols;
      for (int j = 0; j < cols; ++j) dst[j] = src[static_cast<long>(j) * mels];
    }
  });
}

void unroll_patches(const float* x, int images, int h, int w, int kh, int kw, float* y, ThreadPool* pool) {
  const int gh = h / kh, gw = w / kw, kdim = kh * kw;
  const long patches = static_cast<long>(images) * gh * gw;
  parallel_ranges(pool, patches, std::max(1L, kMinParallelElems / std::max(kdim, 1)), [&](long p0, long p1) {
    for (long p = p0; p < p1; ++p) {
      const long img = p / (static_cast<long>(gh) * gw);
      const int py = static_cast<int>((p / gw) % gh), px = static_cast<int>(p % gw);
      const float* src = x + (img * h + static_cast<long>(py) * kh) * w + static_cast<long>(px) * kw;
      float* dst = y + p * kdim;
      for (int ky = 0; ky < kh; ++ky)
        std::copy(src + static_cast<long>(ky) * w, src + static_cast<long>(ky) * w + kw, dst + ky * kw);
    }
  });
}

std::vector<float> expand_relative_position_bias(const float* table, int window, int heads) {
  const int n = window * window, span = 2 * window - 1;
  std::vector<float> out(static_cast<size_t>(heads) * n * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const int dy = i / window - j / window + window - 1, dx = i % window - j % window + window - 1;
      const float* row = table + static_cast<size_t>(dy * span + dx) * heads;
      for (int h = 0; h < heads; ++h) out[(static_cast<size_t>(h) * n + i) * n + j] = row[h];
    }
  return out;
}

std::vector<int32_t> window_permutation(int grid, int window, int shift) {
  const int per_row = grid / window, n = window * window;
  std::vector<int32_t> perm(static_cast<size_t>(grid) * grid);
  for (int wy = 0; wy < per_row; ++wy)
    for (int wx = 0; wx < per_row; ++wx)
      for (int i = 0; i < n; ++i) {
        // roll by -shift: shifted[r][c] = x[(r + shift) % grid][(c + shift) % grid]
        const int r = (wy * window + i / window + shift) % grid, c = (wx * window + i % window + shift) % grid;
        perm[(static_cast<size_t>(wy) * per_row + wx) * n + i] = r * grid + c;
      }
  return perm;
}

std::vector<float> shifted_window_mask(int grid, int window, int shift) {
  if (shift <= 0) return {};
  // Swin's img_mask: rows/columns [0, grid - window), [grid - window, grid - shift), [grid - shift, grid) get
  // labels 0, 1, 2 (in the rolled frame, which is where the windows are cut).
  auto band = [&](int v) { return v < grid - window ? 0 : (v < grid - shift ? 1 : 2); };
  const int per_row = grid / window, n = window * window;
  std::vector<uint8_t> regions(static_cast<size_t>(grid) * grid);
  for (int wy = 0; wy < per_row; ++wy)
    for (int wx = 0; wx < per_row; ++wx)
      for (int i = 0; i < n; ++i) {
        const int r = wy * window + i / window, c = wx * window + i % window;
        regions[(static_cast<size_t>(wy) * per_row + wx) * n + i] = static_cast<uint8_t>(band(r) * 3 + band(c));
      }
  std::vector<float> mask(static_cast<size_t>(per_row) * per_row * n * n);
  for (size_t w = 0; w < static_cast<size_t>(per_row) * per_row; ++w)
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) mask[(w * n + i) * n + j] = regions[w * n + i] != regions[w * n + j] ? -100.0f : 0.0f;
  return mask;
}

void gather_rows(const float* src, const std::vector<int32_t>& perm, int batches, int dim, float* dst,
                 ThreadPool* pool) {
  const long per = static_cast<long>(perm.size()), rows = per * batches;
  parallel_ranges(pool, rows, std::max(1L, kMinParallelElems / std::max(dim, 1)), [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const long b = r / per;
      const float* s = src + (b * per + perm[static_cast<size_t>(r % per)]) * dim;
      std::copy(s, s + dim, dst + r * dim);
    }
  });
}

void scatter_add_rows(float* dst, const std::vector<int32_t>& perm, int batches, int dim, const float* src,
                      ThreadPool* pool) {
  const long per = static_cast<long>(perm.size()), rows = per * batches;
  // perm is a permutation, so no two source rows hit the same destination row: ranges are independent.
  parallel_ranges(pool, rows, std::max(1L, kMinParallelElems / std::max(dim, 1)), [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const long b = r / per;
      float* d = dst + (b * per + perm[static_cast<size_t>(r % per)]) * dim;
      const float* s = src + r * dim;
      for (int j = 0; j < dim; ++j) d[j] += s[j];
    }
  });
}

// exp(x) for x <= 0 (softmax inputs after the max is subtracted), written so the compiler can vectorize the loops
// that call it (libm's expf is an opaque call per element): Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2,
// Cephes' expf polynomial for e^r (~1 ulp), 2^n through the exponent bits. Below -87 (where e^x nears the
// subnormal range) the result is 0: a softmax term that small is far below the rounding of the sum it joins.
// NaN stays NaN; every value reaching the integer conversion is in [-126, 0].
inline float exp_nonpositive(float x) {
  const float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float xc = x >= -87.0f ? (x <= 0.0f ? x : 0.0f) : -87.0f;
  const float n = (xc * kLog2e + kRound) - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  float scale2;
  std::memcpy(&scale2, &e, sizeof(scale2));
  return x >= -87.0f ? p * scale2 : (x == x ? 0.0f : x);
}

// Compiled for AVX-512 too when the compiler can (chosen at run time); same arithmetic either way (no FMA
// contraction in the clones either: the build sets -ffp-contract=off, GCC's ISO C++ default, for clang too).
// Not under ThreadSanitizer: the clones' ifunc resolver runs during relocation, before the TSan runtime is up,
// and crashes the program at start-up.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ZS_NO_IFUNC 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define ZS_NO_IFUNC 1
#endif
#if defined(__x86_64__) && !defined(ZS_NO_IFUNC) && (!defined(__clang__) || __clang_major__ >= 14)
#define ZS_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ZS_TARGET_CLONES
#endif

namespace {

// The clones live on a function of its own: clang 14 silently drops target_clones from a function that was
// declared before without it (audio_ops.h), where GCC keeps them.
ZS_TARGET_CLONES
void bias_softmax_rows_cloned(float* s, int rows, int n, const float* bias, const float* mask) {
  constexpr int kL = 16;  // independent lanes: vectorizable max / sum without reassociating any one of them
  for (int i = 0; i < rows; ++i) {
    float* row = s + static_cast<size_t>(i) * n;
    const float* b = bias + static_cast<size_t>(i) * n;
    if (mask) {
      const float* m = mask + static_cast<size_t>(i) * n;
      for (int j = 0; j < n; ++j) row[j] = (row[j] + b[j]) + m[j];
    } else {
      for (int j = 0; j < n; ++j) row[j] += b[j];
    }
    float mx[kL];
    for (float& m : mx) m = row[0];
    int j = 0;
    for (; j + kL <= n; j += kL)
      for (int l = 0; l < kL; ++l) mx[l] = row[j + l] > mx[l] ? row[j + l] : mx[l];
    for (; j < n; ++j) mx[0] = row[j] > mx[0] ? row[j] : mx[0];
    float m = mx[0];
    for (int l = 1; l < kL; ++l) m = mx[l] > m ? mx[l] : m;
    float acc[kL] = {};
    j = 0;
    for (; j + kL <= n; j += kL)
      for (int l = 0; l < kL; ++l) {
        const float e = exp_nonpositive(row[j + l] - m);
        row[j + l] = e;
        acc[l] += e;
      }
    for (; j < n; ++j) {
      row[j] = exp_nonpositive(row[j] - m);
      acc[0] += row[j];
    }
    float sum = 0.0f;
    for (float a : acc) sum += a;
    const float inv = 1.0f / sum;
    for (j = 0; j < n; ++j) row[j] *= inv;
  }
}

}  // namespace

void bias_softmax_rows(float* s, int rows, int n, const float* bias, const float* mask) {
  bias_softmax_rows_cloned(s, rows, n, bias, mask);
}

void window_attention(const float* q, const float* k, const float* v, int ld, int windows, int n, int heads,
                      int head_dim, float scale, const float* bias, const float* mask, int mask_windows, float* out,
                      ThreadPool* pool) {
  const long pairs = static_cast<long>(windows) * heads;
  if (pairs <= 0 || n <= 0) return;
  const int dim = heads * head_dim;
  // ~4 n^2 head_dim flops per pair: a few pairs per chunk keep the threading overhead negligible.
  parallel_ranges(pool, pairs, 4, [&](long p0, long p1) {
    std::vector<float> scores(static_cast<size_t>(n) * n);  // per chunk: no shared scratch
    for (long p = p0; p < p1; ++p) {
      const long w = p / heads;
      const int h = static_cast<int>(p % heads);
      const long row0 = w * n;
      const float* qw = q + row0 * ld + static_cast<long>(h) * head_dim;
      const float* kw = k + row0 * ld + static_cast<long>(h) * head_dim;
      const float* vw = v + row0 * ld + static_cast<long>(h) * head_dim;
      gemm(false, true, n, n, head_dim, scale, qw, ld, kw, ld, 0.0f, scores.data(), n);
      bias_softmax_rows(scores.data(), n, n, bias + static_cast<size_t>(h) * n * n,
                        mask ? mask + static_cast<size_t>(w % mask_windows) * n * n : nullptr);
      gemm(false, false, n, head_dim, n, 1.0f, scores.data(), n, vw, ld, 0.0f,
           out + row0 * dim + static_cast<long>(h) * head_dim, dim);
    }
  });
}

void patch_merge(const float* x, int batches, int grid, int c, float* y, ThreadPool* pool) {
  const int half = grid / 2;
  const long rows = static_cast<long>(batches) * half * half;
  parallel_ranges(pool, rows, std::max(1L, kMinParallelElems / (4L * std::max(c, 1))), [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const long b = r / (static_cast<long>(half) * half);
      const int i = static_cast<int>((r / half) % half), j = static_cast<int>(r % half);
      const float* base = x + b * grid * static_cast<long>(grid) * c;
      float* dst = y + r * 4L * c;
      const int src_rc[4][2] = {{2 * i, 2 * j}, {2 * i + 1, 2 * j}, {2 * i, 2 * j + 1}, {2 * i + 1, 2 * j + 1}};
      for (int q = 0; q < 4; ++q) {
        const float* s = base + (static_cast<long>(src_rc[q][0]) * grid + src_rc[q][1]) * c;
        std::copy(s, s + c, dst + static_cast<long>(q) * c);
      }
    }
  });
}

void aff_combine(const float* g, const float* l, const float* local_att, const float* global_att, long rows, int c,
                 float* out, ThreadPool* pool) {
  parallel_ranges(pool, rows, std::max(1L, kMinParallelElems / std::max(c, 1)), [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const long off = r * c;
      for (int j = 0; j < c; ++j) {
        const float w = 1.0f / (1.0f + std::exp(-(local_att[off + j] + global_att[j])));
        out[off + j] = 2.0f * g[off + j] * w + 2.0f * l[off + j] * (1.0f - w);
      }
    }
  });
}

void column_mean(const float* x, long rows, int c, float* out) {
  std::vector<double> acc(static_cast<size_t>(std::max(c, 0)), 0.0);
  for (long r = 0; r < rows; ++r)
    for (int j = 0; j < c; ++j) acc[j] += x[r * c + j];
  for (int j = 0; j < c; ++j) out[j] = static_cast<float>(acc[j] / static_cast<double>(std::max(rows, 1L)));
}

}  // namespace zeroshot::nn
