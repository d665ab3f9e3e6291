// Kernels of the CLAP audio tower (HTSAT: BatchNorm, spectrogram resizing, conv patch embeddings, attentional
// feature fusion, Swin window attention, patch merging) and small element-wise activations.
// PyTorch semantics on row-major f32 buffers; each takes an optional ThreadPool (null: calling thread only) and
// its results do not depend on it. Matrix products go through nn::gemm / nn::linear.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/thread_pool.h"

namespace zeroshot::nn {

// ------------------------------------------------------------------------------------------ element-wise

void relu(float* x, long n, ThreadPool* pool);
void tanh_inplace(float* x, long n, ThreadPool* pool);
void sigmoid(float* x, long n, ThreadPool* pool);  // 1 / (1 + exp(-x))
void silu(float* x, long n, ThreadPool* pool);     // x * sigmoid(x)

// ------------------------------------------------------------------------------------------ normalization

// Per-channel affine of torch.nn.BatchNorm (eval mode, running statistics) folded the way PyTorch's CPU kernel
// folds it: scale = weight / sqrt(var + eps), shift = bias - mean * scale (in double, then rounded to float).
// weight/bias may be null (1 / 0).
struct BatchNormAffine {
  std::vector<float> scale, shift;
};
BatchNormAffine batch_norm_affine(const float* mean, const float* var, const float* weight, const float* bias,
                                  int channels, double eps);

// y[r][c] = x[r][c] * scale[c] + shift[c] for `rows` rows of `channels` values (channels last). y may equal x.
void batch_norm_channels_last(const float* x, long rows, const BatchNormAffine& bn, float* y, ThreadPool* pool);

// ------------------------------------------------------------------------------------------ resizing

// torch.nn.functional.interpolate(mode="bicubic", align_corners=True) along the middle axis only:
// x [planes, in_len, width] -> y [planes, out_len, width] (the other axis keeps its size, for which bicubic is
// the identity). Cubic convolution with A = -0.75 at src = dst * scale, scale = (in_len - 1) / (out_len - 1) in
// float, the four taps at floor(src) - 1 .. floor(src) + 2 clamped to [0, in_len - 1], t = src - floor(src) from
// the unrounded product (as PyTorch's FMA-compiled CPU kernel computes it). in_len, out_len >= 1.
void bicubic_resize_rows(const float* x, int planes, int in_len, int out_len, int width, float* y, ThreadPool* pool);

// HTSAT's reshape_mel2img fold: x [planes, ratio * cols, mels] (time-major) -> y [planes, ratio * mels, cols] with
// y[p][k * mels + m][j] = x[p][k * cols + j][m]: the time axis cut into `ratio` chunks stacked along the mel axis.
void fold_mel_to_image(const float* x, int planes, int ratio, int cols, int mels, float* y, ThreadPool* pool);

// ------------------------------------------------------------------------------------------ convolution

// Unrolls the non-overlapping kh x kw patches of single-channel images (Conv2d with stride == kernel, no
// padding; trailing rows/columns that do not fill a patch are dropped, as PyTorch does):
// x [images, h, w] -> y [images, h / kh, w / kw, kh * kw], patch element order (ky, kx) = the weight's
// [out, 1, kh, kw] layout, so Conv2d = nn::linear(y, weight viewed as [out, kh * kw]).
void unroll_patches(const float* x, int images, int h, int w, int kh, int kw, float* y, ThreadPool* pool);

// ------------------------------------------------------------------------------------------ Swin

// The relative position bias of one window-attention block, expanded from its table [(2 ws - 1)^2, heads]:
// out [heads, ws^2, ws^2] with out[h][i][j] = table[((yi - yj + ws - 1) * (2 ws - 1) + xi - xj + ws - 1)][h]
// for window tokens i = yi * ws + xi (Swin's relative_position_index, computed here rather than read).
std::vector<float> expand_relative_position_bias(const float* table, int window, int heads);

// Order of the tokens of a [grid, grid] map (row-major) as the windows of a (shifted) Swin block see them:
// perm[w * ws^2 + i] = source token of token i of window w, after torch.roll(x, (-shift, -shift)) and
// window_partition (windows row-major, tokens row-major within a window). grid must be a multiple of window.
std::vector<int32_t> window_permutation(int grid, int window, int shift);

// The shifted-window attention mask of a [grid, grid] map: [windows, ws^2, ws^2] with -100 where Swin's img_mask
// labels of the two (rolled, partitioned) tokens differ, else 0. Empty when shift == 0.
std::vector<float> shifted_window_mask(int grid, int window, int shift);

// dst[(b * per + i)] = src[(b * per + perm[i])] for each of `batches` maps of `per` rows of `dim` floats.
void gather_rows(const float* src, const std::vector<int32_t>& perm, int batches, int dim, float* dst,
                 ThreadPool* pool);
// dst[(b * per + perm[i])] += src[(b * per + i)]: the inverse of gather_rows, accumulating.
void scatter_add_rows(float* dst, const std::vector<int32_t>& perm, int batches, int dim, const float* src,
                      ThreadPool* pool);

// Window multi-head attention (Swin): `windows` windows of n = ws^2 tokens stored back to back; q, k, v rows
// have stride ld (head h = columns [h * head_dim, (h + 1) * head_dim)), out [windows * n, heads * head_dim].
// Per window w and head h: softmax((q k^T * scale + bias[h]) + mask[w % mask_windows]) v, with bias
// [heads, n, n] and mask [mask_windows, n, n] (null: none; several maps of the same size back to back share it).
// The softmax uses its own vectorizable exp (within 2 ulp of expf; results below e^-87 flush to 0).
void window_attention(const float* q, const float* k, const float* v, int ld, int windows, int n, int heads,
                      int head_dim, float scale, const float* bias, const float* mask, int mask_windows, float* out,
                      ThreadPool* pool);

// In place over `rows` rows of n scores: s = (s + bias) (+ mask), then softmax (the core of window_attention).
void bias_softmax_rows(float* s, int rows, int n, const float* bias, const float* mask);

// Swin patch merging gather: x [batches, grid, grid, c] -> y [batches, grid/2, grid/2, 4c], each output token the
// concatenation of x[2i][2j], x[2i+1][2j], x[2i][2j+1], x[2i+1][2j+1]. grid must be even.
void patch_merge(const float* x, int batches, int grid, int c, float* y, ThreadPool* pool);

// ------------------------------------------------------------------------------------------ fusion

// LAION's attentional feature fusion (AFF, 2D) on [rows, c] maps (channels last), per batch item:
//   w = sigmoid(local + global), out = 2 g w + 2 l (1 - w)
// given the two attention branches already computed (local [rows, c], global [c] broadcast over rows).
// out may equal g.
void aff_combine(const float* g, const float* l, const float* local_att, const float* global_att, long rows, int c,
                 float* out, ThreadPool* pool);

// Column means of x [rows, c] (AdaptiveAvgPool2d(1) in channels-last layout), accumulated in double.
void column_mean(const float* x, long rows, int c, float* out);

}  // namespace zeroshot::nn
