// zeroshot: exact zero-shot classification with contrastive models (CLIP), in C++.
//
//   auto model = zeroshot::Model::load("openai/clip-vit-base-patch32");   // or a Hugging Face model folder
//   zeroshot::ZeroShotClassifier clf(*model, {"cat", "dog", "a red car"});  // default template
//   for (const auto& s : clf.classify_image("photo.jpg")) printf("%s %.3f\n", s.label.c_str(), s.score);
//
// Every function throws zeroshot::Error (zeroshot/error.h) with a one-line message naming the input at fault.
// Model and ZeroShotClassifier are safe to use from several threads at once (all methods are const).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "zeroshot/error.h"

namespace zeroshot {

// The default model when none is named (a Hugging Face hub id).
inline constexpr const char* kDefaultModel = "openai/clip-vit-base-patch32";
// The Hugging Face zero-shot-image-classification pipeline's default template.
inline constexpr const char* kDefaultImageTemplate = "This is a photo of {}.";

struct ModelOptions {
  int threads = 0;                         // <= 0: all cores
  uint64_t max_image_pixels = 100'000'000; // images larger than this are refused before decoding
  // Hub ids only:
  std::string revision = "main";
  bool offline = false;                    // also HF_HUB_OFFLINE=1
  bool progress = true;                    // download progress bar on stderr when it is a terminal
};

// Row-major embeddings: rows x dim floats.
struct Embeddings {
  size_t rows = 0;
  size_t dim = 0;
  std::vector<float> data;
  const float* row(size_t i) const { return data.data() + i * dim; }
};

class Model {
 public:
  // `name_or_path`: a Hugging Face model folder, or a hub id (resolved through the HF cache, downloaded if needed).
  static std::unique_ptr<Model> load(const std::string& name_or_path, const ModelOptions& opt = {});
  ~Model();

  const std::string& name() const;       // as given to load()
  const std::string& directory() const;  // the local folder the files were read from
  const char* model_type() const;        // "clip"
  size_t embedding_dim() const;          // projection dim
  int image_size() const;                // the square input side of the vision tower
  float logit_scale() const;             // exp(logit_scale): multiplies cosines before the softmax

  // Projected, un-normalized embeddings (HF get_text_features / get_image_features).
  Embeddings embed_texts(const std::vector<std::string>& texts) const;
  Embeddings embed_image_files(const std::vector<std::string>& paths) const;

  // Embeds many image files in batches of `batch_size`, decoding the next batch on worker threads while the
  // current one is encoded. `on_result(i, embedding, error)` is called once per path, in input order, on the
  // calling thread: `embedding` is nullptr and `error` says why when that file could not be read or decoded (the
  // other files go on). Returning false from on_result stops early.
  using ImageResultFn = std::function<bool(size_t index, const float* embedding, const std::string& error)>;
  void embed_image_files(const std::vector<std::string>& paths, size_t batch_size, const ImageResultFn& on_result) const;

  // The steps, for callers that pipeline them (decode on some threads, encode batches on others):
  std::vector<int32_t> tokenize(const std::string& text) const;               // bos ... eos, <= 77 ids
  std::vector<float> preprocess_image_file(const std::string& path) const;    // [3, S, S] pixel_values
  std::vector<float> preprocess_image_memory(const uint8_t* data, size_t size, const std::string& name) const;
  Embeddings embed_pixel_values(const float* pixel_values, size_t n) const;   // n x [3, S, S]
  Embeddings embed_token_ids(const std::vector<std::vector<int32_t>>& ids) const;

  struct Impl;

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct LabelScore {
  std::string label;
  float score = 0.f;
};

// Labels + templates -> label embeddings computed once (K x T prompts), then any number of inputs scored against
// them: softmax over labels of exp(logit_scale) * cosine, sorted by score (the Hugging Face pipeline's output).
class ZeroShotClassifier {
 public:
  // `templates` empty: the default template. Each template must contain "{}".
  ZeroShotClassifier(const Model& model, std::vector<std::string> labels, std::vector<std::string> templates = {});
  // Classes with synonyms: classes[k][0] is the label shown; every name of a class is put through every template
  // and all of them are ensembled into the class's embedding.
  ZeroShotClassifier(const Model& model, std::vector<std::vector<std::string>> classes,
                     std::vector<std::string> templates);

  const std::vector<std::string>& labels() const { return labels_; }
  const std::vector<std::string>& templates() const { return templates_; }
  // K x dim, L2-normalized.
  const Embeddings& label_embeddings() const { return label_embeds_; }

  // `embedding`: one projected embedding (normalized or not). top_k == 0: all labels.
  std::vector<LabelScore> classify(const float* embedding, size_t top_k = 0) const;
  std::vector<LabelScore> classify_image(const std::string& path, size_t top_k = 0) const;
  // Cosine similarity to each label, in label order (for thresholds).
  std::vector<float> cosines(const float* embedding) const;

 private:
  void build(std::vector<std::vector<std::string>> classes);
  const Model& model_;
  std::vector<std::string> labels_;
  std::vector<std::string> templates_;
  Embeddings label_embeds_;
};

}  // namespace zeroshot
