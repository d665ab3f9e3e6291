#include "api/open_clip_siglip_backend.h"

#include <atomic>
#include <cmath>
#include <filesystem>
#include <mutex>

#include "api/clip_backend.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/open_clip_siglip.h"
#include "text/open_clip_clean.h"
#include "text/siglip_tokenizer.h"
#include "util/trace.h"

namespace zeroshot::api {

namespace fs = std::filesystem;

namespace {

class OpenClipSiglipBackend final : public Backend {
 public:
  OpenClipSiglipBackend(const std::string& dir, const ModelOptions& opt, const Int8Capture* capture) : dir_(dir) {
    const fs::path d(dir);
    const fs::path config = d / models::kOpenClipConfigFile;
    cfg_ = models::load_open_clip_siglip_config(config.string());
    // open_clip builds the tokenizer with AutoTokenizer over the repo's files. The timm/ViT-*-SigLIP repos' were
    // made by open_clip's SigLipTokenizer, a T5TokenizerFast (tokenizer_config.json: T5Tokenizer) over the big_vision
    // spiece.model; on text open_clip has canonicalized (lower-case, no ASCII punctuation, single spaces) its ids
    // are SiglipTokenizer's (make_open_clip_siglip.py's siglip-test-t5-tokenizer checks it), so either class is
    // read here as SiglipTokenizer over spiece.model.
    const fs::path tok_cfg = d / "tokenizer_config.json";
    if (fs::exists(tok_cfg)) {
      const io::Json j = io::load_json(tok_cfg.string());
      if (j.is_object() && j.contains("tokenizer_class") && j["tokenizer_class"] != "SiglipTokenizer" &&
          j["tokenizer_class"] != "T5Tokenizer" && j["tokenizer_class"] != "T5TokenizerFast")
        throw Error(tok_cfg.string(),
                    "tokenizer_class " + j["tokenizer_class"].dump() +
                        " is not supported for OpenCLIP SigLIP (SiglipTokenizer and T5Tokenizer are)");
    }
    if (!fs::is_regular_file(d / "spiece.model"))
      throw Error((d / "spiece.model").string(),
                  "not found (an OpenCLIP SigLIP folder needs its tokenizer's SentencePiece model, as the hub repos "
                  "carry it)");
    definition_files_ = {config.string(), (d / "spiece.model").string(), tok_cfg.string()};
    preprocess_ = open_clip_image_preprocess(cfg_.preprocess, opt);
    auto mo = model_build_options<models::ClipOptions>(dir, opt, capture);
    {
      trace::Phase p("open weights");
      auto src = std::make_shared<const io::WeightStore>(io::WeightStore::open(open_clip_weights(dir)));
      weights_ = models::open_clip_siglip_to_hf(std::move(src), cfg_.siglip);
    }
    PackedWeightsPlan packed = packed_weights_plan(*weights_, opt, capture);
    use_packed_weights(mo, packed);
    {
      trace::Phase p("build model");
      model_ = std::make_unique<models::SiglipModel>(cfg_.siglip, weights_, mo);
    }
    save_packed_weights(packed);
  }

  const char* model_type() const override { return "open_clip_siglip"; }
  Modality modality() const override { return Modality::Image; }
  size_t embedding_dim() const override { return static_cast<size_t>(cfg_.siglip.embedding_dim()); }
  int image_size() const override { return cfg_.siglip.vision.image_size; }
  ScoreHead score_head() const override { return {std::exp(model_->logit_scale()), model_->logit_bias(), true}; }
  const char* default_template() const override { return kDefaultImageTemplate; }
  const io::WeightStore& weights() const override { return *weights_; }
  std::vector<std::string> definition_files() const override { return definition_files_; }
  std::vector<std::string> prefetch_weights() const override {
    return names_with_prefix(model_->weights_in_place(), {"vision_model."});
  }
  bool int8_from_file() const override { return model_->int8_from_file(); }

  // The ids before the padding (SiglipTokenizer's, eos included, at most context_length).
  std::vector<int32_t> tokenize(const std::string& text) const override {
    return tokenizer().encode(text::open_clip_canonicalize(text));
  }
  void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) const override {
    if (ids.empty()) return;
    // open_clip runs the padded ids with no attention mask: the pad tokens are attended to.
    const text::SiglipTokenizer& tok = tokenizer();
    std::vector<std::vector<int32_t>> padded;
    padded.reserve(ids.size());
    for (const auto& s : ids) padded.push_back(tok.pad(s));
    model_->encode_texts(padded, tok.pad_id(), out, cfg_.context_length);
  }

  Input load_file(const std::string& path) const override { return {preprocess_.file(path), false}; }
  Input load_memory(const uint8_t* data, size_t size, const std::string& name) const override {
    return {preprocess_.bytes(data, size, name), false};
  }
  Input load_rgb(const uint8_t* rgb, int width, int height, const std::string& name) const override {
    return {preprocess_.rgb(rgb, width, height, name), false};
  }
  void encode(const Input* const* inputs, size_t n, float* out) const override {
    encode_pixel_values(concat_inputs(inputs, n).data(), n, out);
  }
  void encode_pixel_values(const float* pixel_values, size_t n, float* out) const override {
    if (n) model_->encode_images(pixel_values, static_cast<int>(n), out);
  }

 private:
  // Parsed on first use (an image-only run never needs it); a failed load throws and the next call tries again.
  const text::SiglipTokenizer& tokenizer() const {
    if (const text::SiglipTokenizer* t = tokenizer_ready_.load(std::memory_order_acquire)) return *t;
    std::lock_guard lock(mutex_);
    if (!tokenizer_) {
      trace::Phase p("load tokenizer");
      auto tok = std::make_unique<text::SiglipTokenizer>(text::SiglipTokenizer::from_dir(dir_));
      // HFTokenizer truncates and pads to context_length, whatever the tokenizer's own model_max_length; the two
      // agree in every SigLIP repo, and SiglipTokenizer here truncates at its model_max_length.
      if (tok->max_length() != static_cast<size_t>(cfg_.context_length))
        throw Error((fs::path(dir_) / "tokenizer_config.json").string(),
                    "model_max_length " + std::to_string(tok->max_length()) + " differs from text_cfg.context_length " +
                        std::to_string(cfg_.context_length) + " (not supported)");
      tokenizer_ = std::move(tok);
      tokenizer_ready_.store(tokenizer_.get(), std::memory_order_release);
    }
    return *tokenizer_;
  }

  std::string dir_;
  models::OpenClipSiglipConfig cfg_;
  std::vector<std::string> definition_files_;
  ImagePreprocess preprocess_;
  std::shared_ptr<const io::WeightStore> weights_;
  std::unique_ptr<models::SiglipModel> model_;
  mutable std::mutex mutex_;
  mutable std::unique_ptr<text::SiglipTokenizer> tokenizer_;
  mutable std::atomic<const text::SiglipTokenizer*> tokenizer_ready_{nullptr};
};

}  // namespace

std::unique_ptr<Backend> make_open_clip_siglip_backend(const std::string& dir, const ModelOptions& options,
                                                       const Int8Capture* capture) {
  return std::make_unique<OpenClipSiglipBackend>(dir, options, capture);
}

}  // namespace zeroshot::api
