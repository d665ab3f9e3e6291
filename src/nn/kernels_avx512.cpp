// AVX-512 GEMM micro-kernels (f32 FMA, bf16 vdpbf16ps, int8 vpdpbusd), activation conversion, attention, layer
// norm and vector activations. Layouts: kernels.h. Own kernels rather than a library, by measurement at the CLIP
// shapes (one core): 2-2.5x OpenBLAS sgemm (Haswell kernels on this CPU, weights repacked per call); on par with
// oneDNN 2.6 brgemm in f32 and bf16 and faster in int8 (its u8 x s8 matmul with a source zero point runs
// gemm:jit), without oneDNN's OpenMP threads beside our pool.
//
// Only this file is compiled for AVX-512 (a target pragma, after every include: inline functions of the
// standard headers and kernels.h keep the baseline ISA, so no AVX-512 copy of them can leak into the rest of the
// program; per-file -mavx512f flags would let the linker pick such a copy). Clang ignores GCC's target pragma: it
// gets the same target attribute on every function here (lambdas and templates included) by its own pragma.
// Nothing here may run unless kern::cpu_has_avx512() said yes.
// GCC 12 warns about the intrinsics headers' own _mm512_undefined_* (GCC bug 105593), not about this code.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "nn/attention_int8.h"
#include "nn/kernels.h"

#if defined(__clang__)
#pragma clang attribute push(                                                                         \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx512vnni,fma,bmi,bmi2"))), \
    apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx512vnni,fma,bmi,bmi2")
#endif

namespace zeroshot::nn::kern::avx512 {

namespace {

typedef float float_alias __attribute__((may_alias));

inline int imin(int a, int b) { return a < b ? a : b; }

// ------------------------------------------------------------------------------------------- vector math

// e^x: x = n ln2 + r, |r| <= ln2/2, degree-7 Taylor polynomial (truncation < 1e-8 relative), 2^n by scalef
// (exact, and it saturates to 0 / inf without special cases). NaN inputs are clamped; callers multiply by x.
inline __m512 exp_ps(__m512 x) {
  // e^88 < FLT_MAX: the result stays finite (recip() below relies on it).
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln2 split: hi has 16 bits
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// 1 / d for finite d >= 1: the 14-bit estimate and one Newton step (~1 ulp), far cheaper than a division.
inline __m512 recip(__m512 d) {
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

// x * sigmoid(1.702 x), in the scalar function's order of operations.
inline __m512 quick_gelu_ps(__m512 x) {
  const __m512 e = exp_ps(_mm512_mul_ps(_mm512_set1_ps(-1.702f), x));
  return _mm512_mul_ps(x, recip(_mm512_add_ps(_mm512_set1_ps(1.0f), e)));
}

// 0.5 x (1 + tanh(u)), tanh(u) = 1 - 2 / (e^2u + 1) (absolute error ~1e-7 near 0, where the result is ~x/2).
inline __m512 gelu_tanh_ps(__m512 x) {
  const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
  const __m512 u =
      _mm512_mul_ps(_mm512_set1_ps(0.79788456080286535588f), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
  const __m512 e = exp_ps(_mm512_add_ps(u, u));
  const __m512 t =
      _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), recip(_mm512_add_ps(e, _mm512_set1_ps(1.0f))), _mm512_set1_ps(1.0f));
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), t));
}

// 0.5 x (1 + erf(x / sqrt 2)) through erfc(|z|) = t exp(-z^2 + P(t)), t = 1 / (1 + |z|/2): P is our own degree-10
// least-squares fit on [0, 12] (max error of the exponent 5e-8), so erfc has a small *relative* error and the
// negative tail of GELU stays accurate.
inline __m512 gelu_erf_ps(__m512 x) {
  const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752440f));
  const __m512 az = _mm512_abs_ps(z);
  const __m512 t = recip(_mm512_fmadd_ps(_mm512_set1_ps(0.5f), az, _mm512_set1_ps(1.0f)));
  static const float kP[11] = {-1.265549279025171f,  1.0011105843988595f, 0.36067999266760165f, 0.18816924057568318f,
                               -0.5678857754998103f, 1.3044127914903159f, -2.942578637454432f,  3.5635373676550213f,
                               -2.315759894013766f,  0.7825817088630833f, -0.10871805051911515f};
  __m512 p = _mm512_set1_ps(kP[10]);
  for (int i = 9; i >= 0; --i) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(kP[i]));
  const __m512 e = _mm512_mul_ps(t, exp_ps(_mm512_fnmadd_ps(az, az, p)));  // erfc(|z|)
  const __mmask16 pos = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GE_OQ);
  const __m512 one_plus_erf = _mm512_mask_sub_ps(e, pos, _mm512_set1_ps(2.0f), e);
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), one_plus_erf);
}

inline __m512 apply_act(Act act, __m512 v) {
  switch (act) {
    case Act::QuickGelu: return quick_gelu_ps(v);
    case Act::Gelu: return gelu_erf_ps(v);
    case Act::GeluTanh: return gelu_tanh_ps(v);
    case Act::Relu:
    case Act::Silu: break;  // not epilogue_acts
  }
  return v;
}

// Lanes [0, valid) of 16 (valid may be <= 0 or >= 16).
inline __mmask16 tail_mask(int valid) {
  return valid >= 16  ? static_cast<__mmask16>(0xFFFF)
         : valid <= 0 ? static_cast<__mmask16>(0)
                      : static_cast<__mmask16>((1u << valid) - 1u);
}

// ------------------------------------------------------------------------------------------- bf16 kernel choice

// Seconds for `iters` rounds of 12 independent chains (more than latency x ports of either instruction) of
// vdpbf16ps (dp) or vfmadd231ps in registers; every chain feeds the result, so none can be dropped.
double chain_seconds(bool dp, int iters) {
  constexpr int kChains = 12;
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(0.001f * static_cast<float>(c));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.0001f);
  const __m512bh ah = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
  const __m512bh bh = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(3e-4f));
  const auto t0 = std::chrono::steady_clock::now();
  if (dp) {
    for (int i = 0; i < iters; ++i)
      for (__m512& x : acc) x = _mm512_dpbf16_ps(x, ah, bh);
  } else {
    for (int i = 0; i < iters; ++i)
      for (__m512& x : acc) x = _mm512_fmadd_ps(x, a, b);
  }
  __m512 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  volatile float sink = _mm512_reduce_add_ps(sum);
  (void)sink;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One vdpbf16ps does a pair of multiply-adds per lane, the widened path two vfmadd plus ~10% of shifts: it wins
// where vdpbf16ps issues at less than half the rate of vfmadd (measured on the Intel Xeon of docs/benchmarks.md:
// a third; on AMD Zen 4/5 the same rate). ~0.1 ms, once per process.
bool measure_bf16_by_fma() {
  double dp = 1e9, fma = 1e9;
  for (int round = 0; round < 3; ++round) {
    dp = std::min(dp, chain_seconds(true, 2048));
    fma = std::min(fma, chain_seconds(false, 2048));
  }
  return dp > 2.0 * fma;
}

std::atomic<int> bf16_mode{-1};  // -1: decide (ZEROSHOT_BF16_KERNEL, else the probe); 0: vdpbf16ps; 1: vfmadd

}  // namespace

void set_bf16_by_fma(int mode) { bf16_mode.store(mode < 0 ? -1 : mode > 0 ? 1 : 0); }

bool bf16_by_fma() {
  const int m = bf16_mode.load(std::memory_order_relaxed);
  if (m >= 0) return m == 1;
  static const bool decided = [] {
    const char* env = std::getenv("ZEROSHOT_BF16_KERNEL");
    if (env && std::strcmp(env, "fma") == 0) return true;
    if (env && std::strcmp(env, "dpbf16") == 0) return false;
    return measure_bf16_by_fma();
  }();
  return decided;
}

namespace {

// ------------------------------------------------------------------------------------------- micro-kernel

// R rows (<= kMR) x 32 columns over all ku units: 2R accumulators in registers, B's two vectors loaded once per
// unit and A's units broadcast from memory; then the epilogue. pf: the next panel to prefetch, or null.
// Wide (BF16 only, bf16_by_fma()): each bf16 pair of B is widened in registers to two f32 vectors (a shift and a
// mask) and multiplied by A's bf16-rounded f32 values with vfmadd: the same products (a bf16 x bf16 product is
// exact in f32) accumulated in f32, in another order.
template <Precision P, int R, bool Wide = false>
void tile(const GemmCall& g, const uint32_t* a, const uint8_t* b, int row0, int col0, const uint8_t* pf) {
  __m512 acc[R][2];
  __m512i iacc[R][2];
  if constexpr (P == Precision::Int8) {
    for (int r = 0; r < R; ++r) iacc[r][0] = iacc[r][1] = _mm512_setzero_si512();
  } else {
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  }
  const uint32_t* ar[R];  // the rows, each walked unit by unit
  for (int r = 0; r < R; ++r) ar[r] = a + r * g.lda;
  const uint8_t* bp = b;
  for (int u = 0; u < g.ku; ++u, bp += kPanelRowBytes) {
    if (pf) {  // the next panel, into L2, while this one computes (weights stream from DRAM at small M)
      _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(pf) + 64, _MM_HINT_T1);
      pf += kPanelRowBytes;
    }
    if constexpr (P == Precision::F32) {
      const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 64);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512 av = _mm512_set1_ps(reinterpret_cast<const float_alias*>(ar[r])[u]);
        acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
      }
    } else if constexpr (P == Precision::BF16 && Wide) {
      const __m512i w0 = _mm512_load_si512(bp), w1 = _mm512_load_si512(bp + 64);
      const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
      const __m512 b0e = _mm512_castsi512_ps(_mm512_slli_epi32(w0, 16));
      const __m512 b0o = _mm512_castsi512_ps(_mm512_and_si512(w0, hi_mask));
      const __m512 b1e = _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16));
      const __m512 b1o = _mm512_castsi512_ps(_mm512_and_si512(w1, hi_mask));
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const float_alias* af = reinterpret_cast<const float_alias*>(ar[r]) + 2 * u;
        const __m512 ae = _mm512_set1_ps(af[0]), ao = _mm512_set1_ps(af[1]);
        acc[r][0] = _mm512_fmadd_ps(ae, b0e, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(ae, b1e, acc[r][1]);
        acc[r][0] = _mm512_fmadd_ps(ao, b0o, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(ao, b1o, acc[r][1]);
      }
    } else if constexpr (P == Precision::BF16) {
      const __m512bh b0 = (__m512bh)_mm512_load_si512(bp), b1 = (__m512bh)_mm512_load_si512(bp + 64);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(ar[r][u]));
        acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
        acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
      }
    } else {
      const __m512i b0 = _mm512_load_si512(bp), b1 = _mm512_load_si512(bp + 64);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512i av = _mm512_set1_epi32(static_cast<int>(ar[r][u]));
        iacc[r][0] = _mm512_dpbusd_epi32(iacc[r][0], av, b0);
        iacc[r][1] = _mm512_dpbusd_epi32(iacc[r][1], av, b1);
      }
    }
  }

  // Epilogue.
  const int valid = imin(kNR, g.n - col0);
  const __mmask16 m0 = tail_mask(valid), m1 = tail_mask(valid - 16);
  __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
  if (g.bias) {
    bias0 = _mm512_maskz_loadu_ps(m0, g.bias + col0);
    bias1 = _mm512_maskz_loadu_ps(m1, g.bias + col0 + 16);
  }
  __m512i cs0, cs1;
  __m512 ws0, ws1;
  if constexpr (P == Precision::Int8) {
    cs0 = _mm512_loadu_si512(g.b_colsum + col0);
    cs1 = _mm512_loadu_si512(g.b_colsum + col0 + 16);
    ws0 = _mm512_loadu_ps(g.b_scale + col0);
    ws1 = _mm512_loadu_ps(g.b_scale + col0 + 16);
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* crow = g.c + static_cast<long>(row0 + r) * g.ldc + col0;
    __m512 v0, v1;
    if constexpr (P == Precision::Int8) {
      // x ~= sa (u - zp), w ~= sw q: sum x w ~= sa sw (sum u q - zp sum q).
      const __m512i zp = _mm512_set1_epi32(g.a_zp[row0 + r]);
      const __m512 sa = _mm512_set1_ps(g.a_scale[row0 + r]);
      v0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(iacc[r][0], _mm512_mullo_epi32(zp, cs0))),
                         _mm512_mul_ps(sa, ws0));
      v1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(iacc[r][1], _mm512_mullo_epi32(zp, cs1))),
                         _mm512_mul_ps(sa, ws1));
    } else {
      v0 = acc[r][0];
      v1 = acc[r][1];
    }
    v0 = _mm512_add_ps(v0, bias0);
    v1 = _mm512_add_ps(v1, bias1);
    if (g.accumulate) {
      v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, crow), v0);
      v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, crow + 16), v1);
    }
    if (g.has_act) {
      v0 = apply_act(g.act, v0);
      v1 = apply_act(g.act, v1);
    }
    _mm512_mask_storeu_ps(crow, m0, v0);
    _mm512_mask_storeu_ps(crow + 16, m1, v1);
  }
}

using TileFn = void (*)(const GemmCall&, const uint32_t*, const uint8_t*, int, int, const uint8_t*);

template <Precision P, bool Wide = false>
TileFn tile_for(int rows) {
  switch (rows) {
    case 1: return tile<P, 1, Wide>;
    case 2: return tile<P, 2, Wide>;
    case 3: return tile<P, 3, Wide>;
    case 4: return tile<P, 4, Wide>;
    case 5: return tile<P, 5, Wide>;
    case 6: return tile<P, 6, Wide>;
    case 7: return tile<P, 7, Wide>;
    case 8: return tile<P, 8, Wide>;
    case 9: return tile<P, 9, Wide>;
    default: return tile<P, 10, Wide>;
  }
}

TileFn pick_tile(Precision p, int rows) {
  switch (p) {
    case Precision::F32: return tile_for<Precision::F32>(rows);
    case Precision::BF16:
      return bf16_by_fma() ? tile_for<Precision::BF16, true>(rows) : tile_for<Precision::BF16>(rows);
    case Precision::Int8: return tile_for<Precision::Int8>(rows);
    case Precision::Int4: break;  // runs the F32 tiles on dequantized panels (int4_gemm.cpp)
  }
  return nullptr;
}

// Rows of A per chunk: the chunk's A blocks stay in L2 while every panel of the thread's range walks them.
// No K blocking: measured on Zen 5 (1 MB L2), streaming whole B panels (up to 384 KB at K = 3072) from L2 beat
// 32-64 KB K-slices kept in L1 with partial sums in C, at every CLIP shape.
constexpr long kAChunkBytes = 1 << 20;
constexpr int kPrefetchBlocks = 5;

}  // namespace

void gemm(const GemmCall& g, int p0, int p1, int rb0, int rb1) {
  if (p0 >= p1 || rb0 >= rb1) return;
  const size_t b_panel = static_cast<size_t>(g.ku) * kPanelRowBytes;
  const long block_bytes = static_cast<long>(g.ku) * kMR * 4;
  const int rb_chunk = static_cast<int>(kAChunkBytes / block_bytes > 1 ? kAChunkBytes / block_bytes : 1);
  const TileFn full = pick_tile(g.prec, kMR);
  const int np = panels(g.n);  // the next panel is prefetched even past p1: ranges are short (a few per thread)
  for (int c0 = rb0; c0 < rb1; c0 += rb_chunk) {
    const int c1 = imin(rb1, c0 + rb_chunk);
    for (int p = p0; p < p1; ++p) {
      const uint8_t* bp = g.b + p * b_panel;
      for (int rb = c0; rb < c1; ++rb) {
        const int rows = imin(kMR, g.m - rb * kMR);
        const TileFn fn = rows == kMR ? full : pick_tile(g.prec, rows);
        // The first row blocks of a panel prefetch the next one into L2 (at small M the weights stream from DRAM
        // and each panel is used by few row blocks). Measured (one core, weights cycling through DRAM): M = 50
        // f32 168 -> 205 GFLOP/s with the first block prefetching, 208-211 with every block (bf16 +7%, int8
        // +7-13% more); at M = 400 prefetching from all 40 blocks cost f32 ~3%, hence the first few only.
        const uint8_t* pf = rb - c0 < kPrefetchBlocks && p + 1 < np ? bp + b_panel : nullptr;
        fn(g, g.a + static_cast<long>(rb) * kMR * g.lda, bp, rb * kMR, p * kNR, pf);
      }
    }
  }
}

void convert_a(Precision p, const float* x, int k, long ldx, int r0, int r1, uint32_t* a, long lda, float* a_scale,
               int32_t* a_zp, const RowNorm* norm, float* row_buf) {
  const int ku = units(p, k);
  for (int row = r0; row < r1; ++row) {
    const float* xr = x + static_cast<long>(row) * ldx;
    uint32_t* out = a + static_cast<long>(row) * lda;
    // Int8: the next row into L1 while this one is converted, in the first pass over the row (the min / max, or the
    // layer norm's). The rows are the previous layer's output, 3-12 KB each, mostly out of L2 by now: without it
    // the pass that first reads each row waits on memory (perf: ~40% of convert_a's samples on that pass's loads).
    const float* next = p == Precision::Int8 && row + 1 < r1 ? xr + ldx : nullptr;
    if (norm) {
      if (next)
        for (int i = 0; i < k; i += 16) _mm_prefetch(reinterpret_cast<const char*>(next + i), _MM_HINT_T0);
      layer_norm(xr, 1, k, norm->gamma, norm->beta, norm->eps, row_buf);
      xr = row_buf;
    }
    if (p == Precision::F32) {
      for (int i = 0; i < k; i += 16) {
        const __mmask16 m = tail_mask(k - i);
        _mm512_mask_storeu_ps(reinterpret_cast<float_alias*>(out) + i, m, _mm512_maskz_loadu_ps(m, xr + i));
      }
    } else if (p == Precision::BF16 && bf16_by_fma()) {
      // bf16-rounded values as f32, two per unit; the tail of the last unit (and past it) zero.
      for (int i = 0; i < 2 * ku; i += 16) {
        const __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(tail_mask(k - i), xr + i));
        const __m512i w = _mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)h), 16);
        _mm512_mask_storeu_ps(reinterpret_cast<float_alias*>(out) + i, tail_mask(2 * ku - i), _mm512_castsi512_ps(w));
      }
    } else if (p == Precision::BF16) {
      for (int i = 0; i < k; i += 32) {
        const __m512 lo = _mm512_maskz_loadu_ps(tail_mask(k - i), xr + i);
        const __m512 hi = _mm512_maskz_loadu_ps(tail_mask(k - i - 16), xr + i + 16);
        // 16 units; past ku (a partial last step) masked off.
        _mm512_mask_storeu_epi32(out + i / 2, tail_mask(ku - i / 2), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
      }
    } else {
      // Per-row asymmetric quantization (the range always includes 0, so 0 is exact).
      __m512 mn = _mm512_setzero_ps(), mx = _mm512_setzero_ps();
      for (int i = 0; i < k; i += 16) {
        if (next && !norm) _mm_prefetch(reinterpret_cast<const char*>(next + i), _MM_HINT_T0);
        const __m512 v = _mm512_maskz_loadu_ps(tail_mask(k - i), xr + i);
        mn = _mm512_min_ps(mn, v);
        mx = _mm512_max_ps(mx, v);
      }
      const float lo = _mm512_reduce_min_ps(mn), hi = _mm512_reduce_max_ps(mx);
      float scale = (hi - lo) / 255.0f;
      if (!(scale > 0.0f) || !(scale < 3.0e38f)) scale = 1.0f;  // all zero (or inf / nan: garbage in, no UB)
      int z = static_cast<int>(__builtin_nearbyintf(-lo / scale));
      z = z < 0 ? 0 : z > 255 ? 255 : z;
      a_scale[row] = scale;
      a_zp[row] = z;
      const __m512 sc = _mm512_set1_ps(1.0f / scale);
      const __m512i zv = _mm512_set1_epi32(z);
      const __m512i zero = _mm512_setzero_si512(), top = _mm512_set1_epi32(255);
      uint8_t* dst = reinterpret_cast<uint8_t*>(out);
      // 16 values -> 16 bytes = 4 units; past k the zero point (times the zero weights there: 0).
      for (int i = 0; i < ku * 4; i += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(tail_mask(k - i), xr + i);
        __m512i iv = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, sc)), zv);
        iv = _mm512_min_epi32(_mm512_max_epi32(iv, zero), top);
        _mm_mask_storeu_epi8(dst + i, tail_mask(ku * 4 - i), _mm512_cvtepi32_epi8(iv));
      }
    }
  }
}

namespace {

// dst[c * ldd + i] = src[i * lds + c] for i < 16, c < cols (<= 16): a 16 x 16 block transposed in registers (rows
// i >= rows read as zeros).
void transpose16(const float* src, long lds, int rows, int cols, float* dst, long ldd) {
  const __mmask16 cm = tail_mask(cols);
  __m512 r[16];
  for (int i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_maskz_loadu_ps(cm, src + i * lds) : _mm512_setzero_ps();
  // Per 128-bit lane L, u[4q + c] holds element 4L + c of rows 4q .. 4q + 3.
  __m512 u[16];
  for (int q = 0; q < 4; ++q) {
    const __m512d lo01 = _mm512_castps_pd(_mm512_unpacklo_ps(r[4 * q], r[4 * q + 1]));
    const __m512d hi01 = _mm512_castps_pd(_mm512_unpackhi_ps(r[4 * q], r[4 * q + 1]));
    const __m512d lo23 = _mm512_castps_pd(_mm512_unpacklo_ps(r[4 * q + 2], r[4 * q + 3]));
    const __m512d hi23 = _mm512_castps_pd(_mm512_unpackhi_ps(r[4 * q + 2], r[4 * q + 3]));
    u[4 * q + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo01, lo23));
    u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo01, lo23));
    u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi01, hi23));
    u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi01, hi23));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 vlo = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), vhi = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd);
    const __m512 wlo = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88),
                 whi = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
    const __m512 out[4] = {_mm512_shuffle_f32x4(vlo, wlo, 0x88), _mm512_shuffle_f32x4(vhi, whi, 0x88),
                           _mm512_shuffle_f32x4(vlo, wlo, 0xdd), _mm512_shuffle_f32x4(vhi, whi, 0xdd)};
    for (int e = 0; e < 4; ++e)  // element c + 4e of every row
      if (c + 4 * e < cols) _mm512_storeu_ps(dst + (c + 4 * e) * ldd, out[e]);
  }
}

// Scores of 4 query rows against JB blocks of 16 keys: s[r][j] = scale * q_r . k_j, k transposed in kt.
// Rows past the sequence repeat its last row (computed, never stored), so the kernel is always 4 rows high.
template <int JB>
void scores4(const float* const q[4], const float* kt, int l16, int jb0, int hd, float scale, float* s) {
  __m512 acc[4][JB];
  for (auto& row : acc)
    for (__m512& a : row) a = _mm512_setzero_ps();
  for (int d = 0; d < hd; ++d) {
    __m512 kv[JB];
    for (int j = 0; j < JB; ++j) kv[j] = _mm512_loadu_ps(kt + static_cast<long>(d) * l16 + (jb0 + j) * 16);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m512 qb = _mm512_set1_ps(q[r][d]);
      for (int j = 0; j < JB; ++j) acc[r][j] = _mm512_fmadd_ps(qb, kv[j], acc[r][j]);
    }
  }
  const __m512 sc = _mm512_set1_ps(scale);
  for (int r = 0; r < 4; ++r)
    for (int j = 0; j < JB; ++j)
      _mm512_storeu_ps(s + static_cast<long>(r) * l16 + (jb0 + j) * 16, _mm512_mul_ps(acc[r][j], sc));
}

// out_r[d0 .. d0 + 16 HB) (+)= sum_j p[r][j] v_j over j in [j0, j1), for 4 rows (rows >= rows_out are not
// stored). first: start from zero, else from the partial sums of the earlier keys already in out (stored f32
// and reloaded: the same sums, in the same order of j, as one pass over all keys).
template <int HB>
void pv4(const float* p, int l16, const float* v, long ld, int j0, int j1, int d0, int hd, float* const out[4],
         int rows_out, bool first) {
  __m512 acc[4][HB];
  __mmask16 mk[HB];
  for (int h = 0; h < HB; ++h) mk[h] = tail_mask(hd - d0 - 16 * h);
  for (int r = 0; r < 4; ++r)
    for (int h = 0; h < HB; ++h)
      acc[r][h] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk[h], out[r] + d0 + 16 * h);
  for (int j = j0; j < j1; ++j) {
    const float* vj = v + static_cast<long>(j) * ld + d0;
    __m512 vv[HB];
    for (int h = 0; h < HB; ++h) vv[h] = _mm512_maskz_loadu_ps(mk[h], vj + 16 * h);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m512 pb = _mm512_set1_ps(p[static_cast<long>(r) * l16 + j]);
      for (int h = 0; h < HB; ++h) acc[r][h] = _mm512_fmadd_ps(pb, vv[h], acc[r][h]);
    }
  }
  for (int r = 0; r < rows_out; ++r)
    for (int h = 0; h < HB; ++h) _mm512_mask_storeu_ps(out[r] + d0 + 16 * h, mk[h], acc[r][h]);
}

// In-place softmax of row[0, valid), zeros in [valid, l16).
void softmax16(float* row, int valid, int l16) {
  __m512 mx = _mm512_set1_ps(-__builtin_inff());
  for (int j = 0; j < valid; j += 16) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, tail_mask(valid - j), row + j));
  const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int j = 0; j < l16; j += 16) {
    const __mmask16 k = j < valid ? tail_mask(valid - j) : 0;
    const __m512 e = _mm512_maskz_mov_ps(k, exp_ps(_mm512_sub_ps(_mm512_loadu_ps(row + j), m)));
    sum = _mm512_add_ps(sum, e);
    _mm512_storeu_ps(row + j, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (int j = 0; j < valid; j += 16) _mm512_storeu_ps(row + j, _mm512_mul_ps(_mm512_loadu_ps(row + j), inv));
}

}  // namespace

// Query rows per block: the block's scores (kQBlock x len floats) stay in L2 while the keys and values are walked
// in chunks of kKeyChunk, each chunk of K^T and of V (kKeyChunk x head_dim floats, 16 KB at head_dim 64) reused
// from L1 by every 4 rows of the block. Walking all keys for every 4 rows (before) read K^T and V from L2 or
// further once per 4 rows. Every score and output element is still summed in the same order (bit-identical).
constexpr int kQBlock = 32;
constexpr int kKeyChunk = 64;

size_t attention_work_floats(int len, int hd) {
  const size_t l16 = (static_cast<size_t>(len) + 15) / 16 * 16;
  return 2 * l16 * static_cast<size_t>(hd) + static_cast<size_t>(kQBlock) * l16;
}

void attention_head(const float* q, const float* k, const float* v, long ld, int len, int hd, float scale, bool causal,
                    float* out, long ldo, float* work) {
  if (len <= 0) return;
  const int l16 = (len + 15) / 16 * 16;
  float* kt = work;
  float* vc = kt + static_cast<long>(l16) * hd;
  float* s = vc + static_cast<long>(l16) * hd;
  // V's rows side by side (they sit 3 x dim floats apart in the fused q|k|v rows: one page per row at ViT-B
  // widths, a TLB miss per key in the product below).
  for (int j = 0; j < len; ++j) {
    const float* src = v + static_cast<long>(j) * ld;
    float* dst = vc + static_cast<long>(j) * hd;
    for (int d0 = 0; d0 < hd; d0 += 16) {
      const __mmask16 m = tail_mask(hd - d0);
      _mm512_mask_storeu_ps(dst + d0, m, _mm512_maskz_loadu_ps(m, src + d0));
    }
  }
  for (int j0 = 0; j0 < l16; j0 += 16)
    for (int d0 = 0; d0 < hd; d0 += 16)
      transpose16(k + static_cast<long>(j0) * ld + d0, ld, len - j0, hd - d0, kt + static_cast<long>(d0) * l16 + j0,
                  l16);
  for (int b0 = 0; b0 < len; b0 += kQBlock) {
    const int b1 = imin(len, b0 + kQBlock);
    // Per 4 rows: the rows (the last one repeated past the sequence), their key count and score rows.
    struct Quad {
      const float* q[4];
      float* out[4];
      int rows, kn, kb;
      float* s;
    };
    Quad quads[kQBlock / 4];
    int nq = 0;
    for (int i0 = b0; i0 < b1; i0 += 4, ++nq) {
      Quad& u = quads[nq];
      u.rows = imin(4, len - i0);
      for (int r = 0; r < 4; ++r) {
        const int i = imin(i0 + r, len - 1);
        u.q[r] = q + static_cast<long>(i) * ld;
        u.out[r] = out + static_cast<long>(i) * ldo;
      }
      u.kn = causal ? i0 + u.rows : len;  // causal rows only ever see keys up to the last of the 4
      u.kb = (u.kn + 15) / 16;
      u.s = s + static_cast<long>(i0 - b0) * l16;
    }
    const int kn_max = quads[nq - 1].kn;
    for (int c0 = 0; c0 < kn_max; c0 += kKeyChunk) {
      const int jb0 = c0 / 16;
      for (int t = 0; t < nq; ++t) {
        const Quad& u = quads[t];
        const int jb1 = imin(u.kb, (c0 + kKeyChunk) / 16);  // a causal quad's keys may end before this chunk
        for (int jb = jb0; jb < jb1; jb += 4) {
          switch (imin(4, jb1 - jb)) {
            case 1: scores4<1>(u.q, kt, l16, jb, hd, scale, u.s); break;
            case 2: scores4<2>(u.q, kt, l16, jb, hd, scale, u.s); break;
            case 3: scores4<3>(u.q, kt, l16, jb, hd, scale, u.s); break;
            default: scores4<4>(u.q, kt, l16, jb, hd, scale, u.s); break;
          }
        }
      }
    }
    for (int t = 0; t < nq; ++t) {
      const Quad& u = quads[t];
      const int i0 = b0 + 4 * t;
      for (int r = 0; r < 4; ++r)
        softmax16(u.s + static_cast<long>(r) * l16, causal ? imin(i0 + r, len - 1) + 1 : len, u.kb * 16);
    }
    for (int c0 = 0; c0 < kn_max; c0 += kKeyChunk) {
      for (int t = 0; t < nq; ++t) {
        const Quad& u = quads[t];
        const int c1 = imin(c0 + kKeyChunk, u.kn);
        if (c1 <= c0) continue;
        for (int d0 = 0; d0 < hd; d0 += 64) {
          switch (imin(4, (hd - d0 + 15) / 16)) {
            case 1: pv4<1>(u.s, l16, vc, hd, c0, c1, d0, hd, u.out, u.rows, c0 == 0); break;
            case 2: pv4<2>(u.s, l16, vc, hd, c0, c1, d0, hd, u.out, u.rows, c0 == 0); break;
            case 3: pv4<3>(u.s, l16, vc, hd, c0, c1, d0, hd, u.out, u.rows, c0 == 0); break;
            default: pv4<4>(u.s, l16, vc, hd, c0, c1, d0, hd, u.out, u.rows, c0 == 0); break;
          }
        }
      }
    }
  }
}

// ------------------------------------------------------------------------------------------- int8 attention

namespace {

size_t round64(size_t n) { return (n + 63) / 64 * 64; }

// Symmetric int8 of 16 values (nn/attention_int8.h: the factor inv = 127 / m), as int32 lanes.
inline __m512i quantize16(__m512 x, __m512 inv) {
  const __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x, inv), _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
  return _mm512_cvtps_epi32(t);
}

// The scale and factor of values with max |x| = m (attention_int8.cpp's scales()).
inline void scales(float m, float* s, float* inv) {
  const bool ok = m > 0.0f && m < 3.0e38f;
  *s = ok ? m / 127.0f : 0.0f;
  *inv = ok ? 127.0f / m : 0.0f;
}

// max |x| of a row of hd values.
inline float row_absmax(const float* x, int hd) {
  __m512 mx = _mm512_setzero_ps();
  for (int d = 0; d < hd; d += 16)
    mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_maskz_loadu_ps(tail_mask(hd - d), x + d)));
  return _mm512_reduce_max_ps(mx);
}

// acc + the dot products of 4 u8 of a with 4 int8 of b per lane: _mm512_dpbusd_epi32 in asm, because GCC 12 copies
// every accumulator of the attention loops below twice per iteration from the intrinsic (the instruction overwrites
// its accumulator; the intrinsic's result gets a register of its own), and spilled one: 30 moves per 16 products.
inline __m512i dpbusd(__m512i acc, __m512i a, __m512i b) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}

inline int32_t load32(const uint8_t* p) {
  int32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// Scores of R query rows (u8 = q8 + 128, dq quads each) against JB blocks of 16 keys of K^T (int8 quads,
// kq[block][t][16]: a block's quads side by side, so the blocks are read as a few sequential streams):
// s[r][j] = float(sum q8 k8) * rs[r] * sk[j], the + 128 taken back out by starting from kneg[j] = -128 sum_d k8[j][d].
template <int R, int JB>
void scores_i8(const uint8_t* const q[], const uint32_t* kq, int l16, int jb0, int dq, const int32_t* kneg,
               const float* sk, const float* rs, float* s) {
  __m512i acc[R][JB];
  for (int j = 0; j < JB; ++j) {
    const __m512i c = _mm512_loadu_si512(kneg + (jb0 + j) * 16);
    for (auto& row : acc) row[j] = c;
  }
  for (int t = 0; t < dq; ++t) {
    __m512i kv[JB];
    for (int j = 0; j < JB; ++j) kv[j] = _mm512_loadu_si512(kq + (static_cast<long>(jb0 + j) * dq + t) * 16);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i qb = _mm512_set1_epi32(load32(q[r] + 4 * t));
      for (int j = 0; j < JB; ++j) acc[r][j] = dpbusd(acc[r][j], qb, kv[j]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const __m512 rv = _mm512_set1_ps(rs[r]);
    for (int j = 0; j < JB; ++j) {
      const int o = (jb0 + j) * 16;
      _mm512_storeu_ps(s + static_cast<long>(r) * l16 + o,
                       _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][j]), rv), _mm512_loadu_ps(sk + o)));
    }
  }
}

// out_r[d0 .. d0 + 16 HB) = float(sum_j p[r][j] v8[j]) * inv[r] * sv over key quads [0, jq1), for R rows of u8
// weights (rows >= rows_out are not stored); vq[jq][h16][4]: the int8 values of keys 4 jq .. 4 jq + 3 per channel.
template <int R, int HB>
void pv_i8(const uint8_t* p, int l16, const uint8_t* vq, int h16, int jq1, int d0, int hd, const float* inv,
           const float* sv, float* const out[], int rows_out) {
  __m512i acc[R][HB];
  for (auto& row : acc)
    for (__m512i& a : row) a = _mm512_setzero_si512();
  for (int jq = 0; jq < jq1; ++jq) {
    __m512i vv[HB];
    for (int h = 0; h < HB; ++h) vv[h] = _mm512_loadu_si512(vq + (static_cast<long>(jq) * h16 + d0 + 16 * h) * 4);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i pb = _mm512_set1_epi32(load32(p + static_cast<long>(r) * l16 + 4 * jq));
      for (int h = 0; h < HB; ++h) acc[r][h] = dpbusd(acc[r][h], pb, vv[h]);
    }
  }
  // r runs to the constant R (a runtime bound here made GCC keep acc in memory, stored on every key quad).
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512 iv = _mm512_set1_ps(inv[r]);
#pragma GCC unroll 8
    for (int h = 0; h < HB; ++h) {
      const int d = d0 + 16 * h;
      const __m512 o = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][h]), iv), _mm512_loadu_ps(sv + d));
      if (r < rows_out) _mm512_mask_storeu_ps(out[r] + d, tail_mask(hd - d), o);
    }
  }
}

// nn/attention_int8.h's exp_softmax for x <= 0 or NaN (x = s - max s): e^x = 2^(x log2 e), 2^n exact by scalef,
// 2^f (|f| <= 1/2) by its degree-5 Taylor polynomial (3.2e-6 relative: far below the u8 step the result is rounded
// to). The header's upper clamp at 88 is the identity there, so it is left out; the lower one also maps NaN to -104.
inline __m512 exp_softmax_nonpos_ps(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
  const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 p = _mm512_set1_ps(kExp2C5);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2C4));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2C3));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2C2));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2C1));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// Softmax weights of one row of scores as u8 (nn/attention_int8.h), zeros in [valid, l16b); returns 1 / their sum.
float softmax_u8(const float* row, int valid, int l16b, uint8_t* p) {
  // The max in 4 chains (one was a chain of max latencies); max(new, old) keeps old where new is NaN, so NaN
  // scores (only from inputs near the float range) are skipped, as the portable fmax does, in any order.
  const __m512 lowest = _mm512_set1_ps(-__builtin_inff());
  __m512 mx[4] = {lowest, lowest, lowest, lowest};
  int j = 0;
  for (; j + 64 <= valid; j += 64)
    for (int u = 0; u < 4; ++u) mx[u] = _mm512_max_ps(_mm512_loadu_ps(row + j + 16 * u), mx[u]);
  for (; j < valid; j += 16) mx[0] = _mm512_max_ps(_mm512_mask_loadu_ps(mx[0], tail_mask(valid - j), row + j), mx[0]);
  const __m512 m =
      _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(mx[0], mx[1]), _mm512_max_ps(mx[2], mx[3]))));
  // e * 255 rounded: in [0, 255] (e <= 1), so the saturating packs below keep every value.
  auto weights = [&](int j0) {
    const __mmask16 k = j0 < valid ? tail_mask(valid - j0) : 0;
    const __m512 e = _mm512_maskz_mov_ps(k, exp_softmax_nonpos_ps(_mm512_sub_ps(_mm512_loadu_ps(row + j0), m)));
    return _mm512_cvtps_epi32(_mm512_mul_ps(e, _mm512_set1_ps(255.0f)));
  };
  __m512i sum = _mm512_setzero_si512();
  // 64 weights per store: two packs and a dword permute instead of 4 two-uop vpmovdb.
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  for (j = 0; j + 64 <= l16b; j += 64) {
    const __m512i u0 = weights(j), u1 = weights(j + 16), u2 = weights(j + 32), u3 = weights(j + 48);
    sum = _mm512_add_epi32(sum, _mm512_add_epi32(_mm512_add_epi32(u0, u1), _mm512_add_epi32(u2, u3)));
    const __m512i b = _mm512_packus_epi16(_mm512_packus_epi32(u0, u1), _mm512_packus_epi32(u2, u3));
    _mm512_storeu_si512(p + j, _mm512_permutexvar_epi32(order, b));
  }
  for (; j < l16b; j += 16) {
    const __m512i u = weights(j);
    sum = _mm512_add_epi32(sum, u);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p + j), _mm512_cvtepi32_epi8(u));
  }
  const int total = _mm512_reduce_add_epi32(sum);
  return 1.0f / static_cast<float>(total > 0 ? total : 1);
}

// One head's int8 operands (attention_head_int8's layouts) and the scratch rows of a tile.
struct HeadI8 {
  const uint8_t* qu;
  const uint32_t* kq;
  const uint8_t* vq;
  const int32_t* kneg;
  const float *sk, *rs, *sv;
  float* s;     // R rows of l16 scores
  uint8_t* pu;  // R rows of l16 u8 weights
  float* out;
  long ldo;
  int len, hd, l16, h16, dq;
  bool causal;
};

// Query rows i0 .. i0 + R - 1 of a head (past the sequence: the last row again, computed and never stored).
template <int R>
void attention_tile_i8(const HeadI8& c, int i0) {
  const int rows = imin(R, c.len - i0);
  const int kn = c.causal ? i0 + rows : c.len;  // causal rows only ever see keys up to the tile's last row
  const int kb = (kn + 15) / 16;
  const uint8_t* qr[R];
  float* orow[R];
  float rq[R], inv[R];
  for (int r = 0; r < R; ++r) {
    const int i = imin(i0 + r, c.len - 1);
    qr[r] = c.qu + static_cast<long>(i) * c.dq * 4;
    orow[r] = c.out + i * c.ldo;
    rq[r] = c.rs[i];
  }
  // Accumulators: R x (blocks of 16 keys or channels) <= 24 of the 32 registers.
  constexpr int kB = R == 8 ? 3 : 4;
  for (int jb = 0; jb < kb; jb += kB) {
    switch (imin(kB, kb - jb)) {
      case 1: scores_i8<R, 1>(qr, c.kq, c.l16, jb, c.dq, c.kneg, c.sk, rq, c.s); break;
      case 2: scores_i8<R, 2>(qr, c.kq, c.l16, jb, c.dq, c.kneg, c.sk, rq, c.s); break;
      case 3: scores_i8<R, 3>(qr, c.kq, c.l16, jb, c.dq, c.kneg, c.sk, rq, c.s); break;
      default: scores_i8<R, kB>(qr, c.kq, c.l16, jb, c.dq, c.kneg, c.sk, rq, c.s); break;
    }
  }
  for (int r = 0; r < R; ++r)
    inv[r] = softmax_u8(c.s + static_cast<long>(r) * c.l16, c.causal ? imin(i0 + r, c.len - 1) + 1 : c.len, kb * 16,
                        c.pu + static_cast<long>(r) * c.l16);
  const int jq1 = (kn + 3) / 4;
  // Passes of at most kB blocks of 16 channels, as even as they go: hd 72 as 3 + 2, not 4 + a pass of 1 that
  // reloads every weight for one vector of products (so400m: 1.49-1.53 CPU s per image as 3 + 2, 1.57-1.62 as 5).
  const int nb = c.h16 / 16, passes = (nb + kB - 1) / kB;
  for (int b0 = 0, pass = 0; pass < passes; ++pass) {
    const int b1 = nb * (pass + 1) / passes, d0 = 16 * b0;
    switch (b1 - b0) {
      case 1: pv_i8<R, 1>(c.pu, c.l16, c.vq, c.h16, jq1, d0, c.hd, inv, c.sv, orow, rows); break;
      case 2: pv_i8<R, 2>(c.pu, c.l16, c.vq, c.h16, jq1, d0, c.hd, inv, c.sv, orow, rows); break;
      case 3: pv_i8<R, 3>(c.pu, c.l16, c.vq, c.h16, jq1, d0, c.hd, inv, c.sv, orow, rows); break;
      default: pv_i8<R, kB>(c.pu, c.l16, c.vq, c.h16, jq1, d0, c.hd, inv, c.sv, orow, rows); break;
    }
    b0 = b1;
  }
}

}  // namespace

void attention_head_int8(const float* q, const float* k, const float* v, long ld, int len, int hd, float scale,
                         bool causal, float* out, long ldo, unsigned char* work) {
  if (len <= 0 || hd <= 0) return;
  const int l16 = (len + 15) / 16 * 16, h16 = (hd + 15) / 16 * 16, dq = (hd + 3) / 4, lq = (len + 3) / 4;
  unsigned char* at = work;
  auto take = [&at](size_t bytes) {
    unsigned char* p = at;
    at += round64(bytes);
    return p;
  };
  auto* kq = reinterpret_cast<uint32_t*>(take(static_cast<size_t>(dq) * l16 * 4));
  auto* vq = take(static_cast<size_t>(lq) * h16 * 4);
  auto* qu = take(static_cast<size_t>(len) * dq * 4);
  auto* kneg = reinterpret_cast<int32_t*>(take(static_cast<size_t>(l16) * 4));
  auto* sk = reinterpret_cast<float*>(take(static_cast<size_t>(l16) * 4));
  auto* rs = reinterpret_cast<float*>(take(static_cast<size_t>(l16) * 4));
  auto* sv = reinterpret_cast<float*>(take(static_cast<size_t>(h16) * 4));
  auto* s = reinterpret_cast<float*>(take(static_cast<size_t>(8) * l16 * 4));
  auto* pu = take(static_cast<size_t>(8) * l16);
  const __m512i zero = _mm512_setzero_si512(), off = _mm512_set1_epi32(128);
  // One pass over the rows (q, k and v of a row share its pages, 3 x dim floats apart from the next row's: a TLB
  // miss each, and no hardware prefetch across them, so the rows a few ahead are prefetched): Q as u8 (q8 + 128;
  // 128 past hd: q8 = 0) in rows of dq quads; K^T as quads of int8 per key in blocks of 16 keys, keys padded to l16
  // with zeros, kneg = -128 sum_d k8; V's per-channel max |v| (in sv until the scales replace it).
  constexpr int kAhead = 8;
  const int lines = (hd * 4 + 63) / 64;
  for (int d = 0; d < h16; d += 16) _mm512_storeu_ps(sv + d, _mm512_setzero_ps());
  for (int j = 0; j < l16; ++j) {
    if (j + kAhead < len) {
      const char* ahead = reinterpret_cast<const char*>(q + (j + kAhead) * ld);
      const long kofs = (k - q) * 4, vofs = (v - q) * 4;
      for (int t = 0; t < lines; ++t) {
        _mm_prefetch(ahead + 64 * t, _MM_HINT_T0);
        _mm_prefetch(ahead + kofs + 64 * t, _MM_HINT_T0);
        _mm_prefetch(ahead + vofs + 64 * t, _MM_HINT_T0);
      }
    }
    if (j < len) {
      const float* x = q + j * ld;
      float sc = 0.0f, inv = 0.0f;
      scales(row_absmax(x, hd), &sc, &inv);
      rs[j] = sc * scale;
      const __m512 iv = _mm512_set1_ps(inv);
      for (int d = 0; d < dq * 4; d += 16) {
        const __m512i u = _mm512_add_epi32(quantize16(_mm512_maskz_loadu_ps(tail_mask(hd - d), x + d), iv), off);
        _mm_mask_storeu_epi8(qu + static_cast<long>(j) * dq * 4 + d, tail_mask(dq * 4 - d), _mm512_cvtepi32_epi8(u));
      }
      const float* y = v + j * ld;
      for (int d = 0; d < hd; d += 16)
        _mm512_storeu_ps(sv + d, _mm512_max_ps(_mm512_loadu_ps(sv + d),
                                               _mm512_abs_ps(_mm512_maskz_loadu_ps(tail_mask(hd - d), y + d))));
    }
    alignas(64) uint32_t row[64];  // up to 256 channels per 16-value pass below
    float sc = 0.0f, inv = 0.0f;
    if (j < len) scales(row_absmax(k + j * ld, hd), &sc, &inv);
    sk[j] = sc;
    const __m512 iv = _mm512_set1_ps(inv);
    __m512i ksum = zero;
    for (int d0 = 0; d0 < dq * 4; d0 += 256) {
      const int n = imin(dq * 4 - d0, 256);
      for (int d = 0; d < n; d += 16) {
        const __m512i kv =
            j < len ? quantize16(_mm512_maskz_loadu_ps(tail_mask(hd - d0 - d), k + j * ld + d0 + d), iv) : zero;
        ksum = _mm512_add_epi32(ksum, kv);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(reinterpret_cast<uint8_t*>(row) + d), _mm512_cvtepi32_epi8(kv));
      }
      for (int t = 0; t < (n + 3) / 4; ++t) kq[(static_cast<long>(j / 16) * dq + d0 / 4 + t) * 16 + j % 16] = row[t];
    }
    kneg[j] = -128 * _mm512_reduce_add_epi32(ksum);
  }
  // V: int8 per channel; vq[jq][c][t] = v8 of key 4 jq + t, channel c (keys past len and channels past hd: 0).
  for (int d = 0; d < h16; d += 16) {
    const __mmask16 m = tail_mask(hd - d);
    alignas(64) float iv[16];
    for (int c = 0; c < 16; ++c) scales(sv[d + c], sv + d + c, iv + c);
    const __m512 inv = _mm512_load_ps(iv);
    for (int jq = 0; jq < lq; ++jq) {
      __m128i b[4];
      for (int t = 0; t < 4; ++t) {
        const int j = 4 * jq + t;
        b[t] = j < len ? _mm512_cvtepi32_epi8(quantize16(_mm512_maskz_loadu_ps(m, v + j * ld + d), inv))
                       : _mm_setzero_si128();
      }
      // Interleave the 4 keys' bytes per channel: (k0 k1 k2 k3) for channels 0..15.
      const __m128i lo01 = _mm_unpacklo_epi8(b[0], b[1]), hi01 = _mm_unpackhi_epi8(b[0], b[1]);
      const __m128i lo23 = _mm_unpacklo_epi8(b[2], b[3]), hi23 = _mm_unpackhi_epi8(b[2], b[3]);
      auto* dst = reinterpret_cast<__m128i*>(vq + (static_cast<long>(jq) * h16 + d) * 4);
      _mm_storeu_si128(dst + 0, _mm_unpacklo_epi16(lo01, lo23));
      _mm_storeu_si128(dst + 1, _mm_unpackhi_epi16(lo01, lo23));
      _mm_storeu_si128(dst + 2, _mm_unpacklo_epi16(hi01, hi23));
      _mm_storeu_si128(dst + 3, _mm_unpackhi_epi16(hi01, hi23));
    }
  }
  const HeadI8 ctx{qu, kq, vq, kneg, sk, rs, sv, s, pu, out, ldo, len, hd, l16, h16, dq, causal};
  for (int i0 = 0; i0 < len;) {
    // Tiles of 8 query rows (each 16-key block of K^T and 16-channel block of V, streamed from L2 at long
    // sequences, serves 8 rows: so400m's K^T and V are 53 and 59 KB, past L1), the last one of 4 where <= 4 rows
    // are left (fewer rows computed twice).
    if (len - i0 > 4) attention_tile_i8<8>(ctx, i0);
    else attention_tile_i8<4>(ctx, i0);
    i0 += len - i0 > 4 ? 8 : 4;
  }
}

void layer_norm(const float* x, long rows, int dim, const float* gamma, const float* beta, float eps, float* y) {
  for (long r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    // Two passes with double accumulators, as the portable nn::layer_norm.
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    int i = 0;
    for (; i + 16 <= dim; i += 16) {
      s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm256_loadu_ps(xr + i)));
      s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_loadu_ps(xr + i + 8)));
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    for (; i < dim; ++i) sum += xr[i];
    const double mean = sum / dim;
    const __m512d mv = _mm512_set1_pd(mean);
    s0 = s1 = _mm512_setzero_pd();
    for (i = 0; i + 16 <= dim; i += 16) {
      const __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(xr + i)), mv);
      const __m512d d1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(xr + i + 8)), mv);
      s0 = _mm512_fmadd_pd(d0, d0, s0);
      s1 = _mm512_fmadd_pd(d1, d1, s1);
    }
    double sq = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    for (; i < dim; ++i) sq += (xr[i] - mean) * (xr[i] - mean);
    const double rstd = 1.0 / __builtin_sqrt(sq / dim + static_cast<double>(eps));
    const __m512d rv = _mm512_set1_pd(rstd);
    for (i = 0; i < dim; i += 16) {
      const __mmask16 m = tail_mask(dim - i);
      const __m512 xv = _mm512_maskz_loadu_ps(m, xr + i);
      const __m256 lo =
          _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(xv)), mv), rv));
      const __m256 hi = _mm512_cvtpd_ps(_mm512_mul_pd(
          _mm512_sub_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1))), mv), rv));
      __m512 v = _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
      if (gamma) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, gamma + i));
      if (beta) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, beta + i));
      _mm512_mask_storeu_ps(yr + i, m, v);
    }
  }
}

void activate(Act act, float* x, long n) {
  long i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, apply_act(act, _mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(static_cast<int>(n - i));
    _mm512_mask_storeu_ps(x + i, m, apply_act(act, _mm512_maskz_loadu_ps(m, x + i)));
  }
}

}  // namespace zeroshot::nn::kern::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
