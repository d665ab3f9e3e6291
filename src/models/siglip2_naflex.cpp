// PyTorch's antialiased bilinear interpolation (aten's upsample_bilinear2d_aa on CPU) for one 2-D grid of vectors.
// Written here rather than borrowed: no library we depend on computes this filter with torch's weights.
#include "models/siglip2_naflex.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace zeroshot::models {

namespace {

// Taps of one output index along one axis: the first input index and normalized weights.
struct Taps {
  int64_t first = 0;
  std::vector<float> w;
};

std::vector<Taps> axis_taps(int in, int out) {
  // align_corners=False with an explicit size: scale = in / out, in float (torch's opmath for f32).
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const float support = scale >= 1.0f ? 1.0f * scale : 1.0f;  // bilinear: interp_size 2, half-width 1
  const float inv = scale >= 1.0f ? 1.0f / scale : 1.0f;
  std::vector<Taps> taps(static_cast<size_t>(out));
  for (int i = 0; i < out; ++i) {
    const float center = scale * (static_cast<float>(i) + 0.5f);
    const auto lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5f), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5f), in);
    Taps& t = taps[static_cast<size_t>(i)];
    t.first = lo;
    float total = 0.0f;
    for (int64_t j = lo; j < hi; ++j) {
      const float x = std::fabs((static_cast<float>(j) - center + 0.5f) * inv);
      const float w = x < 1.0f ? 1.0f - x : 0.0f;
      t.w.push_back(w);
      total += w;
    }
    if (total != 0.0f)
      for (float& w : t.w) w /= total;
  }
  return taps;
}

}  // namespace

void resize_positions(const float* pos, int side, int dim, int grid_h, int grid_w, float* out) {
  const std::vector<Taps> tx = axis_taps(side, grid_w), ty = axis_taps(side, grid_h);
  const size_t d = static_cast<size_t>(dim);
  // Width first, into [side, grid_w, dim]; then height.
  std::vector<float> mid(static_cast<size_t>(side) * grid_w * d);
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < grid_w; ++x) {
      const Taps& t = tx[static_cast<size_t>(x)];
      float* dst = mid.data() + (static_cast<size_t>(y) * grid_w + x) * d;
      for (size_t c = 0; c < d; ++c) {
        float acc = 0.0f;
        for (size_t k = 0; k < t.w.size(); ++k)
          acc += pos[(static_cast<size_t>(y) * side + static_cast<size_t>(t.first) + k) * d + c] * t.w[k];
        dst[c] = acc;
      }
    }
  // PyTorch (2.5) computes a one-column output whose height changes as its first row repeated: its
  // antialiased kernel takes a zero-stride fast path there that reuses the first output's taps. transformers gives
  // a grid one patch wide (a very tall image) exactly these positions, so they are reproduced.
  const bool torch_one_column = grid_w == 1 && grid_h != side && side > 1;
  for (int y = 0; y < grid_h; ++y) {
    const Taps& t = ty[torch_one_column ? 0 : static_cast<size_t>(y)];
    for (int x = 0; x < grid_w; ++x) {
      float* dst = out + (static_cast<size_t>(y) * grid_w + x) * d;
      for (size_t c = 0; c < d; ++c) {
        float acc = 0.0f;
        for (size_t k = 0; k < t.w.size(); ++k)
          acc += mid[((static_cast<size_t>(t.first) + k) * grid_w + x) * d + c] * t.w[k];
        dst[c] = acc;
      }
    }
  }
}

}  // namespace zeroshot::models
