// Zero-shot scoring, independent of the model that made the embeddings (CLIP and SigLIP images, CLAP audio).
//
// For K labels and T templates: each prompt template(label) is embedded; each embedding is L2-normalized, the T of
// a label are averaged and the mean normalized again (CLIP's prompt ensembling). An input embedding x scores
//   p = softmax_k( scale * cos(x, label_k) )    with scale = exp(logit_scale),
// or, for a model with a sigmoid head (SigLIP), p_k = sigmoid(scale * cos(x, label_k) + logit_bias) per label,
// exactly the Hugging Face zero-shot pipeline's probabilities; results are sorted by score, descending, ties in label
// order (Python's stable sorted()).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace zeroshot::classify {

struct LabelScore {
  std::string label;
  float score = 0.f;
};

// Python's str.format with one positional field: "{}" -> label, "{{" -> "{", "}}" -> "}".
// Throws zeroshot::Error when the template has no "{}" or a stray brace.
std::string fill_template(const std::string& tmpl, const std::string& label);
void validate_template(const std::string& tmpl);

// In place: x /= max(||x||, 1e-12) (torch.nn.functional.normalize's eps), for `rows` rows of `dim`.
void l2_normalize_rows(float* x, size_t rows, size_t dim);

// prompt_embeds: (K * T) rows, label-major (label k, template t at row k*T + t), un-normalized.
// Returns K normalized label embeddings (K * dim floats).
std::vector<float> ensemble_label_embeddings(const float* prompt_embeds, size_t num_labels, size_t num_templates,
                                             size_t dim);

// Softmax over labels of scale * cos(x, label). label_embeds must be normalized (ensemble_label_embeddings does).
std::vector<float> zero_shot_probs(const float* x, const float* label_embeds, size_t num_labels, size_t dim,
                                   float scale);

// sigmoid(scale * cos(x, label) + bias) per label (a sigmoid head: SigLIP). label_embeds normalized.
std::vector<float> zero_shot_sigmoid(const float* x, const float* label_embeds, size_t num_labels, size_t dim,
                                     float scale, float bias);
// 1 / (1 + exp(-(scale * cos + bias))), as torch.sigmoid of the float logit.
float sigmoid_score(float cos, float scale, float bias);

// Cosines of x against each (normalized) label embedding.
std::vector<float> cosines(const float* x, const float* label_embeds, size_t num_labels, size_t dim);

// Sorted by score descending, stable; top_k == 0 keeps all.
std::vector<LabelScore> rank(const std::vector<std::string>& labels, const std::vector<float>& scores,
                             size_t top_k = 0);

}  // namespace zeroshot::classify
