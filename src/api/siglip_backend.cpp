#include "api/siglip_backend.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "image/image.h"
#include "image/image_processor.h"
#include "image/naflex_processor.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/int8_weights.h"
#include "models/siglip.h"
#include "text/bpe_json_tokenizer.h"
#include "text/siglip_tokenizer.h"
#include "util/trace.h"

namespace zeroshot::api {

namespace fs = std::filesystem;

namespace {

// SiglipImageProcessor: the file's settings over SiglipImageProcessor's own
// defaults (224 x 224, bicubic, mean and std 0.5), and never a center crop (the
// class has none; a do_center_crop key is ignored by it too).
image::ImageProcessorConfig siglip_preprocessing(const fs::path& file, int image_size) {
  image::ImageProcessorConfig c;
  io::Json j = io::Json::object();
  if (fs::exists(file)) {
    j = io::load_json(file.string());
    if (!j.is_object()) throw Error(file.string(), "expected a JSON object");
    c = image::ImageProcessorConfig::load(file.string());
  }
  if (!j.contains("size") || j["size"].is_null()) {
    c.resize_height = c.resize_width = image_size;
  } else if (c.resize_height <= 0) {
    throw Error(file.string(),
                "size: SiglipImageProcessor takes {\"height\": h, \"width\": w}, got " + j["size"].dump());
  }
  for (int i = 0; i < 3; ++i) {
    if (!j.contains("image_mean") || j["image_mean"].is_null()) c.mean[i] = 0.5f;
    if (!j.contains("image_std") || j["image_std"].is_null()) c.std[i] = 0.5f;
  }
  c.do_center_crop = false;
  if (!c.do_resize)
    throw Error(file.string(),
                "do_resize false is not supported (the output "
                "size would depend on the image)");
  return c;
}

// Which tokenizer transformers' AutoTokenizer builds for the folder: tokenizer_config.json's tokenizer_class when it
// names one ("SiglipTokenizer": the SentencePiece one, which has no fast class; "GemmaTokenizer" (SigLIP 2) or
// "PreTrainedTokenizerFast": tokenizer.json), else SiglipTokenizer when spiece.model is there, else tokenizer.json.
bool uses_tokenizer_json(const fs::path& dir) {
  const fs::path cfg = dir / "tokenizer_config.json";
  if (fs::exists(cfg)) {
    const io::Json j = io::load_json(cfg.string());
    if (j.is_object() && j.contains("tokenizer_class") && j["tokenizer_class"].is_string()) {
      const std::string cls = j["tokenizer_class"].get<std::string>();
      if (cls == "SiglipTokenizer") return false;
      if (cls == "GemmaTokenizer" || cls == "GemmaTokenizerFast" || cls == "PreTrainedTokenizerFast") return true;
      throw Error(cfg.string(),
                  "tokenizer_class \"" + cls +
                      "\" is not supported for SigLIP (SiglipTokenizer, GemmaTokenizer, PreTrainedTokenizerFast are)");
    }
  }
  return !fs::is_regular_file(dir / "spiece.model") && fs::is_regular_file(dir / "tokenizer.json");
}

// The text side: SiglipTokenizer over spiece.model, or the tokenizer.json BPE (SigLIP 2's Gemma tokenizer).
struct SiglipText {
  std::unique_ptr<text::SiglipTokenizer> sp;
  std::unique_ptr<text::BpeJsonTokenizer> bpe;
  std::vector<int32_t> encode(const std::string& t) const { return sp ? sp->encode(t) : bpe->encode(t); }
  std::vector<int32_t> pad(std::vector<int32_t> ids) const {
    return sp ? sp->pad(std::move(ids)) : bpe->pad(std::move(ids));
  }
  bool attention_mask() const { return sp ? sp->attention_mask() : bpe->attention_mask(); }
  bool pad_left() const { return sp ? false : bpe->pad_left(); }
  int32_t pad_id() const { return sp ? sp->pad_id() : bpe->pad_id(); }
  size_t max_length() const { return sp ? sp->max_length() : bpe->max_length(); }
};

class SiglipBackend final : public Backend {
 public:
  SiglipBackend(const std::string& dir, const ModelOptions& opt, const Int8Capture* capture) : dir_(dir) {
    const fs::path d(dir);
    const fs::path config = d / "config.json";
    const fs::path pre = d / "preprocessor_config.json";
    cfg_ = models::SiglipConfig::load(config.string());
    const fs::path spiece = d / "spiece.model";
    json_tokenizer_ = uses_tokenizer_json(d);
    if (json_tokenizer_ ? !fs::is_regular_file(d / "tokenizer.json") : !fs::is_regular_file(spiece))
      throw Error(json_tokenizer_ ? (d / "tokenizer.json").string() : spiece.string(),
                  json_tokenizer_ ? "not found (this SigLIP model's tokenizer is a tokenizer.json)"
                                  : "not found (a SigLIP model folder needs its SentencePiece model spiece.model, or a "
                                    "tokenizer.json)");
    definition_files_ = {config.string(), pre.string(), spiece.string(), (d / "tokenizer_config.json").string(),
                         (d / "tokenizer.json").string()};

    if (cfg_.num_patches > 0) {
      // NaFlex (model_type siglip2): Siglip2ImageProcessor, whose default budget is 256 patches.
      naflex_ =
          std::make_unique<image::NaflexConfig>(image::NaflexConfig::load(pre.string(), cfg_.vision.patch_size, 256));
      if (naflex_->patch_size != cfg_.vision.patch_size)
        throw Error(pre.string(), "patch_size " + std::to_string(naflex_->patch_size) +
                                      " does not match vision_config.patch_size " +
                                      std::to_string(cfg_.vision.patch_size));
      record_side_ = image::naflex_record_side(*naflex_);
    } else {
      processor_ = std::make_shared<const image::ImageProcessor>(siglip_preprocessing(pre, cfg_.vision.image_size));
    }
    if (!naflex_ &&
        (processor_->out_height() != cfg_.vision.image_size || processor_->out_width() != cfg_.vision.image_size)) {
      throw Error(pre.string(),
                  "size " + std::to_string(processor_->out_height()) + "x" + std::to_string(processor_->out_width()) +
                      " does not match vision_config.image_size " + std::to_string(cfg_.vision.image_size));
    }
    decode_.max_pixels = opt.max_image_pixels;
    // NaFlex has no draft size: its resize depends on the displayed size, known only after the header is read, so
    // --fast-decode decodes its images exactly (processor_ is null there).
    if (opt.fast_decode && processor_) decode_.draft_size = processor_->draft_size();

    auto mo = model_build_options<models::ClipOptions>(dir, opt, capture);
    {
      trace::Phase p("open weights");
      weights_ = std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(dir));
    }
    PackedWeightsPlan packed = packed_weights_plan(*weights_, opt, capture);
    use_packed_weights(mo, packed);
    {
      trace::Phase p("build model");
      model_ = std::make_unique<models::SiglipModel>(cfg_, weights_, mo);
    }
    save_packed_weights(packed);
  }

  const char* model_type() const override { return naflex_ ? "siglip2" : "siglip"; }
  Modality modality() const override { return Modality::Image; }
  size_t embedding_dim() const override { return static_cast<size_t>(cfg_.embedding_dim()); }
  // NaFlex: the side of the packed record (image/naflex_processor.h) that carries an image as 3 x S x S floats.
  int image_size() const override { return naflex_ ? record_side_ : cfg_.vision.image_size; }
  ScoreHead score_head() const override { return {std::exp(model_->logit_scale()), model_->logit_bias(), true}; }
  const char* default_template() const override { return kDefaultImageTemplate; }
  const io::WeightStore& weights() const override { return *weights_; }
  std::vector<std::string> definition_files() const override { return definition_files_; }
  std::vector<std::string> prefetch_weights() const override {
    return names_with_prefix(model_->weights_in_place(), {"vision_model."});
  }
  bool int8_from_file() const override { return model_->int8_from_file(); }

  std::vector<int32_t> tokenize(const std::string& text) const override { return tokenizer().encode(text); }
  void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) const override {
    if (ids.empty()) return;
    const SiglipText& tok = tokenizer();
    if (tok.attention_mask())
      return model_->encode_texts(ids, tok.pad_id(), out, static_cast<int>(tok.max_length()), tok.pad_left());
    // No attention mask: the pipeline runs the padded ids as they are, every pad token attended to.
    std::vector<std::vector<int32_t>> padded;
    padded.reserve(ids.size());
    for (const auto& s : ids) padded.push_back(tok.pad(s));
    model_->encode_texts(padded, tok.pad_id(), out, static_cast<int>(tok.max_length()));
  }

  // A JPEG is decoded strip by strip into the resize (ImageProcessor::preprocess_file, naflex_preprocess_file: the
  // same bytes as decode + preprocess, with no full-size or rotated copy).
  Input load_file(const std::string& path) const override {
    if (naflex_) return {image::naflex_preprocess_file(path, decode_, *naflex_), false};
    return {processor_->preprocess_file(path, decode_), false};
  }
  Input load_memory(const uint8_t* data, size_t size, const std::string& name) const override {
    if (naflex_) return {image::naflex_preprocess_encoded(data, size, name, decode_, *naflex_), false};
    return {processor_->preprocess_encoded(data, size, name, decode_), false};
  }
  Input load_rgb(const uint8_t* rgb, int width, int height, const std::string& name) const override {
    return {preprocess(rgb_image(rgb, width, height, name)), false};
  }
  void encode(const Input* const* inputs, size_t n, float* out) const override {
    encode_pixel_values(concat_inputs(inputs, n).data(), n, out);
  }
  void encode_pixel_values(const float* pixel_values, size_t n, float* out) const override {
    if (!n) return;
    if (naflex_)
      model_->encode_naflex(pixel_values, static_cast<int>(n), static_cast<size_t>(3) * record_side_ * record_side_,
                            out);
    else model_->encode_images(pixel_values, static_cast<int>(n), out);
  }

 private:
  // Parsed on first use (an image-only run never needs it); a failed load
  // throws and the next call tries again.
  const SiglipText& tokenizer() const {
    if (const SiglipText* t = tokenizer_ready_.load(std::memory_order_acquire)) return *t;
    std::lock_guard lock(mutex_);
    if (!tokenizer_) {
      trace::Phase p("load tokenizer");
      auto tok = std::make_unique<SiglipText>();
      if (json_tokenizer_) tok->bpe = std::make_unique<text::BpeJsonTokenizer>(text::BpeJsonTokenizer::from_dir(dir_));
      else tok->sp = std::make_unique<text::SiglipTokenizer>(text::SiglipTokenizer::from_dir(dir_));
      // The pipeline pads to the tokenizer's length; the text tower has positions for max_position_embeddings.
      if (tok->max_length() > static_cast<size_t>(cfg_.text.max_positions))
        throw Error((fs::path(dir_) / "tokenizer_config.json").string(),
                    "model_max_length " + std::to_string(tok->max_length()) +
                        " exceeds text_config.max_position_embeddings " + std::to_string(cfg_.text.max_positions));
      tokenizer_ = std::move(tok);
      tokenizer_ready_.store(tokenizer_.get(), std::memory_order_release);
    }
    return *tokenizer_;
  }

  std::string dir_;
  models::SiglipConfig cfg_;
  std::vector<std::string> definition_files_;
  std::vector<float> preprocess(const image::RgbImage& img) const {
    return naflex_ ? image::naflex_preprocess(img, *naflex_) : processor_->preprocess(img);
  }

  std::shared_ptr<const image::ImageProcessor> processor_;
  std::unique_ptr<image::NaflexConfig> naflex_;  // set for a NaFlex (siglip2) model instead of processor_
  int record_side_ = 0;
  image::DecodeOptions decode_;
  std::shared_ptr<const io::WeightStore> weights_;
  std::unique_ptr<models::SiglipModel> model_;
  mutable std::mutex mutex_;
  bool json_tokenizer_ = false;
  mutable std::unique_ptr<SiglipText> tokenizer_;
  mutable std::atomic<const SiglipText*> tokenizer_ready_{nullptr};
};

}  // namespace

std::unique_ptr<Backend> make_siglip_backend(const std::string& dir, const ModelOptions& options,
                                             const Int8Capture* capture) {
  return std::make_unique<SiglipBackend>(dir, options, capture);
}

}  // namespace zeroshot::api
