#include "image/heatmap.h"

#include <png.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "zeroshot/error.h"

namespace zeroshot::image {

namespace {

// Jet: blue -> cyan -> yellow -> red, the piecewise-linear form.
void jet(float t, float rgb[3]) {
  auto ramp = [](float v) { return std::clamp(v, 0.0f, 1.0f); };
  rgb[0] = ramp(1.5f - std::fabs(4.0f * t - 3.0f));
  rgb[1] = ramp(1.5f - std::fabs(4.0f * t - 2.0f));
  rgb[2] = ramp(1.5f - std::fabs(4.0f * t - 1.0f));
}

// Source index pair and weight of output coordinate `pos` (a pixel center, in grid cells) along one axis.
struct Tap {
  int i0, i1;
  float f;
};
Tap tap(double pos, int g) {
  const double u = std::clamp(pos - 0.5, 0.0, static_cast<double>(g - 1));
  const int i0 = static_cast<int>(u);
  return {i0, std::min(i0 + 1, g - 1), static_cast<float>(u - i0)};
}

}  // namespace

Square center_square(int width, int height) {
  const int side = std::min(width, height);
  return {(width - side) / 2.0, (height - side) / 2.0, static_cast<double>(side)};
}

RgbImage heatmap_overlay(const RgbImage& img, const float* grid, int g, float lo, float hi, float alpha) {
  if (g <= 0 || !grid) throw Error("heatmap", "empty grid");
  if (img.width <= 0 || img.height <= 0 ||
      img.pixels.size() != static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * 3)
    throw Error("heatmap", "bad image buffer");
  const Square sq = center_square(img.width, img.height);
  const float range = hi - lo;
  const float dim = 0.35f;  // brightness left outside the square the model saw
  RgbImage out = img;
  std::vector<Tap> xs(static_cast<size_t>(img.width));
  for (int x = 0; x < img.width; ++x) xs[x] = tap((x + 0.5 - sq.x0) / sq.side * g, g);
  for (int y = 0; y < img.height; ++y) {
    const bool row_in = y >= sq.y0 && y < sq.y0 + sq.side;
    const Tap ty = tap((y + 0.5 - sq.y0) / sq.side * g, g);
    const float* r0 = grid + static_cast<size_t>(ty.i0) * g;
    const float* r1 = grid + static_cast<size_t>(ty.i1) * g;
    uint8_t* px = out.pixels.data() + static_cast<size_t>(y) * img.width * 3;
    for (int x = 0; x < img.width; ++x, px += 3) {
      if (!row_in || x < sq.x0 || x >= sq.x0 + sq.side) {
        for (int c = 0; c < 3; ++c) px[c] = static_cast<uint8_t>(std::lround(px[c] * dim));
        continue;
      }
      const Tap& tx = xs[x];
      const float top = r0[tx.i0] + (r0[tx.i1] - r0[tx.i0]) * tx.f;
      const float bottom = r1[tx.i0] + (r1[tx.i1] - r1[tx.i0]) * tx.f;
      const float v = top + (bottom - top) * ty.f;
      const float t = range > 0 ? std::clamp((v - lo) / range, 0.0f, 1.0f) : 0.5f;
      float rgb[3];
      jet(t, rgb);
      for (int c = 0; c < 3; ++c)
        px[c] =
            static_cast<uint8_t>(std::lround(std::clamp((1 - alpha) * px[c] + alpha * 255.0f * rgb[c], 0.0f, 255.0f)));
    }
  }
  return out;
}

std::vector<uint8_t> encode_png(const RgbImage& img) {
  if (img.width <= 0 || img.height <= 0 ||
      img.pixels.size() != static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * 3)
    throw Error("png", "bad image buffer");
  png_image pi{};
  pi.version = PNG_IMAGE_VERSION;
  pi.width = static_cast<png_uint_32>(img.width);
  pi.height = static_cast<png_uint_32>(img.height);
  pi.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  // First call sizes the buffer, second writes it (libpng's documented two-step use of write_to_memory).
  if (!png_image_write_to_memory(&pi, nullptr, &size, 0, img.pixels.data(), 0, nullptr)) throw Error("png", pi.message);
  std::vector<uint8_t> bytes(size);
  if (!png_image_write_to_memory(&pi, bytes.data(), &size, 0, img.pixels.data(), 0, nullptr))
    throw Error("png", pi.message);
  bytes.resize(size);
  return bytes;
}

void write_png(const RgbImage& img, const std::string& path) {
  const std::vector<uint8_t> bytes = encode_png(img);
  const std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) throw Error(path, "cannot write: " + std::string(std::strerror(errno)));
  if (std::fwrite(bytes.data(), 1, bytes.size(), f.get()) != bytes.size()) throw Error(path, "write failed");
}

}  // namespace zeroshot::image
