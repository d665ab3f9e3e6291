// The audio half of zeroshot::Model: a CLAP checkpoint (HF ClapModel layout) behind the same text/embedding calls
// as CLIP. Model::load builds one when config.json says model_type "clap"; every Model method then forwards here.
// Semantics are the Hugging Face zero-shot-audio-classification pipeline's (fixtures/clap/README.md): decode like
// ffmpeg to mono 48 kHz, ClapFeatureExtractor for one clip (batch of one: short clips of fused models get
// is_longer = true), RoBERTa tokenization without truncation, exp(logit_scale_a) as the score scale.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "audio/audio.h"
#include "audio/clap_feature_extractor.h"
#include "models/clap.h"
#include "text/roberta_tokenizer.h"

namespace zeroshot::io {
class WeightStore;
}

namespace zeroshot::api {

struct ClapBackendOptions {
  int threads = 0;
  double max_seconds = 600;                                   // longer audio is refused
  audio::CropMode crop = audio::CropMode::Deterministic;      // clips over 10 s: middle crops, or HF's draws
  uint64_t seed = 0;                                          // CropMode::Random: np.random.seed before each clip
  nn::Precision precision = nn::Precision::F32;               // of the encoder layers' GEMMs (models/clap.h)
};

class ClapBackend {
 public:
  // `dir` holds config.json (model_type "clap"), model.safetensors, preprocessor_config.json (HF defaults when
  // absent) and the RoBERTa tokenizer files (checked now, parsed on first use).
  ClapBackend(const std::string& dir, const ClapBackendOptions& opt);
  ~ClapBackend();

  size_t embedding_dim() const;
  float logit_scale() const;  // exp(logit_scale_a)
  const std::shared_ptr<const io::WeightStore>& weights() const { return weights_; }
  const std::vector<std::string>& tokenizer_files() const { return tokenizer_files_; }

  std::vector<int32_t> tokenize(const std::string& text) const;  // <s> ... </s>, not truncated (the pipeline's)
  void embed_token_ids(const std::vector<std::vector<int32_t>>& ids, float* out) const;

  // Decoded and featurized (thread-safe); throws zeroshot::Error naming `path`.
  audio::ClapFeatures features_of_file(const std::string& path) const;
  // n clips of features (all of this model's channel count) -> n x dim projected, un-normalized embeddings.
  void encode(const std::vector<const audio::ClapFeatures*>& clips, float* out) const;

  // Batches of `batch_size`, decoding + featurizing the next batch on worker threads while one is encoded;
  // on_result(i, embedding or nullptr, error) in input order on the calling thread; false stops early.
  using ResultFn = std::function<bool(size_t, const float*, const std::string&)>;
  void embed_files(const std::vector<std::string>& paths, size_t batch_size, const ResultFn& on_result) const;

 private:
  const text::RobertaTokenizer& tokenizer() const;

  std::string dir_;
  ClapBackendOptions opt_;
  models::ClapConfig cfg_;
  std::shared_ptr<const io::WeightStore> weights_;
  std::unique_ptr<models::ClapModel> model_;
  std::unique_ptr<audio::ClapFeatureExtractor> extractor_;
  std::vector<std::string> tokenizer_files_;
  mutable std::mutex tok_mutex_;
  mutable std::unique_ptr<text::RobertaTokenizer> tokenizer_;
};

}  // namespace zeroshot::api
