// AVX-512 horizontal pass (resample_avx512.h). Pillow-SIMD's horizontal pass keeps 16-bit coefficients, which rounds
// differently; here the coefficients stay Pillow's 22-bit ones and each product is a full 32-bit vpmulld, so only
// the order of the integer sums changes. Each vector takes the bytes of up to 15 (3 bands) or 16 consecutive
// interleaved samples of one output pixel: a lane always sees the same band, so the band sums are sums of lanes.
// Four rows share each weight vector (the weights of a whole row, ~150 KB for a 12 MP photo, live in L2).
//
// As in nn/kernels_avx512.cpp, only this file is compiled for AVX-512, by a target pragma after every include, so no
// AVX-512 copy of an inline function of a standard header can leak into the rest of the program.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "image/resample_avx512.h"

#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "image/resample_lanes.h"

namespace zeroshot::image::detail {

bool resample_avx512_available() {
  static const bool ok = [] {
    const char* v = std::getenv("ZEROSHOT_KERNELS");
    if (v && (std::string(v) == "generic" || std::string(v) == "avx2")) return false;  // avx2: measure that path
    __builtin_cpu_init();
    // libgcc also checks that the OS saves the zmm state (XCR0) before reporting these.
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
  }();
  return ok;
}

}  // namespace zeroshot::image::detail

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")
#endif

namespace zeroshot::image::detail {

namespace {

constexpr int kPrecisionBits = 22;  // resample.cpp's: 32 - 8 - 2

// Sums of the lanes of one band: lane j holds band j % C (C = 3: lanes 0..14; lane 15 has weight 0), so the sums
// end up in lanes 0..C-1.
template <int C>
inline __m128i band_sums(__m512i a) {
  const __m512i z = _mm512_setzero_si512();
  if constexpr (C == 3) {
    const __m512i s1 = _mm512_add_epi32(a, _mm512_alignr_epi32(z, a, 3));    // a[j] + a[j+3]
    const __m512i s2 = _mm512_add_epi32(s1, _mm512_alignr_epi32(z, s1, 6));  // + a[j+6] + a[j+9]
    return _mm512_castsi512_si128(_mm512_add_epi32(s2, _mm512_alignr_epi32(z, a, 12)));
  } else {
    a = _mm512_add_epi32(a, _mm512_alignr_epi32(z, a, 8));
    if constexpr (C <= 2) a = _mm512_add_epi32(a, _mm512_alignr_epi32(z, a, 4));
    if constexpr (C == 1) a = _mm512_add_epi32(a, _mm512_alignr_epi32(z, a, 2));
    __m128i r = _mm512_castsi512_si128(a);
    if constexpr (C == 4) r = _mm_add_epi32(r, _mm512_extracti32x4_epi32(a, 1));
    if constexpr (C == 2) r = _mm_add_epi32(r, _mm_srli_si128(r, 8));
    if constexpr (C == 1) r = _mm_add_epi32(r, _mm_srli_si128(r, 4));
    return r;
  }
}

// Pillow's clip8 of each band sum (plus the rounding half), stored as C bytes.
template <int C>
inline void store_pixel(__m512i acc, uint8_t* dst) {
  __m128i v = _mm_add_epi32(band_sums<C>(acc), _mm_set1_epi32(1 << (kPrecisionBits - 1)));
  v = _mm_srai_epi32(v, kPrecisionBits);           // clip8's arithmetic shift
  v = _mm_packus_epi16(_mm_packs_epi32(v, v), v);  // clamp to 0..255 (|v| < 2^10 after the shift)
  const uint32_t word = static_cast<uint32_t>(_mm_cvtsi128_si32(v));
  std::memcpy(dst, &word, C);
}

// Rows [0, rows): w holds nvec weight vectors per output pixel (see horizontal_u8_avx512), vecs how many of them
// have taps.
template <int C>
void horizontal(const uint8_t* src, size_t stride, int rows, int n, const int* first, const int* count,
                const int32_t* w, int nvec, const int* vecs, uint8_t* out) {
  constexpr int kChunk = 16 - 16 % C;  // bytes per vector: whole pixels only
  // Loads stop at the last tap's byte (masked), so nothing past the image is read.
  const auto mask_for = [](int rest) -> __mmask16 {
    return rest >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << rest) - 1);
  };
  const size_t out_row = static_cast<size_t>(n) * C;
  int y = 0;
  for (; y + 4 <= rows; y += 4) {
    const uint8_t* r0 = src + y * stride;
    const uint8_t *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
    uint8_t* o = out + y * out_row;
    for (int xx = 0; xx < n; ++xx) {
      const int32_t* wx = w + static_cast<size_t>(xx) * nvec * 16;
      const size_t off = static_cast<size_t>(first[xx]) * C;
      const int bytes = C * count[xx];
      __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
      for (int m = 0; m < vecs[xx]; ++m) {
        const __mmask16 mask = mask_for(bytes - m * kChunk);
        const __m512i kv = _mm512_loadu_si512(wx + m * 16);
        const size_t p = off + static_cast<size_t>(m) * kChunk;
        a0 = _mm512_add_epi32(a0, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, r0 + p)), kv));
        a1 = _mm512_add_epi32(a1, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, r1 + p)), kv));
        a2 = _mm512_add_epi32(a2, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, r2 + p)), kv));
        a3 = _mm512_add_epi32(a3, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, r3 + p)), kv));
      }
      store_pixel<C>(a0, o + xx * C);
      store_pixel<C>(a1, o + out_row + xx * C);
      store_pixel<C>(a2, o + 2 * out_row + xx * C);
      store_pixel<C>(a3, o + 3 * out_row + xx * C);
    }
  }
  for (; y < rows; ++y) {
    const uint8_t* r0 = src + y * stride;
    uint8_t* o = out + y * out_row;
    for (int xx = 0; xx < n; ++xx) {
      const int32_t* wx = w + static_cast<size_t>(xx) * nvec * 16;
      const size_t off = static_cast<size_t>(first[xx]) * C;
      const int bytes = C * count[xx];
      __m512i a0 = _mm512_setzero_si512();
      for (int m = 0; m < vecs[xx]; ++m) {
        const __m512i kv = _mm512_loadu_si512(wx + m * 16);
        const __m128i px =
            _mm_maskz_loadu_epi8(mask_for(bytes - m * kChunk), r0 + off + static_cast<size_t>(m) * kChunk);
        a0 = _mm512_add_epi32(a0, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(px), kv));
      }
      store_pixel<C>(a0, o + xx * C);
    }
  }
}

}  // namespace

void vertical_row_u8_avx512(const uint8_t* src, size_t stride, int count, const int32_t* k, size_t row_bytes,
                            uint8_t* dst) {
  const __m512i half = _mm512_set1_epi32(1 << (kPrecisionBits - 1)), zero = _mm512_setzero_si512();
  // clip8 of 16 sums: the shift, then 0..255 (negative sums to 0 first, then unsigned saturation).
  const auto clip = [&](__m512i a) {
    return _mm512_cvtusepi32_epi8(_mm512_max_epi32(_mm512_srai_epi32(a, kPrecisionBits), zero));
  };
  size_t i = 0;
  for (; i + 64 <= row_bytes; i += 64) {  // 64 bytes of the row in four accumulators, across every tap
    __m512i a0 = half, a1 = half, a2 = half, a3 = half;
    const uint8_t* p = src + i;
    for (int t = 0; t < count; ++t, p += stride) {
      const __m512i kv = _mm512_set1_epi32(k[t]);
      a0 = _mm512_add_epi32(
          a0, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), kv));
      a1 = _mm512_add_epi32(
          a1, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16))), kv));
      a2 = _mm512_add_epi32(
          a2, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32))), kv));
      a3 = _mm512_add_epi32(
          a3, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 48))), kv));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), clip(a0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 16), clip(a1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 32), clip(a2));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 48), clip(a3));
  }
  for (; i < row_bytes; i += 16) {  // the rest, 16 bytes at a time with masked loads and stores
    const size_t rest = row_bytes - i;
    const __mmask16 mask = rest >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << rest) - 1);
    __m512i a = half;
    const uint8_t* p = src + i;
    for (int t = 0; t < count; ++t, p += stride)
      a = _mm512_add_epi32(
          a, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, p)), _mm512_set1_epi32(k[t])));
    _mm_mask_storeu_epi8(dst + i, mask, clip(a));
  }
}

}  // namespace zeroshot::image::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace zeroshot::image::detail {

namespace {

// Outside the AVX-512 region: the std::vector code here must stay baseline.
template <int C>
void run(const uint8_t* src, size_t stride, int rows, int n, const int* first, const int* count, const LaneWeights& lw,
         uint8_t* out) {
  horizontal<C>(src, stride, rows, n, first, count, lw.w.data(), lw.nvec, lw.vecs.data(), out);
}

}  // namespace

void horizontal_u8_avx512_lanes(const uint8_t* src, size_t stride, int rows, int channels, int n, const int* first,
                                const int* count, const LaneWeights& lw, uint8_t* out) {
  switch (channels) {
    case 1: run<1>(src, stride, rows, n, first, count, lw, out); break;
    case 2: run<2>(src, stride, rows, n, first, count, lw, out); break;
    case 3: run<3>(src, stride, rows, n, first, count, lw, out); break;
    default: run<4>(src, stride, rows, n, first, count, lw, out); break;
  }
}

void horizontal_u8_avx512(const uint8_t* src, size_t stride, int rows, int channels, int n, const int* first,
                          const int* count, const int32_t* k, int ksize, uint8_t* out) {
  horizontal_u8_avx512_lanes(src, stride, rows, channels, n, first, count,
                             lane_weights(channels, 16, n, first, count, k, ksize), out);
}

}  // namespace zeroshot::image::detail
