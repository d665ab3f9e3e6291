// Transformer kernels over row-major f32 buffers (PyTorch semantics, f32 accumulation unless noted).
// Each takes an optional ThreadPool (null: run in the calling thread); results do not depend on it.
#pragma once

#include <vector>

#include "nn/precision.h"
#include "nn/thread_pool.h"

namespace zeroshot::nn {

enum class Act {
  QuickGelu,  // x * sigmoid(1.702 x)                                  (HF "quick_gelu")
  Gelu,       // 0.5 x (1 + erf(x / sqrt 2))                           (HF "gelu", torch exact GELU)
  GeluTanh,   // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))       (HF "gelu_new", "gelu_pytorch_tanh")
  Relu,       // max(x, 0)                                              (HF "relu")
  Silu,       // x * sigmoid(x)                                         (HF "silu", "swish")
};
// The one activation enum of every layer: model configs map their hidden_act names to it. The first three fuse
// into a PackedLinear's GEMM epilogue; Relu and Silu run as a pass over the product (nn/linear.h).

float quick_gelu(float x);
float gelu_erf(float x);
float gelu_tanh(float x);

// y[m x n] = x[m x k] * w^T + bias: torch.nn.Linear with w in its [out = n, in = k] layout (no transpose copy).
// bias may be null. y must not overlap x or w. Parallel over the columns of y.
void linear(const float* x, int m, int k, const float* w, const float* bias, int n, float* y, ThreadPool* pool);

// torch.nn.LayerNorm over the last `dim` values of each of `rows` rows: two-pass mean / biased variance with
// double accumulators (no cancellation when |mean| >> std). gamma/beta may be null (1 / 0). y may equal x.
void layer_norm(const float* x, long rows, int dim, const float* gamma, const float* beta, float eps, float* y,
                ThreadPool* pool);

// In-place softmax of the first `valid` of `cols` values of each row (max subtracted first); the remaining
// cols - valid values are set to 0 (what an additive -inf mask gives).
void softmax_row(float* x, int valid, int cols);

// In-place activation of n values.
void activate(Act act, float* x, long n, ThreadPool* pool);

// y += x (n values).
void add_inplace(float* y, const float* x, long n, ThreadPool* pool);

// Multi-head scaled dot-product attention core over sequences stored back to back: sequence s has lens[s] rows,
// starting after the rows of sequences 0..s-1. q, k, v, out: [sum(lens), heads * head_dim] row-major; head h of a
// row is columns [h * head_dim, (h + 1) * head_dim) (torch's view(batch, seq, heads, head_dim)).
// Per sequence and head: out = softmax(q k^T * scale, causal: key j > query i masked) v. Sequences never see
// each other, so any mix of lengths runs together without padding.
void attention(const float* q, const float* k, const float* v, const std::vector<int>& lens, int heads, int head_dim,
               float scale, bool causal, float* out, ThreadPool* pool);

// The arithmetic of attention's two products. F32: f32 products and sums (the contract above, exact up to f32
// summation order). Int8: q and k int8 per row, the softmax in f32, its weights as u8 and v int8 per channel, exact
// int32 products (nn/attention_int8.h; VNNI vpdpbusd where the CPU has it, the same bytes elsewhere).
enum class AttnPrecision { F32, Int8 };

// The attention that runs beside linear layers at `p`: Int8 for Int8 (with int8 products three times faster than
// f32 ones, f32 attention was a fifth to a third of the forward pass), F32 otherwise. ZEROSHOT_INT8_ATTENTION=0
// in the environment (read once) keeps int8 models' attention in f32, as before. Model fingerprints name it.
AttnPrecision attention_precision(Precision p);

// The same with q, k, v rows at stride `ld` (e.g. views into one fused [rows, 3 * dim] q|k|v buffer) and out
// rows at stride `ld_out`, in precision `ap`.
void attention(const float* q, const float* k, const float* v, long ld, const std::vector<int>& lens, int heads,
               int head_dim, float scale, bool causal, float* out, long ld_out, ThreadPool* pool,
               AttnPrecision ap = AttnPrecision::F32);

// Weights of one self-attention block in torch.nn.Linear layout ([dim, dim] weights, [dim] biases).
struct AttentionWeights {
  const float* q_w = nullptr;
  const float* q_b = nullptr;
  const float* k_w = nullptr;
  const float* k_b = nullptr;
  const float* v_w = nullptr;
  const float* v_b = nullptr;
  const float* out_w = nullptr;
  const float* out_b = nullptr;
};

// HF CLIPAttention: y = out_proj(attention(q_proj(x), k_proj(x), v_proj(x))) with scale head_dim^-0.5.
// x, y: [sum(lens), dim] (sequences back to back, see attention()); y must not overlap x.
// workspace: 4 * sum(lens) * dim floats, or null to allocate.
void self_attention(const float* x, const std::vector<int>& lens, int dim, int heads, const AttentionWeights& w,
                    bool causal, float* y, ThreadPool* pool, float* workspace = nullptr);

}  // namespace zeroshot::nn
