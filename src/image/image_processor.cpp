// CLIPImageProcessor: config loading (both preprocessor_config.json styles), Pillow-exact resampling, HF's center
// crop and the rescale/normalize arithmetic.
#include "image/image_processor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>

#include "image/decode_internal.h"
#include "image/pil_image.h"
#include "image/resample.h"
#include "io/json.h"
#include "zeroshot/error.h"

namespace zeroshot::image {

namespace {

int floor_div2(int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

// ---------------------------------------------------------------------------------------------------------------
// preprocessor_config.json

using io::Json;

int get_int(const Json& j, const std::string& key, const std::string& path) {
  if (j.is_number_integer()) return j.get<int>();
  if (j.is_number_float() && std::floor(j.get<double>()) == j.get<double>() && std::fabs(j.get<double>()) < 1e9)
    return static_cast<int>(j.get<double>());
  throw Error(path, key + ": expected an integer, got " + j.dump());
}

int get_size(const Json& j, const std::string& key, const std::string& path) {
  const int v = get_int(j, key, path);
  if (v < 1 || v > 65536) throw Error(path, key + ": size " + std::to_string(v) + " out of range 1..65536");
  return v;
}

bool get_bool(const Json& cfg, const char* key, bool fallback, const std::string& path) {
  if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
  if (!cfg[key].is_boolean()) throw Error(path, std::string(key) + ": expected true or false, got " + cfg[key].dump());
  return cfg[key].get<bool>();
}

// image_mean / image_std: a list of 3 numbers, or one number for all channels (HF accepts both).
void get_triple(const Json& cfg, const char* key, float* out, const std::string& path) {
  if (!cfg.contains(key) || cfg[key].is_null()) return;
  const Json& v = cfg[key];
  if (v.is_number()) {
    out[0] = out[1] = out[2] = static_cast<float>(v.get<double>());
    return;
  }
  if (!v.is_array() || v.size() != 3 || !v[0].is_number() || !v[1].is_number() || !v[2].is_number())
    throw Error(path, std::string(key) + ": expected 3 numbers, got " + v.dump());
  for (int c = 0; c < 3; ++c) out[c] = static_cast<float>(v[c].get<double>());
}

}  // namespace

ImageProcessorConfig ImageProcessorConfig::load(const std::string& path) {
  const Json cfg = io::load_json(path);
  if (!cfg.is_object()) throw Error(path, "expected a JSON object");
  ImageProcessorConfig c;
  c.do_resize = get_bool(cfg, "do_resize", true, path);
  c.do_center_crop = get_bool(cfg, "do_center_crop", true, path);
  c.do_rescale = get_bool(cfg, "do_rescale", true, path);
  c.do_normalize = get_bool(cfg, "do_normalize", true, path);
  c.do_convert_rgb = get_bool(cfg, "do_convert_rgb", true, path);

  // "size": 224 (old style: shortest edge), {"shortest_edge": 224}, or {"height": h, "width": w}.
  if (cfg.contains("size") && !cfg["size"].is_null()) {
    const Json& s = cfg["size"];
    if (s.is_number()) {
      c.shortest_edge = get_size(s, "size", path);
    } else if (s.is_object() && s.contains("shortest_edge")) {
      if (s.contains("longest_edge") && !s["longest_edge"].is_null())
        throw Error(path, "size.longest_edge is not supported");
      c.shortest_edge = get_size(s["shortest_edge"], "size.shortest_edge", path);
    } else if (s.is_object() && s.contains("height") && s.contains("width")) {
      c.resize_height = get_size(s["height"], "size.height", path);
      c.resize_width = get_size(s["width"], "size.width", path);
    } else {
      throw Error(path,
                  "size: expected a number, {\"shortest_edge\": n} or {\"height\": h, \"width\": w}, got " + s.dump());
    }
  }
  // "crop_size": 224 (old style) or {"height": h, "width": w}.
  if (cfg.contains("crop_size") && !cfg["crop_size"].is_null()) {
    const Json& s = cfg["crop_size"];
    if (s.is_number()) {
      c.crop_height = c.crop_width = get_size(s, "crop_size", path);
    } else if (s.is_object() && s.contains("height") && s.contains("width")) {
      c.crop_height = get_size(s["height"], "crop_size.height", path);
      c.crop_width = get_size(s["width"], "crop_size.width", path);
    } else {
      throw Error(path, "crop_size: expected a number or {\"height\": h, \"width\": w}, got " + s.dump());
    }
  }
  if (cfg.contains("resample") && !cfg["resample"].is_null()) {
    c.resample = get_int(cfg["resample"], "resample", path);
    if (!detail::valid_filter(c.resample))
      throw Error(path, "resample " + std::to_string(c.resample) +
                            " is not supported (1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING)");
  }
  if (cfg.contains("rescale_factor") && !cfg["rescale_factor"].is_null()) {
    if (!cfg["rescale_factor"].is_number())
      throw Error(path, "rescale_factor: expected a number, got " + cfg["rescale_factor"].dump());
    c.rescale_factor = cfg["rescale_factor"].get<double>();
    if (!std::isfinite(c.rescale_factor)) throw Error(path, "rescale_factor must be finite");
  }
  get_triple(cfg, "image_mean", c.mean, path);
  get_triple(cfg, "image_std", c.std, path);
  for (int i = 0; i < 3; ++i) {
    if (!std::isfinite(c.mean[i]) || !std::isfinite(c.std[i]) || c.std[i] == 0.0f)
      throw Error(path, "image_mean / image_std must be finite and image_std non-zero");
  }
  if (!c.do_center_crop && !(c.do_resize && c.resize_height > 0))
    throw Error(path,
                "without center crop the output size would depend on the image (do_center_crop false with a "
                "shortest-edge resize or no resize): not supported");
  return c;
}

RgbImage resize(const RgbImage& src, int width, int height, int resample) {
  if (!detail::valid_filter(resample))
    throw Error("resize", "unsupported resampling filter " + std::to_string(resample));
  if (src.width <= 0 || src.height <= 0 || src.pixels.size() != static_cast<size_t>(src.width) * src.height * 3)
    throw Error("resize", "empty or malformed image");
  if (width <= 0 || height <= 0) throw Error("resize", "invalid output size");
  RgbImage out;
  out.width = width;
  out.height = height;
  out.pixels.resize(static_cast<size_t>(width) * height * 3);
  detail::resample_window_u8(src.pixels.data(), src.width, src.height, 3, width, height, resample, 0, 0, width, height,
                             out.pixels.data());
  return out;
}

void ImageProcessor::preprocess(const RgbImage& img, float* out) const { run(img, 1, out); }

void ImageProcessor::preprocess(const StoredRgbImage& img, float* out) const { run(img.image, img.orientation, out); }

ImageProcessor::Layout ImageProcessor::layout(int width, int height) const {
  // Size after resize (HF get_resize_output_image_size; Python's int(S * long / short) truncates a double).
  int rw = width, rh = height;
  if (cfg_.do_resize) {
    if (cfg_.resize_height > 0) {
      rw = cfg_.resize_width;
      rh = cfg_.resize_height;
    } else {
      const int s = cfg_.shortest_edge;
      const int64_t shorter = std::min(width, height), longer = std::max(width, height);
      const double scaled = static_cast<double>(int64_t{s} * longer) / static_cast<double>(shorter);
      if (!(scaled < (1 << 30))) throw Error("preprocess", "image aspect ratio too extreme to resize");
      const int new_long = static_cast<int>(scaled);
      if (width <= height) {
        rw = s;
        rh = new_long;
      } else {
        rw = new_long;
        rh = s;
      }
    }
  }
  const int oh = out_height(), ow = out_width();
  int top = 0, left = 0;
  if (cfg_.do_center_crop) {
    // HF center_crop: top = (h - crop_h) // 2; a smaller image is zero-padded around, which amounts to the same
    // floor division with negative values.
    top = floor_div2(rh - oh);
    left = floor_div2(rw - ow);
  } else if (rh != oh || rw != ow) {
    throw Error("preprocess", "resized image is " + std::to_string(rw) + "x" + std::to_string(rh) + ", expected " +
                                  std::to_string(ow) + "x" + std::to_string(oh));
  }
  // The part of the resized image inside the crop.
  const int y0 = std::max(top, 0), y1 = std::min(top + oh, rh);
  const int x0 = std::max(left, 0), x1 = std::min(left + ow, rw);
  return {rw, rh, top, left, x0, y0, std::max(x1 - x0, 0), std::max(y1 - y0, 0)};
}

void ImageProcessor::run(const RgbImage& s, int orientation, float* out) const {
  if (s.width <= 0 || s.height <= 0 || s.pixels.size() != static_cast<size_t>(s.width) * s.height * 3)
    throw Error("preprocess", "empty or malformed image");
  const bool transposed = orientation >= 5 && orientation <= 8;
  if (!detail::valid_filter(cfg_.resample))
    throw Error("preprocess", "unsupported resampling filter " + std::to_string(cfg_.resample));
  const Layout l = transposed ? layout(s.height, s.width) : layout(s.width, s.height);  // the displayed size
  std::vector<uint8_t> window(static_cast<size_t>(l.wh) * l.ww * 3);
  if (l.wh > 0 && l.ww > 0)
    detail::resample_window_u8_oriented(s.pixels.data(), s.width, s.height, 3, orientation, l.rw, l.rh, cfg_.resample,
                                        l.x0, l.y0, l.ww, l.wh, window.data());
  write_pixels(l, window.data(), out);
}

void ImageProcessor::write_pixels(const Layout& l, const uint8_t* window, float* out) const {
  // HF: rescale = (x as float64) * factor -> float32; normalize = (x - mean) / std in float32. One table per channel.
  float lut[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      float x = static_cast<float>(v);
      if (cfg_.do_rescale) x = static_cast<float>(static_cast<double>(v) * cfg_.rescale_factor);
      if (cfg_.do_normalize) x = (x - cfg_.mean[c]) / cfg_.std[c];
      lut[c][v] = x;
    }
  }
  const int oh = out_height(), ow = out_width();
  const int y1 = l.y0 + l.wh, x1 = l.x0 + l.ww;
  const size_t plane = static_cast<size_t>(oh) * ow;
  for (int y = 0; y < oh; ++y) {
    const int sy = y + l.top;  // row in the resized image
    for (int x = 0; x < ow; ++x) {
      const int sx = x + l.left;
      const size_t o = static_cast<size_t>(y) * ow + x;
      if (sy >= l.y0 && sy < y1 && sx >= l.x0 && sx < x1) {
        const uint8_t* p = &window[(static_cast<size_t>(sy - l.y0) * l.ww + (sx - l.x0)) * 3];
        out[o] = lut[0][p[0]];
        out[plane + o] = lut[1][p[1]];
        out[2 * plane + o] = lut[2][p[2]];
      } else {  // zero padding, normalized like any pixel
        out[o] = lut[0][0];
        out[plane + o] = lut[1][0];
        out[2 * plane + o] = lut[2][0];
      }
    }
  }
}

namespace detail {

bool stream_jpeg_rgb(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt, int resample,
                     const std::function<std::optional<StreamWindow>(int width, int height)>& plan,
                     std::vector<uint8_t>& window) {
  if (size < 3 || std::memcmp(data, "\xFF\xD8\xFF", 3) != 0 || !valid_filter(resample)) return false;
  StreamWindow win{};
  std::unique_ptr<RowStreamResampler> rs;
  int width = 0;
  PilMode mode = PilMode::RGB;
  JpegRowSink sink;
  sink.start = [&](int w, int h, PilMode m, int orientation) {
    const bool transposed = orientation >= 5 && orientation <= 8;
    std::optional<StreamWindow> planned;
    try {
      planned = transposed ? plan(h, w) : plan(w, h);  // the displayed size
    } catch (const Error&) {
      return false;  // the full decode reports it, after any decode error, as before
    }
    if (!planned) return false;
    win = *planned;
    width = w;
    mode = m;
    rs = std::make_unique<RowStreamResampler>(w, h, 3, orientation, win.width, win.height, resample, win.x0, win.y0,
                                              win.ww, win.wh);
    return true;
  };
  PilImage strip;  // L / CMYK rows, converted as Image.convert("RGB") does (per pixel, so strip by strip is exact)
  sink.rows = [&](const uint8_t* rows, size_t stride, int y, int n) {
    if (mode == PilMode::RGB) {
      rs->push(rows, stride, y, n);
      return;
    }
    strip.width = width;
    strip.height = n;
    strip.mode = mode;
    strip.pixels.assign(rows, rows + stride * n);
    const RgbImage rgb = to_rgb(strip);
    rs->push(rgb.pixels.data(), static_cast<size_t>(width) * 3, y, n);
  };
  if (!decode_jpeg_rows(data, size, name, opt, sink)) return false;
  window.assign(static_cast<size_t>(win.wh) * win.ww * 3, 0);
  rs->finish(window.data());
  return true;
}

}  // namespace detail

bool ImageProcessor::run_streamed(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt,
                                  float* out) const {
  Layout l{};
  std::vector<uint8_t> window;
  const auto plan = [&](int width, int height) -> std::optional<detail::StreamWindow> {
    l = layout(width, height);
    if (l.ww <= 0 || l.wh <= 0) return std::nullopt;
    return detail::StreamWindow{l.rw, l.rh, l.x0, l.y0, l.ww, l.wh};
  };
  if (!detail::stream_jpeg_rgb(data, size, name, opt, cfg_.resample, plan, window)) return false;
  write_pixels(l, window.data(), out);
  return true;
}

std::vector<float> ImageProcessor::preprocess_encoded(const uint8_t* data, size_t size, const std::string& name,
                                                      const DecodeOptions& opt) const {
  std::vector<float> out(static_cast<size_t>(3) * out_height() * out_width());
  try {
    if (run_streamed(data, size, name, opt, out.data())) return out;
  } catch (const std::bad_alloc&) {
    throw Error(name, "out of memory while decoding");
  }
  preprocess(decode_memory_stored(data, size, name, opt), out.data());
  return out;
}

std::vector<float> ImageProcessor::preprocess_file(const std::string& path, const DecodeOptions& opt) const {
  const std::vector<uint8_t> bytes = detail::read_file(path);
  return preprocess_encoded(bytes.data(), bytes.size(), path, opt);
}

std::vector<float> ImageProcessor::preprocess(const StoredRgbImage& img) const {
  std::vector<float> out(static_cast<size_t>(3) * out_height() * out_width());
  preprocess(img, out.data());
  return out;
}

std::vector<float> ImageProcessor::preprocess(const RgbImage& img) const {
  std::vector<float> out(static_cast<size_t>(3) * out_height() * out_width());
  preprocess(img, out.data());
  return out;
}

}  // namespace zeroshot::image
