// Heat-map overlays of explanation maps, and PNG encoding (libpng's simplified write API).
//
// A map is a square grid of values over the square the model saw: CLIP's preprocessing resizes the shortest edge
// to the input size and crops the center, so the grid covers the centered min(width, height) square of the image
// (center_square). The overlay upsamples the grid bilinearly to that square's pixels (half-pixel centers, as
// torch's F.interpolate(mode="bilinear", align_corners=False), which CLIP Surgery's get_similarity_map uses),
// colours it with the jet colour map (lo: blue, hi: red; the demo's cv2.COLORMAP_JET), blends it over the image,
// and dims the parts of the image the model never saw. Throws zeroshot::Error for a bad grid or an encoder failure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "image/image.h"

namespace zeroshot::image {

// The centered square of side min(width, height), in image pixels.
struct Square {
  double x0 = 0, y0 = 0, side = 0;
};
Square center_square(int width, int height);

// grid: g x g values, row-major. Values are mapped to [0, 1] by (v - lo) / (hi - lo) (hi == lo: all 0.5).
// alpha: the colour's weight in the blend.
RgbImage heatmap_overlay(const RgbImage& img, const float* grid, int g, float lo, float hi, float alpha = 0.5f);

// 8-bit RGB PNG bytes; write_png writes them to `path` (error names the path).
std::vector<uint8_t> encode_png(const RgbImage& img);
void write_png(const RgbImage& img, const std::string& path);

}  // namespace zeroshot::image
