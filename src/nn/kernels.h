// Internal to nn/: the packed operand layouts and the AVX-512 GEMM entry points (kernels_avx512.cpp).
//
// C[m x n] = A[m x k] * B[k x n] where B is a torch.nn.Linear weight W[n, k] read as W^T.
// k is walked in "units": 1 float (F32), a pair of bf16 (BF16) or a quad of bytes (Int8), so that every unit of
// every operand is 32 bits and every row of a weight panel is 128 bytes = 2 zmm, whatever the precision:
//   B (weights, packed once): panels of kNR = 32 output columns; panel p = [ku][32 columns][unit] elements
//     (f32 / bf16 / s8), columns past n and k past the end zero. Int8 also has per-column scale and
//     column sums of the quantized weights (for the activation zero point), both padded to whole panels.
//   A (activations): row-major, row stride lda 32-bit words. F32 reads x itself (lda = its row stride); BF16 / Int8
//     convert x per call into rows of ku units (bf16 pairs / u8 quads; BF16 on the FMA path: the bf16-rounded
//     values as f32, 2 words per unit, see bf16_by_fma), the tail of the last unit zero
//     (Int8: the row's zero point, which meets zero weights there). Int8 rows are quantized asymmetrically per
//     row: x ~= scale * (u - zp), u in [0, 255]. The kernel walks kMR = 10 rows at a time.
// The functions in namespace avx512 are compiled for AVX-512 (F, BW, DQ, VL, BF16, VNNI): call them only when
// cpu_has_avx512() (and cpu_has_avx512_bf16() / _vnni() for those precisions) says so.
#pragma once

#include <cstddef>
#include <cstdint>

#include "nn/ops.h"
#include "nn/precision.h"

namespace zeroshot::nn::kern {

constexpr int kNR = 32;
constexpr int kMR = 10;
constexpr size_t kPanelRowBytes = 128;

// The activations the GEMM epilogue and avx512::activate compute (the others run as a pass: nn/linear.cpp).
inline bool epilogue_act(Act a) { return a == Act::QuickGelu || a == Act::Gelu || a == Act::GeluTanh; }

inline int unit_of(Precision p) { return p == Precision::F32 ? 1 : p == Precision::BF16 ? 2 : 4; }
inline int units(Precision p, int k) { return (k + unit_of(p) - 1) / unit_of(p); }
inline int panels(int n) { return (n + kNR - 1) / kNR; }
inline int row_blocks(int m) { return (m + kMR - 1) / kMR; }

struct GemmCall {
  Precision prec = Precision::F32;
  int m = 0, n = 0, ku = 0;
  // A: m rows of ku units at stride lda; a_scale / a_zp: per row (Int8 only).
  const uint32_t* a = nullptr;
  long lda = 0;
  const float* a_scale = nullptr;
  const int32_t* a_zp = nullptr;
  // B: panels(n) panels of ku * 128 bytes; b_scale / b_colsum: per column, panels(n) * 32 (Int8 only).
  const uint8_t* b = nullptr;
  const float* b_scale = nullptr;
  const int32_t* b_colsum = nullptr;
  // Epilogue: c = act(a*b + bias) when has_act (act: an epilogue_act), or c += a*b + bias when accumulate.
  const float* bias = nullptr;  // n values or null
  bool has_act = false;
  Act act = Act::QuickGelu;
  bool accumulate = false;
  float* c = nullptr;
  long ldc = 0;
};

// True when the CPU has AVX-512 F/BW/DQ/VL (+ BF16 / VNNI) and ZEROSHOT_KERNELS is not "generic".
bool cpu_has_avx512();
bool cpu_has_avx512_bf16();
bool cpu_has_avx512_vnni();

namespace avx512 {

// Optional layer norm applied to each row of x before it is converted (nn::layer_norm's arithmetic).
struct RowNorm {
  const float* gamma = nullptr;
  const float* beta = nullptr;
  float eps = 0.0f;
};
// How BF16 products are computed (B's packed layout is the same either way): vdpbf16ps on bf16 pairs, or, where
// that instruction issues at less than half the rate of vfmadd231ps (a one-off ~0.1 ms probe), f32 FMAs on the
// bf16 values widened in registers. The choice changes BF16's A rows: pairs (1 word per unit) or the
// bf16-rounded values as f32 (2 words per unit). ZEROSHOT_BF16_KERNEL=fma|dpbf16 overrides the probe.
// Call only when cpu_has_avx512_bf16().
bool bf16_by_fma();
// Tests: -1 decides as above, 0 forces vdpbf16ps, 1 the FMA path (set between forward calls, never during one).
void set_bf16_by_fma(int mode);
// 32-bit words of an A row per unit of k.
inline int a_words(Precision p) { return p == Precision::BF16 && bf16_by_fma() ? 2 : 1; }

// Converts rows [r0, r1) of x (row stride ldx, k values) into A rows (BF16 / Int8; F32 only with `norm`: then the
// rows are normalized f32). a_scale / a_zp: Int8 only. `norm`: null for none; row_buf: k floats when norm is set.
void convert_a(Precision p, const float* x, int k, long ldx, int r0, int r1, uint32_t* a, long lda, float* a_scale,
               int32_t* a_zp, const RowNorm* norm, float* row_buf);
// Computes output panels [p0, p1) for row blocks [rb0, rb1).
void gemm(const GemmCall& g, int p0, int p1, int rb0, int rb1);
// Attention of one sequence and head: out_i = softmax_j(scale q_i . k_j, j <= i when causal) v, rows of q/k/v at
// stride ld (hd values each), of out at stride ldo. work: attention_work_floats(len, hd) floats.
size_t attention_work_floats(int len, int hd);
void attention_head(const float* q, const float* k, const float* v, long ld, int len, int hd, float scale, bool causal,
                    float* out, long ldo, float* work);
// nn/attention_int8.h's arithmetic of one sequence and head (the same bytes as nn::attention_head_int8) with
// vpdpbusd. work: attention_int8_work_bytes(len, hd) bytes, 4-byte aligned. Call only when cpu_has_avx512_vnni().
void attention_head_int8(const float* q, const float* k, const float* v, long ld, int len, int hd, float scale,
                         bool causal, float* out, long ldo, unsigned char* work);
// nn::layer_norm's arithmetic (two passes, double sums), vectorized; y may equal x.
void layer_norm(const float* x, long rows, int dim, const float* gamma, const float* beta, float eps, float* y);
// x[i] = act(x[i]) for n values (vectorized exp / erfc; a few ulp from the scalar functions).
void activate(Act act, float* x, long n);  // act: an epilogue_act

}  // namespace avx512

}  // namespace zeroshot::nn::kern
