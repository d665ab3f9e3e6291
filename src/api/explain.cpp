#include "zeroshot/explain.h"

#include <algorithm>
#include <map>

#include "classify/explain.h"
#include "classify/zero_shot.h"

namespace zeroshot {

namespace {

// The empty label through the classifier's templates, ensembled like a label (normalize each prompt, average,
// normalize): CLIP Surgery's redundant features for a single label.
std::vector<float> empty_label_embedding(const Model& model, const ZeroShotClassifier& clf) {
  std::vector<std::string> prompts;
  for (const std::string& t : clf.templates()) prompts.push_back(classify::fill_template(t, ""));
  const Embeddings e = model.embed_texts(prompts);
  std::vector<float> rows = e.data;
  classify::l2_normalize_rows(rows.data(), e.rows, e.dim);
  std::vector<float> mean(e.dim, 0.f);
  for (size_t r = 0; r < e.rows; ++r)
    for (size_t c = 0; c < e.dim; ++c) mean[c] += rows[r * e.dim + c];
  classify::l2_normalize_rows(mean.data(), 1, e.dim);
  return mean;
}

}  // namespace

std::vector<LabelMap> explain(const Model& model, const ZeroShotClassifier& clf, const float* pixel_values,
                              const ExplainOptions& options) {
  if (model.modality() != Modality::Image || model.patch_grid() <= 0)
    throw Error(model.name(), std::string("a ") + model.model_type() +
                                  " model has no patch tokens to explain with (explanation maps need a CLIP ViT)");
  const Embeddings& labels = clf.label_embeddings();
  if (labels.dim != model.embedding_dim()) throw Error("explain", "the classifier was built on another model");
  const Embeddings tokens = model.embed_patch_tokens(pixel_values, options.vv_blocks);
  const int g = model.patch_grid();
  const size_t n = tokens.rows - 1;
  const classify::MapMethod method =
      options.feature_surgery ? classify::MapMethod::Surgery : classify::MapMethod::Cosine;
  std::vector<float> empty;
  if (method == classify::MapMethod::Surgery && labels.rows == 1) empty = empty_label_embedding(model, clf);
  const std::vector<float> maps =
      classify::patch_label_maps(tokens.data.data(), n, tokens.dim, labels.data.data(), labels.rows, method,
                                 empty.empty() ? nullptr : empty.data());
  // Scores from row 0, the image embedding exactly as embed_pixel_values gives it.
  std::map<std::string, float> score;
  for (const LabelScore& s : clf.classify(tokens.row(0))) score[s.label] = s.score;
  std::vector<LabelMap> out(labels.rows);
  for (size_t k = 0; k < labels.rows; ++k) {
    LabelMap& m = out[k];
    m.label = clf.labels()[k];
    m.score = score[m.label];
    m.grid = g;
    m.values.assign(maps.begin() + static_cast<long>(k * n), maps.begin() + static_cast<long>((k + 1) * n));
    const auto [lo, hi] = std::minmax_element(m.values.begin(), m.values.end());
    m.min = *lo;
    m.max = *hi;
  }
  return out;
}

}  // namespace zeroshot
