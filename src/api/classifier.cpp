#include "classify/zero_shot.h"
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
                                       std::vector<std::string> templates)
    : ZeroShotClassifier(model, singletons(std::move(labels)), std::move(templates)) {}

ZeroShotClassifier::ZeroShotClassifier(const Model& model, std::vector<std::vector<std::string>> classes,
                                       std::vector<std::string> templates)
    : model_(model), templates_(std::move(templates)) {
  if (templates_.empty()) templates_.push_back(kDefaultImageTemplate);
  build(std::move(classes));
}

void ZeroShotClassifier::build(std::vector<std::vector<std::string>> classes) {
  if (classes.empty()) throw Error("labels", "no labels given");
  for (const auto& t : templates_) classify::validate_template(t);
  const size_t dim = model_.embedding_dim();
  label_embeds_.rows = classes.size();
  label_embeds_.dim = dim;
  label_embeds_.data.resize(classes.size() * dim);
  // All prompts of all classes are encoded in one call (the model batches them); classes with synonyms are
  // ensembled over names x templates.
  std::vector<std::string> prompts;
  for (const auto& names : classes) {
    if (names.empty() || names[0].empty()) throw Error("labels", "empty label");
    for (const auto& n : names)
      for (const auto& t : templates_) prompts.push_back(classify::fill_template(t, n));
  }
  const Embeddings pe = model_.embed_texts(prompts);
  size_t row = 0;
  for (size_t k = 0; k < classes.size(); ++k) {
    const size_t count = classes[k].size() * templates_.size();
    std::vector<float> e = classify::ensemble_label_embeddings(pe.row(row), 1, count, dim);
    std::copy(e.begin(), e.end(), label_embeds_.data.begin() + static_cast<std::ptrdiff_t>(k * dim));
    row += count;
    labels_.push_back(classes[k][0]);
  }
}

std::vector<float> ZeroShotClassifier::cosines(const float* embedding) const {
  return classify::cosines(embedding, label_embeds_.data.data(), label_embeds_.rows, label_embeds_.dim);
}

std::vector<LabelScore> ZeroShotClassifier::classify(const float* embedding, size_t top_k) const {
  std::vector<float> p = classify::zero_shot_probs(embedding, label_embeds_.data.data(), label_embeds_.rows,
                                                   label_embeds_.dim, model_.logit_scale());
  return to_public(classify::rank(labels_, p, top_k));
}

std::vector<LabelScore> ZeroShotClassifier::classify_image(const std::string& path, size_t top_k) const {
  const Embeddings e = model_.embed_image_files({path});
  return classify(e.row(0), top_k);
}

}  // namespace zeroshot
