// The int4 panel dequantization (int4_kernels.h), compiled for AVX-512 by a target pragma after every include, as
// kernels_avx512.cpp explains (no AVX-512 copy of an inline function of a header can leak into the program).
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "nn/int4_kernels.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,fma")
#endif

namespace zeroshot::nn::kern::avx512 {

void dequant_int4_panel(const uint8_t* panel, const float* params, int k, int group, float* dst) {
  const __m512i low = _mm512_set1_epi32(0xF);
  for (int g0 = 0; g0 < k; g0 += group, params += 64) {
    const __m512 s0 = _mm512_loadu_ps(params), s1 = _mm512_loadu_ps(params + 16);
    const __m512 m0 = _mm512_loadu_ps(params + 32), m1 = _mm512_loadu_ps(params + 48);
    const int g1 = g0 + group < k ? g0 + group : k;
    for (int i = g0; i < g1; ++i) {
      // 16 bytes = 32 nibbles: columns 0-15 in the low nibbles, 16-31 in the high ones.
      const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(panel + i * 16L)));
      const __m512 q0 = _mm512_cvtepi32_ps(_mm512_and_si512(b, low));
      const __m512 q1 = _mm512_cvtepi32_ps(_mm512_srli_epi32(b, 4));
      _mm512_store_ps(dst + i * 32L, _mm512_fmadd_ps(q0, s0, m0));
      _mm512_store_ps(dst + i * 32L + 16, _mm512_fmadd_ps(q1, s1, m1));
    }
  }
}

}  // namespace zeroshot::nn::kern::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
