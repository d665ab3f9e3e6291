// Weight-only int4 linear layers (Precision::Int4): weights stored 4-bit, group-wise along K, and dequantized on the
// fly inside the GEMM, so that a model's weights take ~5 bits per parameter in memory (ViT-H/14 in < 2 GB).
//
// Quantization (deterministic: the same f32 weights always give the same bytes, which saved files rely on): each
// output row j is cut into groups of `group` consecutive inputs (the last one shorter when k is not a multiple);
// per group, asymmetric with a float offset: w ~= q * scale + min, q in [0, 15], min = min(w), scale =
// (max(w) - min(w)) / 15 (0 for a constant group), q = round_half_even((w - min) / scale). Asymmetric rather than
// symmetric around 0 because it spends all 16 levels on the group's own range (a symmetric grid leaves one level
// unused and the side with the smaller |w| half used): lower error at the same bits (docs/quantized-format.md).
//
// Arithmetic: activations stay f32; each 32-column weight panel is dequantized into an f32 panel in a per-thread
// buffer (k x 32 floats, L2-resident) and multiplied by the f32 micro-kernel (nn/kernels.h), so a layer computes
// x * dequant(W)^T in f32 exactly as an f32 layer holding the dequantized weights would (up to summation order).
// The dequantization is amortized over all rows of a chunk of activations. Without AVX-512 (or with
// KernelChoice::Generic) the same dequantized values go through OpenBLAS, a block of columns at a time.
// Thread safety: forward() may run from several threads at once on one layer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/linear.h"

namespace zeroshot::nn {

constexpr int kInt4DefaultGroup = 32;
// The group sizes files and loads accept (multiples of the AVX-512 lane count are not required, but keeping the
// list short keeps files comparable).
bool int4_group_supported(int group);

struct Int4Weights {
  int n = 0, k = 0, group = kInt4DefaultGroup;
  std::vector<uint8_t> q;      // n rows of (k + 1) / 2 bytes: input 2i in the low nibble, 2i + 1 in the high one
  std::vector<float> scale;    // n x groups
  std::vector<float> minimum;  // n x groups
  int groups() const { return (k + group - 1) / group; }
  size_t row_bytes() const { return (static_cast<size_t>(k) + 1) / 2; }
};

Int4Weights quantize_int4(const float* w, int n, int k, int group = kInt4DefaultGroup);
// The f32 weights the int4 ones stand for ([n, k]): what the kernels multiply by.
std::vector<float> dequantize_int4(const Int4Weights& q);
// Throws zeroshot::Error(what, ...) when sizes disagree or a scale / minimum is not finite (or a scale < 0).
void check_int4(const Int4Weights& q, const std::string& what);

// The packed layer (PackedLinear's Int4 state).
struct Int4Packed {
  int n = 0, k = 0, group = kInt4DefaultGroup;
  bool avx = false;
  // AVX-512: panels of 32 columns, k rows of 16 bytes each (byte c: column c in the low nibble, column c + 16 in the
  // high one); per panel and group, 32 scales then 32 minimums (0 past n).
  std::vector<uint8_t> panels;
  std::vector<float> panel_params;
  // Generic: the weights as quantized.
  Int4Weights plain;
  size_t bytes() const {
    return panels.size() + panel_params.size() * sizeof(float) + plain.q.size() +
           (plain.scale.size() + plain.minimum.size()) * sizeof(float);
  }
};

Int4Packed pack_int4(Int4Weights q, KernelChoice kc);
// y = post(x W^T + bias), rows of x layer-normalized first when `norm` is set; post.act must be an epilogue
// activation when post.kind is Activate (PackedLinear::forward runs the others as a pass).
void int4_forward(const Int4Packed& L, const float* bias, const float* x, int m, long ldx, float* y, long ldy,
                  ThreadPool* pool, LinearPost post, const RowLayerNorm* norm);

}  // namespace zeroshot::nn
