// open_clip's inference transform over Pillow-mode images (see open_clip_transform.h).
#include "image/open_clip_transform.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

#include "image/decode_internal.h"
#include "image/resample.h"

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

namespace {

// Where the crop falls in the resized image of a displayed width x height image.
struct Layout {
  ResizePlan r;
  int top, left;  // of the crop in the resized image (negative: padding)
  int x0, y0;     // the part of the resized image inside the crop
  int ww, wh;     // (0 when the crop holds only padding)
};

Layout layout(int height, int width, const OpenClipTransformConfig& cfg) {
  const ResizePlan r = plan_resize(height, width, cfg);
  // Squash resizes straight to the output size; the other modes crop (and maybe pad) the resized image.
  const int top = cfg.resize_mode == "squash" ? 0 : crop_offset(r.height, cfg.height);
  const int left = cfg.resize_mode == "squash" ? 0 : crop_offset(r.width, cfg.width);
  const int y0 = std::max(top, 0), y1 = std::min(top + cfg.height, r.height);
  const int x0 = std::max(left, 0), x1 = std::min(left + cfg.width, r.width);
  return {r, top, left, x0, y0, std::max(x1 - x0, 0), std::max(y1 - y0, 0)};
}

// ToTensor + Normalize of the crop, from the resampled window (ww x wh RGB) and the padding colour.
void write_pixels(const Layout& l, const uint8_t* window, const uint8_t pad[3], const OpenClipTransformConfig& cfg,
                  float* out) {
  // ToTensor: float(v) / 255 in float32; Normalize: (x - mean) / std in float32. One table per channel.
  float lut[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) lut[c][v] = (static_cast<float>(v) / 255.0f - cfg.mean[c]) / cfg.std[c];
  }
  const int oh = cfg.height, ow = cfg.width;
  const int y1 = l.y0 + l.wh, x1 = l.x0 + l.ww;
  const size_t plane = static_cast<size_t>(oh) * ow;
  for (int y = 0; y < oh; ++y) {
    const int sy = y + l.top;
    for (int x = 0; x < ow; ++x) {
      const int sx = x + l.left;
      const uint8_t* p = pad;
      if (sy >= l.y0 && sy < y1 && sx >= l.x0 && sx < x1)
        p = &window[(static_cast<size_t>(sy - l.y0) * l.ww + (sx - l.x0)) * 3];
      const size_t o = static_cast<size_t>(y) * ow + x;
      out[o] = lut[0][p[0]];
      out[plane + o] = lut[1][p[1]];
      out[2 * plane + o] = lut[2][p[2]];
    }
  }
}

// The fill colour in RGB for an image of `mode` (no palette: a JPEG's modes).
void fill_rgb(PilMode mode, int fill, uint8_t rgb[3]) {
  PilImage img;
  img.mode = mode;
  fill_rgb(img, fill, rgb);
}

// The streamed JPEG path of open_clip_transform_encoded; false when it does not apply (then nothing was written and
// the full decode runs, reporting any error in its own order).
bool transform_streamed(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt,
                        const OpenClipTransformConfig& cfg, float* out) {
  if (size < 3 || std::memcmp(data, "\xFF\xD8\xFF", 3) != 0) return false;
  Layout l{};
  std::unique_ptr<detail::RowStreamResampler> rs;
  PilMode mode = PilMode::RGB;
  detail::JpegRowSink sink;
  sink.start = [&](int w, int h, PilMode m, int orientation) {
    // Pillow resizes in the image's own mode: L and CMYK band by band like RGB (8-bit, independent bands).
    if (m != PilMode::L && m != PilMode::RGB && m != PilMode::CMYK) return false;
    const bool transposed = orientation >= 5 && orientation <= 8;
    const int dw = transposed ? h : w, dh = transposed ? w : h;  // the displayed size
    try {
      l = layout(dh, dw, cfg);
    } catch (const Error&) {
      return false;  // the full path reports it, after any decode error, as before
    }
    // Same size: Image.resize copies (resize_window too); nothing to gain from streaming such a small image.
    if (l.ww <= 0 || l.wh <= 0 || (l.r.width == dw && l.r.height == dh)) return false;
    mode = m;
    rs = std::make_unique<detail::RowStreamResampler>(w, h, bytes_per_pixel(m), orientation, l.r.width, l.r.height,
                                                      l.r.resample, l.x0, l.y0, l.ww, l.wh);
    return true;
  };
  sink.rows = [&](const uint8_t* rows, size_t stride, int y, int n) { rs->push(rows, stride, y, n); };
  if (!detail::decode_jpeg_rows(data, size, name, opt, sink)) return false;
  PilImage window;
  window.width = l.ww;
  window.height = l.wh;
  window.mode = mode;
  window.pixels.resize(static_cast<size_t>(l.wh) * l.ww * bytes_per_pixel(mode));
  rs->finish(window.pixels.data());
  const RgbImage rgb = to_rgb(std::move(window));  // convert("RGB") after the crop, as the transform does
  uint8_t pad[3];
  fill_rgb(mode, cfg.resize_mode == "longest" ? cfg.fill_color : 0, pad);
  write_pixels(l, rgb.pixels.data(), pad, cfg, out);
  return true;
}

}  // namespace

void open_clip_transform(const PilImage& img, const OpenClipTransformConfig& cfg, float* out) {
  cfg.check();
  if (img.width <= 0 || img.height <= 0 ||
      img.pixels.size() != static_cast<size_t>(img.width) * img.height * bytes_per_pixel(img.mode))
    fail("empty or malformed image");
  const Layout l = layout(img.height, img.width, cfg);
  const int fill = cfg.resize_mode == "longest" ? cfg.fill_color : 0;  // torchvision's CenterCrop pads with 0

  // The part of the resized image inside the crop, resized in the image's own mode, then converted to RGB.
  RgbImage window;
  try {
    if (l.wh > 0 && l.ww > 0)
      window = to_rgb(resize_window(img, l.r.width, l.r.height, l.r.resample, l.x0, l.y0, l.ww, l.wh));
  } catch (const std::bad_alloc&) {
    fail("out of memory while resizing");
  }
  uint8_t pad[3];
  fill_rgb(img, fill, pad);
  write_pixels(l, window.pixels.data(), pad, cfg, out);
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

std::vector<float> open_clip_transform_encoded(const uint8_t* data, size_t size, const std::string& name,
                                               const DecodeOptions& opt, const OpenClipTransformConfig& cfg) {
  bool valid = true;
  try {
    cfg.check();
  } catch (const Error&) {
    valid = false;  // the full path reports it after decoding, as before
  }
  if (valid) {
    try {
      std::vector<float> out(static_cast<size_t>(3) * cfg.height * cfg.width);
      if (transform_streamed(data, size, name, opt, cfg, out.data())) return out;
    } catch (const std::bad_alloc&) {
      throw Error(name, "out of memory while decoding");
    }
  }
  return open_clip_transform(decode_native_memory(data, size, name, opt), cfg);
}

std::vector<float> open_clip_transform_file(const std::string& path, const DecodeOptions& opt,
                                            const OpenClipTransformConfig& cfg) {
  const std::vector<uint8_t> bytes = detail::read_file(path);
  return open_clip_transform_encoded(bytes.data(), bytes.size(), path, opt, cfg);
}

}  // namespace zeroshot::image
