#include "classify/label_cache.h"
#include "classify/zero_shot.h"
#include "util/trace.h"
#include "zeroshot/zeroshot.h"

namespace zeroshot {

namespace {

std::vector<std::vector<std::string>> singletons(std::vector<std::string> labels) {
  std::vector<std::vector<std::string>> out;
  out.reserve(labels.size());
  for (auto& l : labels) out.push_back({std::move(l)});
  return out;
}

std::vector<LabelScore> to_public(const std::vector<classify::LabelScore>& r) {
  std::vector<LabelScore> out;
  out.reserve(r.size());
  for (const auto& s : r) out.push_back({s.label, s.score});
  return out;
}

}  // namespace

ZeroShotClassifier::ZeroShotClassifier(const Model& model, std::vector<std::string> labels,
                                       std::vector<std::string> templates, const ClassifierOptions& options)
    : ZeroShotClassifier(model, singletons(std::move(labels)), std::move(templates), options) {}

ZeroShotClassifier::ZeroShotClassifier(const Model& model, std::vector<std::vector<std::string>> classes,
                                       std::vector<std::string> templates, const ClassifierOptions& options)
    : model_(model), templates_(std::move(templates)) {
  if (templates_.empty()) templates_.emplace_back(model_.default_template());
  build(std::move(classes), options);
}

void ZeroShotClassifier::build(std::vector<std::vector<std::string>> classes, const ClassifierOptions& options) {
  trace::Phase p("label embeddings");
  if (classes.empty()) throw Error("labels", "no labels given");
  for (const auto& t : templates_) classify::validate_template(t);
  for (const auto& names : classes)
    if (names.empty() || names[0].empty()) throw Error("labels", "empty label");
  const size_t dim = model_.embedding_dim();
  label_embeds_.rows = classes.size();
  label_embeds_.dim = dim;
  for (const auto& names : classes) labels_.push_back(names[0]);

  const std::string cache_dir = classify::resolve_cache_dir(options.cache_dir);
  std::string cache_file;
  std::array<uint8_t, 32> key{};
  if (!cache_dir.empty()) {
    key = classify::label_cache_key(model_.fingerprint(), classes, templates_);
    cache_file = classify::label_cache_path(cache_dir, key);
    trace::Phase r("label cache read");
    if (classify::load_label_embeddings(cache_file, key, classes.size(), dim, &label_embeds_.data)) {
      from_cache_ = true;
      return;
    }
  }

  // Classes are encoded in groups of about kPromptsPerGroup prompts (names x templates, the model batches each
  // group at true lengths), so that ImageNet x 80 templates never holds 80,000 prompt embeddings at once; classes
  // with synonyms are ensembled over names x templates.
  constexpr size_t kPromptsPerGroup = 1024;
  label_embeds_.data.resize(classes.size() * dim);
  size_t total = 0, done = 0;
  for (const auto& names : classes) total += names.size() * templates_.size();
  if (options.progress) options.progress(0, total);
  for (size_t k0 = 0; k0 < classes.size();) {
    std::vector<std::string> prompts;
    size_t k1 = k0;
    while (k1 < classes.size() &&
           (k1 == k0 || prompts.size() + classes[k1].size() * templates_.size() <= kPromptsPerGroup)) {
      for (const auto& n : classes[k1])
        for (const auto& t : templates_) prompts.push_back(classify::fill_template(t, n));
      ++k1;
    }
    const Embeddings pe = model_.embed_texts(prompts);
    size_t row = 0;
    for (size_t k = k0; k < k1; ++k) {
      const size_t count = classes[k].size() * templates_.size();
      std::vector<float> e = classify::ensemble_label_embeddings(pe.row(row), 1, count, dim);
      std::copy(e.begin(), e.end(), label_embeds_.data.begin() + static_cast<std::ptrdiff_t>(k * dim));
      row += count;
    }
    done += prompts.size();
    if (options.progress) options.progress(done, total);
    k0 = k1;
  }
  if (!cache_file.empty()) {
    trace::Phase w("label cache write");
    classify::store_label_embeddings(cache_file, key, classes.size(), dim, label_embeds_.data.data());
  }
}

std::vector<float> ZeroShotClassifier::cosines(const float* embedding) const {
  return classify::cosines(embedding, label_embeds_.data.data(), label_embeds_.rows, label_embeds_.dim);
}

std::vector<LabelScore> ZeroShotClassifier::classify(const float* embedding, size_t top_k) const {
  const ScoreHead head = model_.score_head();
  std::vector<float> p = head.sigmoid
                             ? classify::zero_shot_sigmoid(embedding, label_embeds_.data.data(), label_embeds_.rows,
                                                           label_embeds_.dim, head.scale, head.bias)
                             : classify::zero_shot_probs(embedding, label_embeds_.data.data(), label_embeds_.rows,
                                                         label_embeds_.dim, head.scale);
  return to_public(classify::rank(labels_, p, top_k));
}

std::vector<LabelScore> ZeroShotClassifier::classify_image(const std::string& path, size_t top_k) const {
  const Embeddings e = model_.embed_image_files({path});
  return classify(e.row(0), top_k);
}

}  // namespace zeroshot

namespace zeroshot {

std::vector<LabelScore> ZeroShotClassifier::classify_audio(const std::string& path, size_t top_k) const {
  const Embeddings e = model_.embed_audio_files({path});
  return classify(e.row(0), top_k);
}

}  // namespace zeroshot
