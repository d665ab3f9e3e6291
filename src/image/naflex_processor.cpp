// Siglip2ImageProcessor: the patch-budget resize, rescale / normalize and patchify, packed into one record.
#include "image/naflex_processor.h"

#include <cmath>
#include <filesystem>
#include <optional>
#include <utility>

#include "image/decode_internal.h"
#include "image/image_processor.h"
#include "io/json.h"
#include "zeroshot/error.h"

namespace zeroshot::image {

namespace {

// A positive integer key of the file (absent or null: `def`).
int positive_int(const io::Json& j, const char* key, int def, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return def;
  const io::Json& v = j[key];
  if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > (1 << 20))
    throw Error(path, std::string(key) + " must be a positive integer, got " + v.dump());
  return v.get<int>();
}

// get_scaled_image_size: size * scale rounded up to whole patches, at least one patch (Python floats: doubles; kept
// as a double because a trial scale of a huge image exceeds int).
double scaled_side(double scale, int size, int patch) {
  const double scaled = static_cast<double>(size) * scale;
  const double up = std::ceil(scaled / patch) * patch;
  return std::max(static_cast<double>(patch), up);
}

// Enough for every SigLIP 2 NaFlex checkpoint (they use up to 1024); a record holds this many patches, 48 MB at 16 px.
constexpr int kMaxNumPatches = 16384;

}  // namespace

NaflexConfig NaflexConfig::load(const std::string& path, int patch_size, int max_num_patches) {
  NaflexConfig c;
  c.patch_size = patch_size;
  c.max_num_patches = max_num_patches;
  if (!std::filesystem::exists(path)) return c;
  const io::Json j = io::load_json(path);
  if (!j.is_object()) throw Error(path, "expected a JSON object");
  // The fields CLIPImageProcessor shares with it (resample, rescale, normalize, their checks); the defaults that
  // differ are Siglip2ImageProcessor's.
  const ImageProcessorConfig base = ImageProcessorConfig::load(path);
  auto has = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  c.do_resize = base.do_resize;
  c.do_rescale = base.do_rescale;
  c.rescale_factor = base.rescale_factor;
  c.do_normalize = base.do_normalize;
  if (has("resample")) c.resample = base.resample;
  for (int i = 0; i < 3; ++i) {
    if (has("image_mean")) c.mean[i] = base.mean[i];
    if (has("image_std")) c.std[i] = base.std[i];
  }
  c.patch_size = positive_int(j, "patch_size", patch_size, path);
  c.max_num_patches = positive_int(j, "max_num_patches", max_num_patches, path);
  if (c.max_num_patches > kMaxNumPatches)
    throw Error(path, "max_num_patches " + std::to_string(c.max_num_patches) + " is more than this engine takes (" +
                          std::to_string(kMaxNumPatches) + ")");
  if (!c.do_resize)
    throw Error(path, "do_resize false is not supported (the image would be patchified at its own size)");
  return c;
}

NaflexSize naflex_target_size(int height, int width, int patch, int max_num_patches) {
  // transformers' get_image_size_for_max_num_patches: bisect the scale in [eps / 10, 100] until the interval is
  // under eps = 1e-5, keeping the largest scale whose patch count fits.
  constexpr double eps = 1e-5;
  double lo = eps / 10, hi = 100.0;
  while (hi - lo >= eps) {
    const double scale = (lo + hi) / 2;
    const double h = scaled_side(scale, height, patch), w = scaled_side(scale, width, patch);
    if ((h / patch) * (w / patch) <= max_num_patches) lo = scale;
    else hi = scale;
  }
  // The final sides hold at most max_num_patches patches, so they fit an int.
  return {static_cast<int>(scaled_side(lo, height, patch)), static_cast<int>(scaled_side(lo, width, patch))};
}

int naflex_record_side(const NaflexConfig& cfg) {
  const int64_t need = static_cast<int64_t>(cfg.max_num_patches) * cfg.patch_size * cfg.patch_size * 3 + 2;
  auto side = static_cast<int64_t>(std::sqrt(static_cast<double>(need) / 3));
  while (3 * side * side < need) ++side;
  return static_cast<int>(side);
}

namespace {

// The packed record of the resized image (s.width x s.height RGB).
std::vector<float> pack(const uint8_t* resized, const NaflexSize& s, const NaflexConfig& cfg) {
  const int p = cfg.patch_size;
  // HF: rescale = (x as float64) * factor -> float32; normalize = (x - mean) / std in float32. One table per channel.
  float lut[3][256];
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) {
      float x = static_cast<float>(v);
      if (cfg.do_rescale) x = static_cast<float>(static_cast<double>(v) * cfg.rescale_factor);
      if (cfg.do_normalize) x = (x - cfg.mean[c]) / cfg.std[c];
      lut[c][v] = x;
    }
  const int gh = s.height / p, gw = s.width / p;
  const int side = naflex_record_side(cfg);
  std::vector<float> out(static_cast<size_t>(3) * side * side, 0.0f);
  out[0] = static_cast<float>(gh);
  out[1] = static_cast<float>(gw);
  float* dst = out.data() + 2;
  // Patch (py, px) is row py * gw + px; inside it (y, x, channel), as the interleaved pixels already are.
  for (int py = 0; py < gh; ++py)
    for (int px = 0; px < gw; ++px)
      for (int y = 0; y < p; ++y) {
        const uint8_t* src = resized + ((static_cast<size_t>(py) * p + y) * s.width + px * p) * 3;
        for (int i = 0; i < p * 3; ++i) *dst++ = lut[i % 3][src[i]];
      }
  return out;
}

// The streamed JPEG path of naflex_preprocess_encoded; nullopt when it does not apply (the full decode runs then,
// reporting any error in its own order).
std::optional<std::vector<float>> preprocess_streamed(const uint8_t* data, size_t size, const std::string& name,
                                                      const DecodeOptions& opt, const NaflexConfig& cfg) {
  NaflexSize s{};
  std::vector<uint8_t> resized;
  const auto plan = [&](int width, int height) -> std::optional<detail::StreamWindow> {
    s = naflex_target_size(height, width, cfg.patch_size, cfg.max_num_patches);
    if (s.width <= 0 || s.height <= 0) return std::nullopt;
    // The whole resized image is the window: resize() resamples even at the same size, and so does this.
    return detail::StreamWindow{s.width, s.height, 0, 0, s.width, s.height};
  };
  if (!detail::stream_jpeg_rgb(data, size, name, opt, cfg.resample, plan, resized)) return std::nullopt;
  return pack(resized.data(), s, cfg);
}

}  // namespace

std::vector<float> naflex_preprocess(const RgbImage& img, const NaflexConfig& cfg) {
  if (img.width <= 0 || img.height <= 0) throw Error("preprocess", "empty image");
  const NaflexSize s = naflex_target_size(img.height, img.width, cfg.patch_size, cfg.max_num_patches);
  const RgbImage r = resize(img, s.width, s.height, cfg.resample);
  return pack(r.pixels.data(), s, cfg);
}

std::vector<float> naflex_preprocess_encoded(const uint8_t* data, size_t size, const std::string& name,
                                             const DecodeOptions& opt, const NaflexConfig& cfg) {
  try {
    if (auto out = preprocess_streamed(data, size, name, opt, cfg)) return std::move(*out);
  } catch (const std::bad_alloc&) {
    throw Error(name, "out of memory while decoding");
  }
  return naflex_preprocess(decode_memory(data, size, name, opt), cfg);
}

std::vector<float> naflex_preprocess_file(const std::string& path, const DecodeOptions& opt, const NaflexConfig& cfg) {
  const std::vector<uint8_t> bytes = detail::read_file(path);
  return naflex_preprocess_encoded(bytes.data(), bytes.size(), path, opt, cfg);
}

}  // namespace zeroshot::image
