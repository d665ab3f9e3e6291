#include "api/clap_backend.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>

#include "audio/audio.h"
#include "audio/clap_feature_extractor.h"
#include "io/safetensors.h"
#include "models/clap.h"
#include "models/int8_weights.h"
#include "text/roberta_tokenizer.h"
#include "util/trace.h"
#include "zeroshot/error.h"

namespace zeroshot::api {

namespace fs = std::filesystem;

namespace {

class ClapBackend final : public Backend {
 public:
  ClapBackend(const std::string& dir, const ModelOptions& opt, const Int8Capture* capture) : dir_(dir), opt_(opt) {
    if (!(opt.max_audio_seconds > 0)) throw Error("max_audio_seconds", "must be positive");
    const fs::path d(dir);
    const std::string config = (d / "config.json").string();
    cfg_ = models::ClapConfig::load(config);
    const fs::path pre = d / "preprocessor_config.json";
    audio::ClapFeatureConfig fcfg;  // HF's ClapFeatureExtractor defaults when the file is absent
    if (fs::exists(pre)) fcfg = audio::ClapFeatureConfig::load(pre.string());
    if (fcfg.feature_size != cfg_.audio.num_mel_bins)
      throw Error(pre.string(), "feature_size " + std::to_string(fcfg.feature_size) +
                                    " does not match audio_config.num_mel_bins " +
                                    std::to_string(cfg_.audio.num_mel_bins));
    if (fcfg.fusion() != cfg_.audio.enable_fusion)
      throw Error(pre.string(), std::string("truncation \"") + fcfg.truncation +
                                    "\" does not match audio_config.enable_fusion " +
                                    (cfg_.audio.enable_fusion ? "true" : "false"));
    const int frames = fcfg.chunk_frames();
    if (frames < 1 || frames > cfg_.audio.spec_size * cfg_.audio.freq_ratio())
      throw Error(pre.string(), std::to_string(frames) + " frames per clip do not fit audio_config.spec_size " +
                                    std::to_string(cfg_.audio.spec_size));
    cfg_.audio.input_frames = frames;
    definition_files_ = {config, pre.string()};
    {
      std::error_code ec;
      if (fs::is_regular_file(d / "vocab.json", ec) && fs::is_regular_file(d / "merges.txt", ec))
        definition_files_.insert(definition_files_.end(), {(d / "vocab.json").string(), (d / "merges.txt").string()});
      else if (fs::is_regular_file(d / "tokenizer.json", ec))
        definition_files_.push_back((d / "tokenizer.json").string());
      else (void)text::RobertaTokenizer::from_dir(dir);  // for its error message
    }
    {
      trace::Phase p("open weights");
      weights_ = std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(dir));
    }
    auto mopt = model_build_options<models::ClapOptions>(dir, opt, capture);
    PackedWeightsPlan packed = packed_weights_plan(*weights_, opt, capture);
    use_packed_weights(mopt, packed);
    {
      trace::Phase p("build model");
      model_ = std::make_unique<models::ClapModel>(cfg_, weights_, mopt);
    }
    save_packed_weights(packed);
    extractor_ = std::make_unique<audio::ClapFeatureExtractor>(fcfg);
  }

  const char* model_type() const override { return "clap"; }
  Modality modality() const override { return Modality::Audio; }
  size_t embedding_dim() const override { return static_cast<size_t>(cfg_.projection_dim); }
  int image_size() const override { return 0; }
  ScoreHead score_head() const override { return {std::exp(model_->logit_scale_a()), 0.0f, false}; }
  const char* default_template() const override { return kDefaultAudioTemplate; }
  const io::WeightStore& weights() const override { return *weights_; }
  std::vector<std::string> definition_files() const override { return definition_files_; }
  std::vector<std::string> prefetch_weights() const override {
    std::vector<std::string> v;
    for (const std::string& n : model_->weights_in_place())
      if (n.rfind("audio_model.", 0) == 0 || n.rfind("audio_projection.", 0) == 0) v.push_back(n);
    return v;
  }
  bool int8_from_file() const override { return model_->int8_from_file(); }

  std::vector<int32_t> tokenize(const std::string& text) const override {
    std::vector<int32_t> ids = tokenizer().encode(text);
    // RoBERTa positions start after the pad id: the table holds max_positions - pad - 1 tokens (512 for 514).
    const size_t limit = static_cast<size_t>(std::max(0, cfg_.text.max_positions - cfg_.text.pad_token_id - 1));
    if (ids.size() > limit)
      throw Error("text \"" + (text.size() > 40 ? text.substr(0, 40) + "..." : text) + "\"",
                  std::to_string(ids.size()) + " tokens, more than the model's " + std::to_string(limit));
    return ids;
  }
  void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) const override {
    if (!ids.empty()) model_->encode_texts(ids, out);
  }

  Input load_file(const std::string& path) const override {
    return features(audio::decode_file(path, decode_options()));
  }
  Input load_memory(const uint8_t* data, size_t size, const std::string& name) const override {
    return features(audio::decode_memory(data, size, name, decode_options()));
  }
  Input load_rgb(const uint8_t*, int, int, const std::string& name) const override {
    throw Error(name, "an audio model (clap): it takes audio, not images");
  }
  void encode(const Input* const* inputs, size_t n, float* out) const override {
    if (n == 0) return;
    trace::Phase p("encode audio");
    const std::vector<float> feats = concat_inputs(inputs, n);
    const size_t plane = static_cast<size_t>(cfg_.audio.input_frames) * static_cast<size_t>(cfg_.audio.num_mel_bins);
    std::unique_ptr<bool[]> longer(new bool[n]);
    for (size_t i = 0; i < n; ++i) longer[i] = inputs[i]->is_longer;
    model_->encode_audio(feats.data(), static_cast<int>(n), static_cast<int>(feats.size() / n / plane), longer.get(),
                         out);
  }
  void encode_pixel_values(const float*, size_t, float*) const override {
    throw Error("pixel_values", "an audio model (clap): it takes audio, not images");
  }

 private:
  audio::DecodeOptions decode_options() const {
    audio::DecodeOptions d;
    d.target_rate = extractor_->config().sampling_rate;
    d.max_seconds = opt_.max_audio_seconds;
    return d;
  }
  Input features(const audio::Waveform& w) const {
    const audio::CropMode crop =
        opt_.audio_crop == AudioCrop::Random ? audio::CropMode::Random : audio::CropMode::Deterministic;
    audio::ClapFeatures f = extractor_->extract(w.samples.data(), w.samples.size(), crop, opt_.audio_seed);
    return {std::move(f.data), f.is_longer};
  }
  const text::RobertaTokenizer& tokenizer() const {
    // (A mutex, not call_once: a failed load throws and the next call tries again.)
    std::lock_guard lock(tok_mutex_);
    if (!tokenizer_) {
      trace::Phase p("load tokenizer");
      tokenizer_ = std::make_unique<text::RobertaTokenizer>(text::RobertaTokenizer::from_dir(dir_));
    }
    return *tokenizer_;
  }

  std::string dir_;
  ModelOptions opt_;
  models::ClapConfig cfg_;
  std::vector<std::string> definition_files_;
  std::shared_ptr<const io::WeightStore> weights_;
  std::unique_ptr<models::ClapModel> model_;
  std::unique_ptr<audio::ClapFeatureExtractor> extractor_;
  mutable std::mutex tok_mutex_;
  mutable std::unique_ptr<text::RobertaTokenizer> tokenizer_;
};

}  // namespace

std::unique_ptr<Backend> make_clap_backend(const std::string& dir, const ModelOptions& options,
                                           const Int8Capture* capture) {
  return std::make_unique<ClapBackend>(dir, options, capture);
}

}  // namespace zeroshot::api
