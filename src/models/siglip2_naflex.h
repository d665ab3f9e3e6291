// SigLIP 2 NaFlex positional embeddings: the learned square grid resized to an image's patch grid.
//
// transformers' Siglip2VisionEmbeddings.resize_positional_embeddings runs
// F.interpolate(grid, size=(grid_h, grid_w), mode="bilinear", align_corners=False, antialias=True) on CPU in f32;
// this is that function: separable triangle-filter resampling whose support widens by the scale when shrinking
// (PyTorch's antialiased kernel: centre scale * (i + 0.5), weights normalized per output), computed in float,
// including PyTorch's result for a grid one patch wide: every row is the first output row.
// Thread-safe, no allocation beyond a temporary of grid_h x side x dim floats.
#pragma once

namespace zeroshot::models {

// pos: [side * side, dim] row-major (row y * side + x); out: [grid_h * grid_w, dim] in the same order.
void resize_positions(const float* pos, int side, int dim, int grid_h, int grid_w, float* out);

}  // namespace zeroshot::models
