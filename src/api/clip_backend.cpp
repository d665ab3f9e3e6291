#include "api/clip_backend.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "image/image.h"
#include "image/image_processor.h"
#include "image/open_clip_transform.h"
#include "image/pil_image.h"
#include "io/safetensors.h"
#include "models/int8_weights.h"
#include "models/open_clip.h"
#include "text/clip_tokenizer.h"
#include "util/trace.h"

namespace zeroshot::api {

namespace fs = std::filesystem;

namespace {

class ClipBackend final : public Backend {
 public:
  ClipBackend(ClipCheckpoint ck, const ModelOptions& opt, const Int8Capture* capture) : ck_(std::move(ck)) {
    auto copt = model_build_options<models::ClipOptions>(ck_.dir, opt, capture);
    PackedWeightsPlan packed = packed_weights_plan(*ck_.weights, opt, capture);
    use_packed_weights(copt, packed);
    {
      trace::Phase p("build model");
      clip_ = std::make_unique<models::ClipModel>(ck_.cfg, ck_.weights, copt);
    }
    save_packed_weights(packed);
  }

  const char* model_type() const override { return ck_.model_type.c_str(); }
  Modality modality() const override { return Modality::Image; }
  size_t embedding_dim() const override { return static_cast<size_t>(ck_.cfg.projection_dim); }
  int image_size() const override { return ck_.cfg.vision.image_size; }
  ScoreHead score_head() const override { return {std::exp(clip_->logit_scale()), 0.0f, false}; }
  const char* default_template() const override { return kDefaultImageTemplate; }
  const io::WeightStore& weights() const override { return *ck_.weights; }
  std::vector<std::string> definition_files() const override { return ck_.definition_files; }
  std::vector<std::string> prefetch_weights() const override {
    return names_with_prefix(clip_->weights_in_place(), {"vision_model.", "visual_projection."});
  }
  bool int8_from_file() const override { return clip_->int8_from_file(); }

  std::vector<int32_t> tokenize(const std::string& text) const override {
    return tokenizer().encode(text, static_cast<size_t>(ck_.cfg.text.max_positions));
  }
  void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) const override {
    if (!ids.empty()) clip_->encode_texts(ids, out);
  }

  Input load_file(const std::string& path) const override { return {ck_.preprocess.file(path), false}; }
  Input load_memory(const uint8_t* data, size_t size, const std::string& name) const override {
    return {ck_.preprocess.bytes(data, size, name), false};
  }
  Input load_rgb(const uint8_t* rgb, int width, int height, const std::string& name) const override {
    return {ck_.preprocess.rgb(rgb, width, height, name), false};
  }
  void encode(const Input* const* inputs, size_t n, float* out) const override {
    encode_pixel_values(concat_inputs(inputs, n).data(), n, out);
  }
  void encode_pixel_values(const float* pixel_values, size_t n, float* out) const override {
    if (n) clip_->encode_images(pixel_values, static_cast<int>(n), out);
  }
  int patch_grid() const override { return ck_.cfg.vision.image_size / ck_.cfg.vision.patch_size; }
  void encode_image_tokens(const float* pixel_values, int vv_blocks, float* out) const override {
    clip_->encode_image_tokens(pixel_values, vv_blocks, out);
  }

 private:
  // Parsed on first use: ~30 ms that a cached label set or an image-only run never needs. (A mutex, not
  // std::call_once: a failed load throws, and the next call must try again.)
  const text::ClipTokenizer& tokenizer() const {
    if (const text::ClipTokenizer* t = tokenizer_ready_.load(std::memory_order_acquire)) return *t;
    std::lock_guard lock(mutex_);
    if (!tokenizer_) {
      trace::Phase p("load tokenizer");
      tokenizer_ = std::make_unique<text::ClipTokenizer>(text::ClipTokenizer::from_dir(ck_.dir, ck_.specials));
      tokenizer_ready_.store(tokenizer_.get(), std::memory_order_release);
    }
    return *tokenizer_;
  }

  ClipCheckpoint ck_;
  std::unique_ptr<models::ClipModel> clip_;
  mutable std::mutex mutex_;
  mutable std::unique_ptr<text::ClipTokenizer> tokenizer_;
  mutable std::atomic<const text::ClipTokenizer*> tokenizer_ready_{nullptr};
};

}  // namespace

std::unique_ptr<Backend> make_clip_backend(ClipCheckpoint ck, const ModelOptions& options, const Int8Capture* capture) {
  return std::make_unique<ClipBackend>(std::move(ck), options, capture);
}

std::vector<std::string> clip_tokenizer_files(const std::string& dir) {
  const fs::path d(dir);
  std::error_code ec;
  if (fs::is_regular_file(d / "vocab.json", ec) && fs::is_regular_file(d / "merges.txt", ec))
    return {(d / "vocab.json").string(), (d / "merges.txt").string()};
  if (fs::is_regular_file(d / "tokenizer.json", ec)) return {(d / "tokenizer.json").string()};
  (void)text::ClipTokenizer::from_dir(dir);  // for its error message
  throw Error(dir, "no CLIP tokenizer files (vocab.json + merges.txt, or tokenizer.json)");
}

ClipCheckpoint load_hf_clip(const std::string& dir, const ModelOptions& options) {
  const fs::path d(dir);
  ClipCheckpoint ck;
  ck.dir = dir;
  ck.model_type = "clip";
  const fs::path config = d / "config.json";
  ck.cfg = models::ClipConfig::load(config.string());
  const std::vector<std::string> tok = clip_tokenizer_files(dir);
  const fs::path pre = d / "preprocessor_config.json";
  ck.definition_files = {config.string(), pre.string()};
  ck.definition_files.insert(ck.definition_files.end(), tok.begin(), tok.end());

  image::ImageProcessorConfig pcfg;
  if (fs::exists(pre)) {
    pcfg = image::ImageProcessorConfig::load(pre.string());
  } else {
    // CLIP's standard processing at the vision tower's resolution.
    pcfg.shortest_edge = pcfg.crop_height = pcfg.crop_width = ck.cfg.vision.image_size;
  }
  auto processor = std::make_shared<const image::ImageProcessor>(pcfg);
  if (processor->out_height() != ck.cfg.vision.image_size || processor->out_width() != ck.cfg.vision.image_size)
    throw Error(pre.string(), "crop size " + std::to_string(processor->out_height()) + "x" +
                                  std::to_string(processor->out_width()) + " does not match vision_config.image_size " +
                                  std::to_string(ck.cfg.vision.image_size));
  image::DecodeOptions decode;
  decode.max_pixels = options.max_image_pixels;
  if (options.fast_decode) decode.draft_size = processor->draft_size();
  ck.preprocess.file = [processor, decode](const std::string& path) {
    return processor->preprocess_file(path, decode);  // JPEGs decoded into the resize; no rotated full-size copy
  };
  ck.preprocess.bytes = [processor, decode](const uint8_t* data, size_t size, const std::string& name) {
    return processor->preprocess_encoded(data, size, name, decode);
  };
  ck.preprocess.rgb = [processor](const uint8_t* rgb, int width, int height, const std::string& name) {
    return processor->preprocess(rgb_image(rgb, width, height, name));
  };
  {
    // Memory-mapped weights used in place (no copy) where their dtype and alignment allow.
    trace::Phase p("open weights");
    ck.weights = std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(dir));
  }
  return ck;
}

ImagePreprocess open_clip_image_preprocess(const models::OpenClipPreprocess& p, const ModelOptions& options) {
  image::OpenClipTransformConfig t;
  t.height = t.width = p.size;
  for (int c = 0; c < 3; ++c) {
    t.mean[c] = p.mean[static_cast<size_t>(c)];
    t.std[c] = p.std[static_cast<size_t>(c)];
  }
  t.interpolation = p.interpolation == models::OpenClipInterpolation::Bilinear ? "bilinear" : "bicubic";
  t.resize_mode = p.resize_mode == models::OpenClipResizeMode::Longest  ? "longest"
                  : p.resize_mode == models::OpenClipResizeMode::Squash ? "squash"
                                                                        : "shortest";
  t.fill_color = p.fill_color;
  t.check();
  image::DecodeOptions decode;
  decode.max_pixels = options.max_image_pixels;
  if (options.fast_decode) decode.draft_size = 2 * std::max(t.height, t.width);  // as ImageProcessor::draft_size
  ImagePreprocess out;
  out.file = [t, decode](const std::string& path) {
    return image::open_clip_transform_file(path, decode, t);  // JPEGs decoded into the resize
  };
  out.bytes = [t, decode](const uint8_t* data, size_t size, const std::string& name) {
    return image::open_clip_transform_encoded(data, size, name, decode, t);
  };
  out.rgb = [t](const uint8_t* rgb, int width, int height, const std::string& name) {
    image::RgbImage decoded = rgb_image(rgb, width, height, name);
    image::PilImage img;
    img.width = width;
    img.height = height;
    img.mode = image::PilMode::RGB;
    img.pixels = std::move(decoded.pixels);
    return image::open_clip_transform(img, t);
  };
  return out;
}

std::string open_clip_weights(const std::string& dir) {
  const fs::path d(dir);
  for (const std::string& f : io::open_clip_weight_files())
    if (fs::is_regular_file(d / f)) return (d / f).string();
  throw Error(dir, "an OpenCLIP folder without weights (looked for " + io::open_clip_weight_files().front() + ", ...)");
}

ClipCheckpoint load_open_clip(const std::string& dir, const ModelOptions& options) {
  const fs::path d(dir);
  const fs::path config = d / models::kOpenClipConfigFile;
  const models::OpenClipConfig oc = models::load_open_clip_config(config.string());
  ClipCheckpoint ck;
  ck.dir = dir;
  ck.model_type = "open_clip";
  ck.specials = text::ClipSpecialTokens::open_clip();  // open_clip's SimpleTokenizer spells them so
  ck.cfg = oc.clip;  // text.max_positions = context_length: the tokenizer truncates there, as open_clip's
  std::vector<std::string> tok;
  try {
    tok = clip_tokenizer_files(dir);
  } catch (const Error&) {
    // open_clip ships its BPE vocabulary inside the Python package; hub repos carry it as tokenizer files.
    throw Error(dir,
                "an OpenCLIP folder without CLIP tokenizer files (vocab.json + merges.txt, or tokenizer.json); "
                "the hub repos of OpenCLIP models carry them");
  }
  ck.definition_files = {config.string()};
  ck.definition_files.insert(ck.definition_files.end(), tok.begin(), tok.end());

  if (oc.preprocess.size != ck.cfg.vision.image_size)
    throw Error(config.string(), "preprocess size " + std::to_string(oc.preprocess.size) +
                                     " does not match vision_cfg.image_size " +
                                     std::to_string(ck.cfg.vision.image_size));
  ck.preprocess = open_clip_image_preprocess(oc.preprocess, options);
  const std::string weights = open_clip_weights(dir);
  {
    trace::Phase p("open weights");
    auto src = std::make_shared<const io::WeightStore>(io::WeightStore::open(weights));
    ck.weights = models::open_clip_to_hf(std::move(src), ck.cfg);
  }
  return ck;
}

}  // namespace zeroshot::api
