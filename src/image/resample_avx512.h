// The horizontal 8-bit pass of resample.cpp with AVX-512 (F, BW, VL), chosen at run time. Not part of the public
// API. Call only when resample_avx512_available() says yes.
//
// Same bytes as the scalar pass: Pillow's 8-bit resampling sums integer products (8-bit sample x 22-bit fixed-point
// coefficient) in an int32, and integer sums do not depend on their order, so summing 15 or 16 products per vector
// lane and the lanes afterwards gives Pillow's sum exactly (32-bit wrap-around in the lanes cancels out: the true
// sum fits an int32, as it must in Pillow's own C). Nothing here throws except std::bad_alloc.
#pragma once

#include <cstddef>
#include <cstdint>

namespace zeroshot::image::detail {

struct LaneWeights;

// The CPU has AVX-512 F/BW/VL, the OS saves its state, and ZEROSHOT_KERNELS is neither "generic" nor "avx2" (the
// AVX2 passes then, where the CPU has them: for measuring them on an AVX-512 machine).
bool resample_avx512_available();

// Rows [0, rows) of an interleaved image with `channels` (1..4) bands, row y at src + y * stride; n output pixels
// per row, output xx from `count[xx]` taps starting at pixel first[xx] with weights k[xx * ksize ...] (Pillow's
// fixed point, kPrecisionBits 22); out is rows x n pixels, packed.
void horizontal_u8_avx512(const uint8_t* src, size_t stride, int rows, int channels, int n, const int* first,
                          const int* count, const int32_t* k, int ksize, uint8_t* out);

// One output row of the vertical pass: dst[i] = clip8(sum over t < count of k[t] * src[t * stride + i]) for
// i < row_bytes (Pillow's rounding half added), any band count (the bytes of a row are independent).
// The same with the weights laid out beforehand (lane_weights(channels, 16, ...) of the same coefficients), for
// a caller that runs the pass strip by strip.
void horizontal_u8_avx512_lanes(const uint8_t* src, size_t stride, int rows, int channels, int n, const int* first,
                                const int* count, const LaneWeights& lw, uint8_t* out);

void vertical_row_u8_avx512(const uint8_t* src, size_t stride, int count, const int32_t* k, size_t row_bytes,
                            uint8_t* dst);

}  // namespace zeroshot::image::detail
