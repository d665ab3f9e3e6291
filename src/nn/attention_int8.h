// Attention in int8 (nn::attention with AttnPrecision::Int8, nn/ops.h): what the int8 towers run, because with
// int8 linear layers f32 attention was a fifth to a third of the forward pass (docs/benchmarks.md).
//
// The arithmetic, per sequence and head (len rows of hd values; every step is defined exactly, so the AVX-512
// VNNI kernel (kernels.h) and the portable code below give the same bytes):
//   q, k rows: symmetric int8 per row: m = max |x| over the row, s = m / 127, x8 = nearest-even(clamp(x * (127 / m),
//     -127, 127)) (m = 0 or not finite: s = 0, x8 from a factor 0);
//   v: the same per column (channel) over the sequence's rows;
//   scores: s_ij = float(sum_d q8_id k8_jd) * (s_qi * scale) * s_kj (exact int32 sums, f32 products left to right);
//   softmax: e_ij = exp_softmax(s_ij - max_j s_ij) in [0, 1] (the max is exactly 1), quantized to
//     p_ij = nearest-even(e_ij * 255), a u8 (0 past the valid keys); no normalization before the product;
//   out_id = float(sum_j p_ij v8_jd) * (1 / float(sum_j p_ij)) * s_vd.
// Dividing by the sum of the quantized weights (not of e) keeps out a convex combination of the quantized v rows.
#pragma once

#include <cstddef>

namespace zeroshot::nn {

// The softmax's e^x: x clamped to [-104, 88], t = x * log2(e), n = nearest-even(t), f = t - n (exact), 2^f by
// its degree-5 Taylor polynomial in f (Horner, fused multiply-adds; 3.2e-6 relative, far below the u8 step the
// result is rounded to), times 2^n exactly. The kernel computes the same operations in the same order.
float exp_softmax(float x);
constexpr float kExp2C1 = 0.693147180559945309f;  // ln2^k / k!
constexpr float kExp2C2 = 0.240226506959100712f;
constexpr float kExp2C3 = 0.0555041086648215800f;
constexpr float kExp2C4 = 0.00961812910762847717f;
constexpr float kExp2C5 = 0.00133335581464284434f;

// Bytes of work space one head of attention_head_int8 (either implementation) needs.
size_t attention_int8_work_bytes(int len, int hd);

// The portable implementation of one sequence and head: q, k, v rows at stride ld (hd values), out rows at stride
// ldo; causal: row i sees keys j <= i. work: attention_int8_work_bytes(len, hd) bytes, 4-byte aligned.
void attention_head_int8(const float* q, const float* k, const float* v, long ld, int len, int hd, float scale,
                         bool causal, float* out, long ldo, unsigned char* work);

}  // namespace zeroshot::nn
