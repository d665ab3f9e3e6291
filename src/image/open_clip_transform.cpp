// open_clip's inference transform over Pillow-mode images (see open_clip_transform.h).
#include "image/open_clip_transform.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "zeroshot/error.h"

namespace zeroshot::image {

namespace {

[[noreturn]] void fail(const std::string& problem) { throw Error("open_clip transform", problem); }

// Python's round(x) for a double (half to even), as an int; the caller checks the range.
double py_round(double x) { return std::nearbyint(x); }  // the default rounding mode is to-nearest-even

// Size after the resize step and the filter it uses.
struct ResizePlan {
  int height, width, resample;
};

ResizePlan plan_resize(int h, int w, const OpenClipTransformConfig& cfg) {
  const int filter = cfg.interpolation == "bilinear" ? 2 : 3;
  const int th = cfg.height, tw = cfg.width;
  double nh, nw;
  int resample = filter;
  if (cfg.resize_mode == "squash") {
    nh = th, nw = tw;
  } else if (cfg.resize_mode == "shortest" && th == tw) {
    // torchvision _compute_resized_output_size: int(requested * long / short), the product in exact integers.
    const bool w_short = w <= h;
    const double shrt = w_short ? w : h, lng = w_short ? h : w;
    const double new_long =
        std::trunc(static_cast<double>(static_cast<int64_t>(th) * static_cast<int64_t>(lng)) / shrt);
    nh = w_short ? new_long : th;
    nw = w_short ? th : new_long;
  } else {
    // open_clip ResizeKeepRatio: ratio = max(rh, rw) * longest + min(rh, rw) * (1 - longest).
    const double longest = cfg.resize_mode == "longest" ? 1.0 : 0.0;
    const double ratio_h = static_cast<double>(h) / th, ratio_w = static_cast<double>(w) / tw;
    const double ratio = std::max(ratio_h, ratio_w) * longest + std::min(ratio_h, ratio_w) * (1.0 - longest);
    nh = py_round(h * 1.0 / ratio);
    nw = py_round(w * 1.0 / ratio);
    if (cfg.resize_mode == "shortest" && cfg.nonsquare_shortest_always_bicubic) resample = 3;
  }
  if (!(nh >= 1 && nw >= 1))
    fail("image of " + std::to_string(w) + "x" + std::to_string(h) +
         " would be resized to 0 pixels (height and width must be > 0)");
  if (!(nh < (1 << 30) && nw < (1 << 30)) || nh * nw > 4e9)
    fail("image of " + std::to_string(w) + "x" + std::to_string(h) + " has too extreme an aspect ratio to resize");
  return {static_cast<int>(nh), static_cast<int>(nw), resample};
}

// torchvision center_crop / open_clip center_crop_or_pad along one axis: the offset of the crop in the resized
// image's coordinates (negative when padded).
int crop_offset(int size, int crop) {
  int pad_before = 0, padded = size;
  if (crop > size) {
    pad_before = (crop - size) / 2;
    padded = size + pad_before + (crop - size + 1) / 2;
  }
  // After padding the image may still be larger on this axis (the other axis needed the padding).
  const int top = padded == crop ? 0 : static_cast<int>(py_round((padded - crop) / 2.0));
  return top - pad_before;
}

// The fill colour, given per band in the image's mode as torchvision's _parse_fill does, converted to RGB.
void fill_rgb(const PilImage& img, int fill, uint8_t rgb[3]) {
  PilImage px;
  px.width = px.height = 1;
  px.mode = img.mode;
  px.palette = img.palette;
  if (img.mode == PilMode::I) {
    const int32_t v = fill;
    px.pixels.resize(4);
    std::memcpy(px.pixels.data(), &v, 4);
  } else {
    px.pixels.assign(bytes_per_pixel(img.mode), static_cast<uint8_t>(fill));
  }
  const RgbImage c = to_rgb(px);
  std::memcpy(rgb, c.pixels.data(), 3);
}

}  // namespace

void OpenClipTransformConfig::check() const {
  if (height < 1 || width < 1 || height > 65536 || width > 65536)
    fail("image_size " + std::to_string(height) + "x" + std::to_string(width) + " out of range 1..65536");
  if (interpolation == "random") fail("interpolation \"random\" is for training transforms only");
  if (interpolation != "bicubic" && interpolation != "bilinear")
    fail("interpolation \"" + interpolation + "\" is not supported (bicubic, bilinear)");
  if (resize_mode != "shortest" && resize_mode != "longest" && resize_mode != "squash")
    fail("resize_mode \"" + resize_mode + "\" is not supported (shortest, longest, squash)");
  if (fill_color < 0 || fill_color > 255) fail("fill_color " + std::to_string(fill_color) + " out of range 0..255");
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(mean[c]) || !std::isfinite(std[c]) || std[c] == 0.0f)
      fail("mean / std must be finite and std non-zero");
  }
}

void open_clip_transform(const PilImage& img, const OpenClipTransformConfig& cfg, float* out) {
  cfg.check();
  if (img.width <= 0 || img.height <= 0 ||
      img.pixels.size() != static_cast<size_t>(img.width) * img.height * bytes_per_pixel(img.mode))
    fail("empty or malformed image");
  const ResizePlan r = plan_resize(img.height, img.width, cfg);
  const int oh = cfg.height, ow = cfg.width;
  // Squash resizes straight to the output size; the other modes crop (and maybe pad) the resized image.
  const int top = cfg.resize_mode == "squash" ? 0 : crop_offset(r.height, oh);
  const int left = cfg.resize_mode == "squash" ? 0 : crop_offset(r.width, ow);
  const int fill = cfg.resize_mode == "longest" ? cfg.fill_color : 0;  // torchvision's CenterCrop pads with 0

  // The part of the resized image inside the crop, resized in the image's own mode, then converted to RGB.
  const int y0 = std::max(top, 0), y1 = std::min(top + oh, r.height);
  const int x0 = std::max(left, 0), x1 = std::min(left + ow, r.width);
  RgbImage window;
  try {
    if (y1 > y0 && x1 > x0)
      window = to_rgb(resize_window(img, r.width, r.height, r.resample, x0, y0, x1 - x0, y1 - y0));
  } catch (const std::bad_alloc&) {
    fail("out of memory while resizing");
  }
  uint8_t pad[3];
  fill_rgb(img, fill, pad);

  // ToTensor: float(v) / 255 in float32; Normalize: (x - mean) / std in float32. One table per channel.
  float lut[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) lut[c][v] = (static_cast<float>(v) / 255.0f - cfg.mean[c]) / cfg.std[c];
  }
  const size_t plane = static_cast<size_t>(oh) * ow;
  for (int y = 0; y < oh; ++y) {
    const int sy = y + top;
    for (int x = 0; x < ow; ++x) {
      const int sx = x + left;
      const uint8_t* p = pad;
      if (sy >= y0 && sy < y1 && sx >= x0 && sx < x1)
        p = &window.pixels[(static_cast<size_t>(sy - y0) * window.width + (sx - x0)) * 3];
      const size_t o = static_cast<size_t>(y) * ow + x;
      out[o] = lut[0][p[0]];
      out[plane + o] = lut[1][p[1]];
      out[2 * plane + o] = lut[2][p[2]];
    }
  }
}

std::vector<float> open_clip_transform(const PilImage& img, const OpenClipTransformConfig& cfg) {
  cfg.check();
  try {
    std::vector<float> out(static_cast<size_t>(3) * cfg.height * cfg.width);
    open_clip_transform(img, cfg, out.data());
    return out;
  } catch (const std::bad_alloc&) {
    fail("out of memory");
  }
}

}  // namespace zeroshot::image
