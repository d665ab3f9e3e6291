// Prepacked linear layers (torch.nn.Linear, y = x W^T + b) for model forward passes: the weights are converted
// once, at model load, into the layout and precision the GEMM kernels read, and the bias, the activation or the
// residual add are applied while the output tile is still in registers.
//
// Kernels: on a CPU with AVX-512 (F/BW/DQ/VL; BF16 / VNNI for those precisions) own register-blocked micro-kernels
// (nn/kernels.h); elsewhere, or with ZEROSHOT_KERNELS=generic in the environment, or KernelChoice::Generic, the
// portable path: OpenBLAS sgemm over f32 copies that hold exactly the same rounded / quantized values, so both
// paths compute the same function up to f32 summation order.
//
// Precisions (activations and everything outside the GEMMs stay f32):
//   F32   exact f32 products, f32 accumulation.
//   BF16  weights rounded to bfloat16 (nearest even) at load, activations rounded to bfloat16 per GEMM,
//         products accumulated in f32 (AVX512-BF16 vdpbf16ps).
//   Int8  weights int8 per output channel, symmetric: w[j][i] ~= scale[j] * q[j][i], q in [-127, 127];
//         activations quantized per call and per row, asymmetric: x[r][i] ~= s[r] * (u[r][i] - z[r]),
//         u in [0, 255], the range always holding 0; exact int32 dot products (VNNI vpdpbusd), dequantized in f32.
//   Int4  weight-only: 4-bit weights in groups along K (nn/int4_gemm.h), dequantized to f32 panels inside the
//         GEMM; activations and products f32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "nn/ops.h"
#include "nn/precision.h"
#include "nn/thread_pool.h"

namespace zeroshot::nn {

enum class KernelChoice {
  Auto,     // AVX-512 kernels when the CPU has them (and ZEROSHOT_KERNELS is not "generic")
  Generic,  // always the portable path (tests compare the two)
};

// Tests: while on, every kernel choice made afterwards (PackedLinear Auto, attention, layer_norm) takes the portable
// path, as on a CPU without AVX-512. Already built PackedLinear objects keep their path.
void force_generic_kernels(bool on);

// True when KernelChoice::Auto picks the AVX-512 kernels for this precision on this machine.
bool avx512_kernels(Precision p);

// Per-output-channel symmetric int8 quantization of a [n, k] weight (round to nearest even; an all-zero row
// gets scale 1). Deterministic: the same weights always give the same bytes (saved files rely on it).
struct Int8Weights {
  int n = 0, k = 0;
  std::vector<int8_t> q;     // n x k
  std::vector<float> scale;  // n
};
Int8Weights quantize_int8(const float* w, int n, int k);

struct Int4Weights;  // nn/int4_gemm.h

// bfloat16 of a float, round to nearest even (NaN stays NaN).
uint16_t f32_to_bf16(float x);
// The float that x becomes stored as bfloat16: f32_to_bf16 widened back (what the BF16 kernels multiply).
float bf16_round(float x);

// The AVX-512 weight panels of F32, BF16 and Int8 layers, for storing them and mapping them back
// (models/packed_weights.h): the name of the layout that the packing writes on this machine for `p` ("" when the layer
// would not be packed that way: the generic path, or Int4), and the bytes of one [n, k] layer's panels in it (Int8:
// the panels of bytes followed by each padded column's f32 scale and int32 sum, one block). A stored copy is only
// valid under the same name: it changes with the panel geometry, the unit per precision and the CPU's kernels.
const char* packed_layout(Precision p);
size_t packed_panel_bytes(int n, int k, Precision p);

// What the epilogue does with acc = x W^T + b.
struct LinearPost {
  enum Kind { Store, Activate, Accumulate };
  Kind kind = Store;  // Store: y = acc; Activate: y = act(acc); Accumulate: y += acc (residual add)
                      // (Relu and Silu are applied in a pass after the product, not in the epilogue)
  Act act = Act::QuickGelu;
  static LinearPost store() { return {}; }
  static LinearPost activate(Act a) { return {Activate, a}; }
  static LinearPost accumulate() { return {Accumulate, Act::QuickGelu}; }
};

// A layer norm of each input row, applied on the way into the product (nn::layer_norm's arithmetic): for a
// linear layer that is the only reader of the norm's output, this saves a pass over the rows and their buffer.
struct RowLayerNorm {
  const float* gamma = nullptr;  // null: 1
  const float* beta = nullptr;   // null: 0
  float eps = 1e-5f;
};

class PackedLinear {
 public:
  PackedLinear();
  // w: [n, k] row-major (torch layout); bias: n values or null. The generic F32 path uses w and bias in place
  // (they must outlive this object); every other path keeps its own converted copy (w may go away).
  // pool: threads that share the packing (a model load's wall time; null: the calling thread).
  PackedLinear(const float* w, const float* bias, int n, int k, Precision p, KernelChoice kc = KernelChoice::Auto,
               ThreadPool* pool = nullptr);
  // The same, taking the weights (and the bias; empty: none) over: the generic F32 path uses them in place.
  PackedLinear(std::vector<float> w, std::vector<float> bias, int n, int k, Precision p,
               KernelChoice kc = KernelChoice::Auto, ThreadPool* pool = nullptr);
  // Int8 from weights quantized beforehand (quantize_int8's output, e.g. read from a saved file). bias is copied.
  PackedLinear(const Int8Weights& w, const float* bias, KernelChoice kc = KernelChoice::Auto);
  // F32 / BF16 / Int8 on the AVX-512 path (packed_layout(p) not empty) over panels packed beforehand: the panels() of
  // an equal layer, e.g. memory-mapped from a file. They are used in place (they must outlive this object and be
  // 64-byte aligned); bias (n values or null) is copied. Throws zeroshot::Error for a size or layout mismatch.
  static PackedLinear from_panels(const uint8_t* panels, size_t bytes, const float* bias, int n, int k, Precision p);
  // Int4 from weights quantized beforehand (nn/int4_gemm.h: quantize_int4's output, e.g. read from a saved file).
  PackedLinear(Int4Weights w, const float* bias, KernelChoice kc = KernelChoice::Auto);
  ~PackedLinear();
  PackedLinear(PackedLinear&&) noexcept;
  PackedLinear& operator=(PackedLinear&&) noexcept;

  int in_features() const;
  int out_features() const;
  Precision precision() const;
  bool uses_avx512() const;
  size_t weight_bytes() const;   // memory owned for the weights (0 when used in place)
  bool borrows_weights() const;  // the w passed in is used in place (generic F32 path, pointer constructor)
  // The AVX-512 panels of an F32 / BF16 / Int8 layer (null otherwise) and their size: what from_panels takes back.
  const uint8_t* panels() const;
  size_t panel_bytes() const;

  // y[m x n] (row stride ldy) from x[m x k] (row stride ldx) per `post`, the rows of x layer-normalized first
  // when `norm` is given. y must not overlap x. Parallel over output columns (and rows when there are few columns)
  // on `pool` (null: calling thread).
  void forward(const float* x, int m, long ldx, float* y, long ldy, ThreadPool* pool, LinearPost post = {},
               const RowLayerNorm* norm = nullptr) const;
  void forward(const float* x, int m, float* y, ThreadPool* pool, LinearPost post = {},
               const RowLayerNorm* norm = nullptr) const {
    forward(x, m, in_features(), y, out_features(), pool, post, norm);
  }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zeroshot::nn
