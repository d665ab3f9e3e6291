#include "nn/ops.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/attention_int8.h"
#include "nn/audio_ops.h"
#include "nn/gemm.h"
#include "nn/kernels.h"

namespace zeroshot::nn {

namespace {

// Below this many multiply-adds a GEMM is not worth splitting across threads.
constexpr long kMinParallelGemm = 1L << 18;
// Element-wise loops: values per thread chunk.
constexpr long kMinParallelElems = 1L << 14;
// Independent accumulators: breaks the add dependency chain (and lets the compiler vectorize) without
// reassociating any single sum.
constexpr int kLanes = 8;

double sum_lanes(const float* x, int n, double shift) {
  double acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += static_cast<double>(x[i + l]) - shift;
  for (; i < n; ++i) acc[0] += static_cast<double>(x[i]) - shift;
  double s = 0;
  for (double a : acc) s += a;
  return s;
}

double sum_sq_lanes(const float* x, int n, double mean) {
  double acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const double d = static_cast<double>(x[i + l]) - mean;
      acc[l] += d * d;
    }
  for (; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - mean;
    acc[0] += d * d;
  }
  double s = 0;
  for (double a : acc) s += a;
  return s;
}

}  // namespace

float quick_gelu(float x) { return x * (1.0f / (1.0f + std::exp(-1.702f * x))); }

float gelu_erf(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752440f)); }

float gelu_tanh(float x) {
  const float kAlpha = 0.79788456080286535588f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + std::tanh(kAlpha * (x + 0.044715f * x * x * x)));
}

void linear(const float* x, int m, int k, const float* w, const float* bias, int n, float* y, ThreadPool* pool) {
  if (m <= 0 || n <= 0) return;
  int parts = pool ? pool->threads() : 1;
  if (static_cast<long>(m) * n * k < kMinParallelGemm) parts = 1;
  parts = std::min(parts, (n + 15) / 16);
  // Column blocks rounded to 16 floats keep every block's start aligned like the whole matrix.
  const int per = parts <= 1 ? n : (((n + parts - 1) / parts + 15) & ~15);
  const int blocks = (n + per - 1) / per;
  auto run = [&](int blk) {
    const int j0 = blk * per, nc = std::min(per, n - j0);
    if (bias) {
      for (int i = 0; i < m; ++i) std::copy(bias + j0, bias + j0 + nc, y + static_cast<long>(i) * n + j0);
    }
    gemm(false, true, m, nc, k, 1.0f, x, k, w + static_cast<long>(j0) * k, k, bias ? 1.0f : 0.0f, y + j0, n);
  };
  if (blocks == 1 || !pool) {
    for (int b = 0; b < blocks; ++b) run(b);
  } else {
    pool->parallel_for(blocks, run);
  }
}

void layer_norm(const float* x, long rows, int dim, const float* gamma, const float* beta, float eps, float* y,
                ThreadPool* pool) {
  if (dim <= 0) return;
  if (kern::cpu_has_avx512()) {
    parallel_ranges(pool, rows, std::max(1L, kMinParallelElems / dim), [&](long r0, long r1) {
      kern::avx512::layer_norm(x + r0 * dim, r1 - r0, dim, gamma, beta, eps, y + r0 * dim);
    });
    return;
  }
  parallel_ranges(pool, rows, std::max(1L, kMinParallelElems / dim), [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      const double mean = sum_lanes(xr, dim, 0.0) / dim;
      const double var = sum_sq_lanes(xr, dim, mean) / dim;
      const double rstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
      for (int i = 0; i < dim; ++i) {
        // x - mean in double: rounding the mean to float first would cost precision when |mean| >> std.
        const float v = static_cast<float>((static_cast<double>(xr[i]) - mean) * rstd);
        yr[i] = v * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
      }
    }
  });
}

void softmax_row(float* x, int valid, int cols) {
  valid = std::clamp(valid, 0, cols);
  if (valid > 0) {
    float mx = x[0];
    for (int j = 1; j < valid; ++j) mx = std::max(mx, x[j]);
    float acc[kLanes] = {};
    int j = 0;
    for (; j + kLanes <= valid; j += kLanes)
      for (int l = 0; l < kLanes; ++l) {
        x[j + l] = std::exp(x[j + l] - mx);
        acc[l] += x[j + l];
      }
    for (; j < valid; ++j) {
      x[j] = std::exp(x[j] - mx);
      acc[0] += x[j];
    }
    float sum = 0;
    for (float a : acc) sum += a;
    const float inv = 1.0f / sum;
    for (j = 0; j < valid; ++j) x[j] *= inv;
  }
  for (int j = valid; j < cols; ++j) x[j] = 0.0f;
}

void activate(Act act, float* x, long n, ThreadPool* pool) {
  if (act == Act::Relu) return relu(x, n, pool);
  if (act == Act::Silu) return silu(x, n, pool);
  parallel_ranges(pool, n, kMinParallelElems, [&](long b, long e) {
    switch (act) {
      case Act::QuickGelu:
        for (long i = b; i < e; ++i) x[i] = quick_gelu(x[i]);
        break;
      case Act::Gelu:
        for (long i = b; i < e; ++i) x[i] = gelu_erf(x[i]);
        break;
      case Act::GeluTanh:
        for (long i = b; i < e; ++i) x[i] = gelu_tanh(x[i]);
        break;
      case Act::Relu:
      case Act::Silu: break;  // below
    }
  });
}

void add_inplace(float* y, const float* x, long n, ThreadPool* pool) {
  parallel_ranges(pool, n, 4 * kMinParallelElems, [&](long b, long e) {
    for (long i = b; i < e; ++i) y[i] += x[i];
  });
}

void attention(const float* q, const float* k, const float* v, const std::vector<int>& lens, int heads, int head_dim,
               float scale, bool causal, float* out, ThreadPool* pool) {
  const long dim = static_cast<long>(heads) * head_dim;
  attention(q, k, v, dim, lens, heads, head_dim, scale, causal, out, dim, pool);
}

AttnPrecision attention_precision(Precision p) {
  static const bool int8_off = [] {
    const char* e = std::getenv("ZEROSHOT_INT8_ATTENTION");
    return e && std::string(e) == "0";
  }();
  return p == Precision::Int8 && !int8_off ? AttnPrecision::Int8 : AttnPrecision::F32;
}

void attention(const float* q, const float* k, const float* v, long ld, const std::vector<int>& lens, int heads,
               int head_dim, float scale, bool causal, float* out, long ld_out, ThreadPool* pool, AttnPrecision ap) {
  std::vector<long> starts(lens.size());
  long rows = 0, max_len = 0, work = 0;
  for (size_t s = 0; s < lens.size(); ++s) {
    starts[s] = rows;
    rows += lens[s];
    max_len = std::max<long>(max_len, lens[s]);
    work += 2L * lens[s] * lens[s] * head_dim;
  }
  const long pairs = static_cast<long>(lens.size()) * heads;
  if (pairs == 0 || max_len == 0) return;
  const long min_pairs = std::max(1L, kMinParallelGemm * pairs / (work + 1));
  const bool int8 = ap == AttnPrecision::Int8;
  const bool avx = int8 ? kern::cpu_has_avx512_vnni() : kern::cpu_has_avx512();
  auto body = [&](long p0, long p1) {
    // Per thread, kept between calls (like PackedLinear's scratch): a fresh vector per chunk was an mmap of
    // ~0.3 MB at 729 tokens, its pages faulted in and zeroed by the kernel on every layer.
    thread_local std::vector<float> scratch;
    const size_t need = int8  ? (attention_int8_work_bytes(static_cast<int>(max_len), head_dim) + 3) / 4
                        : avx ? kern::avx512::attention_work_floats(static_cast<int>(max_len), head_dim)
                              : static_cast<size_t>(max_len * max_len);
    if (scratch.size() < need) scratch.resize(need);
    for (long p = p0; p < p1; ++p) {
      const long s = p / heads, h = p % heads;
      const int len = lens[static_cast<size_t>(s)];
      if (len <= 0) continue;
      const long row0 = starts[static_cast<size_t>(s)];
      const float* qs = q + row0 * ld + h * head_dim;
      const float* ks = k + row0 * ld + h * head_dim;
      const float* vs = v + row0 * ld + h * head_dim;
      float* os = out + row0 * ld_out + h * head_dim;
      if (int8) {
        auto* w = reinterpret_cast<unsigned char*>(scratch.data());
        if (avx) kern::avx512::attention_head_int8(qs, ks, vs, ld, len, head_dim, scale, causal, os, ld_out, w);
        else attention_head_int8(qs, ks, vs, ld, len, head_dim, scale, causal, os, ld_out, w);
        continue;
      }
      if (avx) {
        kern::avx512::attention_head(qs, ks, vs, ld, len, head_dim, scale, causal, os, ld_out, scratch.data());
        continue;
      }
      float* scores = scratch.data();
      gemm(false, true, len, len, head_dim, scale, qs, static_cast<int>(ld), ks, static_cast<int>(ld), 0.0f, scores,
           len);
      for (int i = 0; i < len; ++i) softmax_row(scores + static_cast<long>(i) * len, causal ? i + 1 : len, len);
      // Causal rows have zeros past the diagonal, so the full product equals the masked one.
      gemm(false, false, len, head_dim, len, 1.0f, scores, len, vs, static_cast<int>(ld), 0.0f, os,
           static_cast<int>(ld_out));
    }
  };
  // Ranges of (sequence, head) pairs taken in turn, shrinking towards the end (a late or preempted thread's share
  // moves on, and the last wait is short).
  parallel_guided(pool, pairs, min_pairs, body);
}

void self_attention(const float* x, const std::vector<int>& lens, int dim, int heads, const AttentionWeights& w,
                    bool causal, float* y, ThreadPool* pool, float* workspace) {
  long rows = 0;
  for (int l : lens) rows += l;
  const size_t size = static_cast<size_t>(rows) * dim;
  std::unique_ptr<float[]> owned;
  if (!workspace) {
    owned.reset(new float[4 * size]);
    workspace = owned.get();
  }
  float* q = workspace;
  float* k = q + size;
  float* v = k + size;
  float* ctx = v + size;
  const int m = static_cast<int>(rows);
  linear(x, m, dim, w.q_w, w.q_b, dim, q, pool);
  linear(x, m, dim, w.k_w, w.k_b, dim, k, pool);
  linear(x, m, dim, w.v_w, w.v_b, dim, v, pool);
  const int head_dim = dim / heads;
  // head_dim ** -0.5 as Python computes it (double), then used as a float.
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  attention(q, k, v, lens, heads, head_dim, scale, causal, ctx, pool);
  linear(ctx, m, dim, w.out_w, w.out_b, dim, y, pool);
}

}  // namespace zeroshot::nn
