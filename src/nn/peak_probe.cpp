#include "nn/peak_probe.h"

// Same arrangement as kernels_avx512.cpp: only the loops below are compiled for AVX-512 (a target pragma after
// every include), chosen at run time.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "nn/kernels.h"
#include "nn/linear.h"

namespace zeroshot::nn {

namespace {

// Iterations of the inner loop per call: 12 independent instructions each (enough accumulators to cover the
// 4-cycle latency on 2 ports), ~30 ms per call on a 3 GHz core.
constexpr long kIters = 1L << 22;
constexpr int kChains = 12;

}  // namespace

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx512vnni"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx512vnni")
#endif

namespace {

// Each returns something computed from every accumulator, so that no loop can be dropped.
float loop_f32(long iters) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(0.001f * static_cast<float>(c));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.0001f);
  for (long i = 0; i < iters; ++i)
    for (__m512& x : acc) x = _mm512_fmadd_ps(x, a, b);
  __m512 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
  return _mm512_reduce_add_ps(s);
}

float loop_bf16(long iters) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(0.001f * static_cast<float>(c));
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(3e-4f));
  for (long i = 0; i < iters; ++i)
    for (__m512& x : acc) x = _mm512_dpbf16_ps(x, a, b);
  __m512 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
  return _mm512_reduce_add_ps(s);
}

float loop_int8(long iters) {
  __m512i acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_epi32(c);
  const __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(-1);  // sums stay small: no overflow
  for (long i = 0; i < iters; ++i)
    for (__m512i& x : acc) x = _mm512_dpbusd_epi32(x, a, b);
  __m512i s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_epi32(s, acc[c]);
  return static_cast<float>(_mm512_reduce_add_epi32(s));
}

}  // namespace

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

PeakRate measure_peak(Precision p, ThreadPool* pool, double seconds) {
  PeakRate r;
  if (!avx512_kernels(p)) return r;
  r.threads = pool ? pool->threads() : 1;
  double per_instr = 0;
  float (*loop)(long) = nullptr;
  switch (p) {
    case Precision::F32:
    case Precision::Int4:  // f32 FMA on dequantized weights
      per_instr = 32;
      loop = loop_f32;
      r.instruction = "vfmadd231ps";
      break;
    case Precision::BF16:
      if (kern::avx512::bf16_by_fma()) {  // the kernels' instruction for bf16 on this CPU (kernels.h)
        per_instr = 32;
        loop = loop_f32;
        r.instruction = "vfmadd231ps (bf16 on FMAs)";
      } else {
        per_instr = 64;
        loop = loop_bf16;
        r.instruction = "vdpbf16ps";
      }
      break;
    case Precision::Int8:
      per_instr = 128;
      loop = loop_int8;
      r.instruction = "vpdpbusd";
      break;
  }
  // Calibrate on one call, then rounds of about seconds / 3.
  std::atomic<float> sink{0};
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  sink.store(loop(kIters / 16));
  const double calib = std::chrono::duration<double>(Clock::now() - t0).count() * 16;
  const long iters = std::max<long>(
      1L << 16, static_cast<long>(static_cast<double>(kIters) * (seconds / 3.0) / std::max(calib, 1e-6)));
  for (int round = 0; round < 3; ++round) {
    t0 = Clock::now();
    if (pool && r.threads > 1) {
      pool->parallel_for(r.threads, [&](int) { sink.store(loop(iters)); });
    } else {
      sink.store(loop(iters));
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double flops = per_instr * kChains * static_cast<double>(iters) * r.threads;
    r.gflops = std::max(r.gflops, flops / s / 1e9);
  }
  (void)sink.load();
  return r;
}

double vit_flops(int image_size, int patch_size, int channels, int hidden, int intermediate, int layers,
                 int projection_dim, bool class_token) {
  // Whole patches only, as the conv with stride = kernel takes them.
  const int whole = image_size / patch_size;
  const double grid = whole, patches = grid * grid, seq = patches + (class_token ? 1 : 0);
  const double d = hidden, inter = intermediate;
  const double patch_embed = patches * d * channels * patch_size * patch_size;
  const double per_layer = seq * (3 * d * d + d * d + 2 * d * inter) + 2 * seq * seq * d;
  return 2 * (patch_embed + layers * per_layer + d * projection_dim);
}

}  // namespace zeroshot::nn
