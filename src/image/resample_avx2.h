// resample_avx512.h's passes with AVX2, for CPUs without AVX-512 (most laptops), chosen at run time. Not part of the
// public API. Call only when resample_avx2_available() says yes. Same contract and same bytes as the AVX-512 ones
// (integer sums of Pillow's 22-bit coefficient products, in another order); nothing throws except std::bad_alloc.
#pragma once

#include <cstddef>
#include <cstdint>

namespace zeroshot::image::detail {

struct LaneWeights;

// The CPU has AVX2, the OS saves its state, and ZEROSHOT_KERNELS is not "generic".
bool resample_avx2_available();

void horizontal_u8_avx2(const uint8_t* src, size_t stride, int rows, int channels, int n, const int* first,
                        const int* count, const int32_t* k, int ksize, uint8_t* out);

// The same with the weights laid out beforehand (lane_weights(channels, 8, ...) of the same coefficients), for
// a caller that runs the pass strip by strip.
void horizontal_u8_avx2_lanes(const uint8_t* src, size_t stride, int rows, int channels, int n, const int* first,
                              const int* count, const LaneWeights& lw, uint8_t* out);

void vertical_row_u8_avx2(const uint8_t* src, size_t stride, int count, const int32_t* k, size_t row_bytes,
                          uint8_t* dst);

}  // namespace zeroshot::image::detail
