// AVX2 resize passes (resample_avx2.h): the layout of resample_avx512.cpp with 8 lanes (6 bytes per vector for 3
// bands, 8 otherwise). AVX2 has no masked byte loads, so a vector may read up to 7 bytes past a pixel's last tap
// (weight 0): harmless inside the image, but near the end of the pass's rows the buffer may end there, so those
// pixels' taps are copied into a zero-padded scratch row first.
//
// As in nn/kernels_avx512.cpp, only the functions between the target pragmas are compiled for AVX2, so no AVX2
// copy of an inline function of a standard header can leak into the rest of the program.
#include "image/resample_avx2.h"

#include <immintrin.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "image/resample_lanes.h"

namespace zeroshot::image::detail {

bool resample_avx2_available() {
  static const bool ok = [] {
    const char* v = std::getenv("ZEROSHOT_KERNELS");
    if (v && std::string(v) == "generic") return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return ok;
}

}  // namespace zeroshot::image::detail

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif

namespace zeroshot::image::detail {

namespace {

constexpr int kPrecisionBits = 22;  // resample.cpp's: 32 - 8 - 2

// 8 bytes -> 8 int32 lanes.
inline __m256i widen8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// Lane j holds band j % C (C = 3: lanes 0..5, lanes 6 and 7 weigh 0); the band sums end in lanes 0..C-1.
template <int C>
inline __m128i band_sums(__m256i a) {
  __m128i lo = _mm256_castsi256_si128(a), hi = _mm256_extracti128_si256(a, 1);
  if constexpr (C == 3) {
    // lanes 0..2 + lanes 3..5 (lane 3 of lo, lanes 0..1 of hi)
    const __m128i upper = _mm_alignr_epi8(hi, lo, 12);  // lanes 3, 4, 5, 6
    return _mm_add_epi32(lo, upper);
  } else {
    __m128i r = _mm_add_epi32(lo, hi);  // j + j+4
    if constexpr (C <= 2) r = _mm_add_epi32(r, _mm_srli_si128(r, 8));
    if constexpr (C == 1) r = _mm_add_epi32(r, _mm_srli_si128(r, 4));
    return r;
  }
}

template <int C>
inline void store_pixel(__m256i acc, uint8_t* dst) {
  __m128i v = _mm_add_epi32(band_sums<C>(acc), _mm_set1_epi32(1 << (kPrecisionBits - 1)));
  v = _mm_srai_epi32(v, kPrecisionBits);
  v = _mm_packus_epi16(_mm_packs_epi32(v, v), v);  // clamp to 0..255 (|v| < 2^10 after the shift)
  const uint32_t word = static_cast<uint32_t>(_mm_cvtsi128_si32(v));
  std::memcpy(dst, &word, C);
}

// One output pixel of one row: taps at p (vecs vectors of kChunk bytes), weights wx.
template <int C>
inline __m256i dot(const uint8_t* p, const int32_t* wx, int vecs) {
  constexpr int kChunk = 8 - 8 % C;
  __m256i a = _mm256_setzero_si256();
  for (int m = 0; m < vecs; ++m)
    a = _mm256_add_epi32(a, _mm256_mullo_epi32(widen8(p + m * kChunk),
                                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wx + m * 8))));
  return a;
}

// Rows [0, rows): w holds nvec weight vectors of 8 lanes per output pixel, vecs how many have taps; scratch has
// room for a row's taps plus 8 bytes.
template <int C>
void horizontal(const uint8_t* src, size_t stride, int rows, int n, const int* first, const int* count,
                const int32_t* w, int nvec, const int* vecs, size_t row_end, uint8_t* scratch, uint8_t* out) {
  constexpr int kChunk = 8 - 8 % C;
  // What is known to be readable: up to the last row's last tap. Narrow rows (< 8 bytes) can make a read overrun
  // more than the next row, so the test is on the address, not on the row.
  const size_t end = static_cast<size_t>(rows - 1) * stride + row_end;  // offsets from src (no pointer past it)
  const size_t out_row = static_cast<size_t>(n) * C;
  for (int y = 0; y < rows; ++y) {
    const uint8_t* r = src + y * stride;
    uint8_t* o = out + y * out_row;
    for (int xx = 0; xx < n; ++xx) {
      const int32_t* wx = w + static_cast<size_t>(xx) * nvec * 8;
      const uint8_t* p = r + static_cast<size_t>(first[xx]) * C;
      const size_t reach = vecs[xx] > 0 ? static_cast<size_t>(vecs[xx] - 1) * kChunk + 8 : 0;
      if (static_cast<size_t>(y) * stride + static_cast<size_t>(first[xx]) * C + reach > end) {  // padded copy
        const size_t bytes = static_cast<size_t>(count[xx]) * C;
        std::memcpy(scratch, p, bytes);
        std::memset(scratch + bytes, 0, 8);
        p = scratch;
      }
      store_pixel<C>(dot<C>(p, wx, vecs[xx]), o + xx * C);
    }
  }
}

}  // namespace

void vertical_row_u8_avx2(const uint8_t* src, size_t stride, int count, const int32_t* k, size_t row_bytes,
                          uint8_t* dst) {
  const __m256i half = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
  size_t i = 0;
  for (; i + 32 <= row_bytes; i += 32) {
    __m256i a0 = half, a1 = half, a2 = half, a3 = half;
    const uint8_t* p = src + i;
    for (int t = 0; t < count; ++t, p += stride) {
      const __m256i kv = _mm256_set1_epi32(k[t]);
      a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(widen8(p), kv));
      a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(widen8(p + 8), kv));
      a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(widen8(p + 16), kv));
      a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(widen8(p + 24), kv));
    }
    // clip8: shift, then saturate to 16 and 8 bits (packs work per 128-bit half: put the lanes back in order).
    const __m256i s01 =
        _mm256_packs_epi32(_mm256_srai_epi32(a0, kPrecisionBits), _mm256_srai_epi32(a1, kPrecisionBits));
    const __m256i s23 =
        _mm256_packs_epi32(_mm256_srai_epi32(a2, kPrecisionBits), _mm256_srai_epi32(a3, kPrecisionBits));
    const __m256i b = _mm256_packus_epi16(s01, s23);
    const __m256i ordered = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), ordered);
  }
  for (; i < row_bytes; ++i) {  // the rest byte by byte, as the scalar pass
    int s = 1 << (kPrecisionBits - 1);
    const uint8_t* p = src + i;
    for (int t = 0; t < count; ++t, p += stride) s += *p * k[t];
    s >>= kPrecisionBits;
    dst[i] = static_cast<uint8_t>(s < 0 ? 0 : (s > 255 ? 255 : s));
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

// Outside the AVX2 region: the std::vector code here must stay baseline.
template <int C>
void run(const uint8_t* src, size_t stride, int rows, int n, const int* first, const int* count, const LaneWeights& lw,
         uint8_t* out) {
  std::vector<uint8_t> scratch(static_cast<size_t>(lw.nvec) * lw.chunk + 8, 0);
  horizontal<C>(src, stride, rows, n, first, count, lw.w.data(), lw.nvec, lw.vecs.data(), lw.row_end, scratch.data(),
                out);
}

}  // namespace

void horizontal_u8_avx2_lanes(const uint8_t* src, size_t stride, int rows, int channels, int n, const int* first,
                              const int* count, const LaneWeights& lw, uint8_t* out) {
  switch (channels) {
    case 1: run<1>(src, stride, rows, n, first, count, lw, out); break;
    case 2: run<2>(src, stride, rows, n, first, count, lw, out); break;
    case 3: run<3>(src, stride, rows, n, first, count, lw, out); break;
    default: run<4>(src, stride, rows, n, first, count, lw, out); break;
  }
}

void horizontal_u8_avx2(const uint8_t* src, size_t stride, int rows, int channels, int n, const int* first,
                        const int* count, const int32_t* k, int ksize, uint8_t* out) {
  horizontal_u8_avx2_lanes(src, stride, rows, channels, n, first, count,
                           lane_weights(channels, 8, n, first, count, k, ksize), out);
}

}  // namespace zeroshot::image::detail
