// Internal to nn/: the AVX-512 part of the int4 layers (int4_gemm.h), compiled for AVX-512 in
// int4_kernels_avx512.cpp. Call only when kern::cpu_has_avx512() says so.
#pragma once

#include <cstdint>

namespace zeroshot::nn::kern::avx512 {

// One int4 weight panel (k rows of 16 bytes; params: per group 32 scales then 32 minimums) into dst as the f32
// micro-kernel's panel: k rows of 32 floats, dst 64-byte aligned. w = fma(q, scale, min), as dequantize_int4.
void dequant_int4_panel(const uint8_t* panel, const float* params, int k, int group, float* dst);

}  // namespace zeroshot::nn::kern::avx512
