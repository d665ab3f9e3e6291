// Pillow's convert("RGB") (libImaging/Convert.c) and Image.resize per mode (Image.py, Resample.c, Geometry.c).
#include "image/pil_image.h"

#include <algorithm>
#include <cstring>

#include "image/resample.h"
#include "zeroshot/error.h"

namespace zeroshot::image {

const char* mode_name(PilMode mode) {
  switch (mode) {
    case PilMode::k1: return "1";
    case PilMode::L: return "L";
    case PilMode::LA: return "LA";
    case PilMode::I: return "I";
    case PilMode::P: return "P";
    case PilMode::RGB: return "RGB";
    case PilMode::RGBA: return "RGBA";
    case PilMode::CMYK: return "CMYK";
  }
  return "?";
}

int bytes_per_pixel(PilMode mode) {
  switch (mode) {
    case PilMode::k1:
    case PilMode::L:
    case PilMode::P: return 1;
    case PilMode::LA: return 2;
    case PilMode::RGB: return 3;
    case PilMode::I:
    case PilMode::RGBA:
    case PilMode::CMYK: return 4;
  }
  return 1;
}

namespace {

bool well_formed(const PilImage& img) {
  return img.width > 0 && img.height > 0 &&
         img.pixels.size() == static_cast<size_t>(img.width) * img.height * bytes_per_pixel(img.mode) &&
         (img.mode != PilMode::P || img.palette.size() == 768);
}

// Pillow's MULDIV255: a * b / 255 rounded, in integers.
inline unsigned muldiv255(unsigned a, unsigned b) {
  const unsigned tmp = a * b + 128;
  return ((tmp >> 8) + tmp) >> 8;
}

inline uint8_t clip8(int v) { return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v)); }

}  // namespace

RgbImage to_rgb(const PilImage& img) {
  if (!well_formed(img)) throw Error("to_rgb", "empty or malformed image");
  RgbImage out;
  out.width = img.width;
  out.height = img.height;
  const size_t n = static_cast<size_t>(img.width) * img.height;
  out.pixels.resize(n * 3);
  const uint8_t* in = img.pixels.data();
  uint8_t* o = out.pixels.data();
  switch (img.mode) {
    case PilMode::RGB: std::memcpy(o, in, n * 3); break;
    case PilMode::k1:  // bit2rgb: any non-zero byte is white
      for (size_t i = 0; i < n; ++i, o += 3) o[0] = o[1] = o[2] = in[i] ? 255 : 0;
      break;
    case PilMode::L:
      for (size_t i = 0; i < n; ++i, o += 3) o[0] = o[1] = o[2] = in[i];
      break;
    case PilMode::LA:  // la2rgb: alpha dropped
      for (size_t i = 0; i < n; ++i, o += 3) o[0] = o[1] = o[2] = in[2 * i];
      break;
    case PilMode::I:  // i2rgb: clipped to 0..255
      for (size_t i = 0; i < n; ++i, o += 3) {
        int32_t v;
        std::memcpy(&v, in + 4 * i, 4);
        o[0] = o[1] = o[2] = clip8(v);
      }
      break;
    case PilMode::P:
      for (size_t i = 0; i < n; ++i, o += 3) std::memcpy(o, &img.palette[3 * static_cast<size_t>(in[i])], 3);
      break;
    case PilMode::RGBA:
      for (size_t i = 0; i < n; ++i, o += 3, in += 4) o[0] = in[0], o[1] = in[1], o[2] = in[2];
      break;
    case PilMode::CMYK:  // cmyk2rgb: r = 255 - (c + k - c * k / 255), clipped
      for (size_t i = 0; i < n; ++i, o += 3, in += 4) {
        const int nk = 255 - in[3];
        o[0] = clip8(nk - static_cast<int>(muldiv255(in[0], nk)));
        o[1] = clip8(nk - static_cast<int>(muldiv255(in[1], nk)));
        o[2] = clip8(nk - static_cast<int>(muldiv255(in[2], nk)));
      }
      break;
  }
  return out;
}

RgbImage to_rgb(PilImage&& img) {
  // RGB is moved; RGBA and CMYK shrink to RGB in place (pixel i is written at 3i, at or before where it was read,
  // 4i), which spares a second buffer on the decode path; other modes grow and take the copying path.
  if (img.mode != PilMode::RGB && img.mode != PilMode::RGBA && img.mode != PilMode::CMYK)
    return to_rgb(static_cast<const PilImage&>(img));
  if (!well_formed(img)) throw Error("to_rgb", "empty or malformed image");
  const size_t n = static_cast<size_t>(img.width) * img.height;
  uint8_t* p = img.pixels.data();
  if (img.mode == PilMode::RGBA) {
    for (size_t i = 0; i < n; ++i) p[3 * i] = p[4 * i], p[3 * i + 1] = p[4 * i + 1], p[3 * i + 2] = p[4 * i + 2];
  } else if (img.mode == PilMode::CMYK) {
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* in = p + 4 * i;
      const int nk = 255 - in[3];
      const uint8_t r = clip8(nk - static_cast<int>(muldiv255(in[0], nk)));
      const uint8_t g = clip8(nk - static_cast<int>(muldiv255(in[1], nk)));
      const uint8_t b = clip8(nk - static_cast<int>(muldiv255(in[2], nk)));
      p[3 * i] = r, p[3 * i + 1] = g, p[3 * i + 2] = b;
    }
  }
  img.pixels.resize(n * 3);
  RgbImage out;
  out.width = img.width;
  out.height = img.height;
  out.pixels = std::move(img.pixels);
  return out;
}

namespace {

// Pillow's nearest-neighbour resize (_imaging.c _resize -> ImagingScaleAffine): source coordinate of output
// position i is COORD(a * 0.5 + i * a) with a = in / out, accumulated by repeated addition as Pillow does (so the
// walk starts at 0 even for a window); -1 (outside) leaves the pixel zero. Returns positions [o0, o1).
std::vector<int> nearest_table(int in_size, int out_size, int o0, int o1) {
  const double a = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  std::vector<int> t(o1 - o0);
  double v = 0.0 + a * 0.5;
  for (int i = 0; i < o1; ++i) {
    if (i >= o0) {
      const int c = v < 0.0 ? -1 : static_cast<int>(v);
      t[i - o0] = (c >= 0 && c < in_size) ? c : -1;
    }
    v += a;
  }
  return t;
}

void nearest_window(const PilImage& img, int width, int height, int x0, int y0, int ww, int wh, uint8_t* out) {
  const std::vector<int> xt = nearest_table(img.width, width, x0, x0 + ww);
  const std::vector<int> yt = nearest_table(img.height, height, y0, y0 + wh);
  const size_t bpp = bytes_per_pixel(img.mode);
  for (int y = 0; y < wh; ++y) {
    uint8_t* o = out + static_cast<size_t>(y) * ww * bpp;
    const int sy = yt[y];
    for (int x = 0; x < ww; ++x, o += bpp) {
      const int sx = xt[x];
      if (sy < 0 || sx < 0) {
        std::memset(o, 0, bpp);
      } else {
        std::memcpy(o, &img.pixels[(static_cast<size_t>(sy) * img.width + sx) * bpp], bpp);
      }
    }
  }
}

// RGBA -> RGBa / LA -> La (rgbA2rgba, lA2la): color bands times alpha / 255, rounded.
std::vector<uint8_t> premultiply(const PilImage& img) {
  const int bpp = bytes_per_pixel(img.mode);
  std::vector<uint8_t> p(img.pixels);
  for (size_t i = 0; i < p.size(); i += bpp) {
    const unsigned a = p[i + bpp - 1];
    for (int b = 0; b < bpp - 1; ++b) p[i + b] = static_cast<uint8_t>(muldiv255(p[i + b], a));
  }
  return p;
}

// RGBa -> RGBA / La -> LA (rgba2rgbA, la2lA): color * 255 / alpha truncated and clipped; alpha 0 or 255 unchanged.
void unpremultiply(uint8_t* p, size_t n, int bpp) {
  for (size_t i = 0; i < n * bpp; i += bpp) {
    const int a = p[i + bpp - 1];
    if (a == 0 || a == 255) continue;
    for (int b = 0; b < bpp - 1; ++b) p[i + b] = clip8((255 * p[i + b]) / a);
  }
}

}  // namespace

PilImage resize_window(const PilImage& img, int width, int height, int resample, int x0, int y0, int ww, int wh) {
  if (!well_formed(img)) throw Error("resize", "empty or malformed image");
  if (resample != 0 && !detail::valid_filter(resample))
    throw Error("resize", "unsupported resampling filter " + std::to_string(resample));
  if (width <= 0 || height <= 0) throw Error("resize", "height and width must be > 0");
  if (ww <= 0 || wh <= 0 || x0 < 0 || y0 < 0 || x0 > width - ww || y0 > height - wh)
    throw Error("resize", "window outside the resized image");
  PilImage out;
  out.width = ww;
  out.height = wh;
  out.mode = img.mode;
  out.palette = img.palette;
  const int bpp = bytes_per_pixel(img.mode);
  out.pixels.resize(static_cast<size_t>(ww) * wh * bpp);
  uint8_t* o = out.pixels.data();

  if (width == img.width && height == img.height) {  // Image.resize returns a copy, whatever the mode and filter
    for (int y = 0; y < wh; ++y)
      std::memcpy(o + static_cast<size_t>(y) * ww * bpp,
                  &img.pixels[(static_cast<size_t>(y0 + y) * img.width + x0) * bpp], static_cast<size_t>(ww) * bpp);
    return out;
  }
  if (resample == 0 || img.mode == PilMode::P || img.mode == PilMode::k1) {
    nearest_window(img, width, height, x0, y0, ww, wh, o);
    return out;
  }
  switch (img.mode) {
    case PilMode::I: {  // int32 samples; copied into int32 storage rather than aliased
      std::vector<int32_t> src(static_cast<size_t>(img.width) * img.height), dst(static_cast<size_t>(ww) * wh);
      std::memcpy(src.data(), img.pixels.data(), img.pixels.size());
      detail::resample_window_i32(src.data(), img.width, img.height, width, height, resample, x0, y0, ww, wh,
                                  dst.data());
      std::memcpy(o, dst.data(), out.pixels.size());
      break;
    }
    case PilMode::LA:
    case PilMode::RGBA: {
      const std::vector<uint8_t> pre = premultiply(img);
      detail::resample_window_u8(pre.data(), img.width, img.height, bpp, width, height, resample, x0, y0, ww, wh, o);
      unpremultiply(o, static_cast<size_t>(ww) * wh, bpp);
      break;
    }
    default:
      detail::resample_window_u8(img.pixels.data(), img.width, img.height, bpp, width, height, resample, x0, y0, ww, wh,
                                 o);
      break;
  }
  return out;
}

PilImage resize(const PilImage& img, int width, int height, int resample) {
  if (width <= 0 || height <= 0) throw Error("resize", "height and width must be > 0");
  return resize_window(img, width, height, resample, 0, 0, width, height);
}

}  // namespace zeroshot::image
