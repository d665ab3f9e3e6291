// zeroshot/tagging.h: multi-label tagging and content moderation, scored independently per label.
//
//   auto model = zeroshot::Model::load("openai/clip-vit-base-patch32");
//   zeroshot::MultiLabelClassifier tagger(*model, {{"a dog"}, {"a frisbee"}, {"grass"}});
//   for (const auto& t : tagger.tag(embedding)) if (t.flagged) printf("%s %.3f\n", t.label.c_str(), t.score);
//
//   auto mod = zeroshot::Moderator::load(*model, "examples/moderation-policy.toml");
//   for (const auto& c : mod.moderate(embedding)) if (c.flagged) ...
//
// Scores (src/classify/multi_label.h has the details):
// - probability (default): per label, a two-way softmax of the label's prompt against a negative prompt set,
//     p = softmax([s * cos(x, label), s * cos(x, negative)])[0],  s = exp(logit_scale),
//   both ensembled over the same templates; the default negatives are the neutral names "something" and
//   "an object". p >= 0.5 means x is closer to the label than to a generic picture. Default threshold 0.5.
//   A model with a sigmoid head (SigLIP: Model::score_head()) has its own calibration instead, and no negatives:
//     p = sigmoid(s * cos(x, label) + logit_bias), the zero-shot pipeline's score for that label.
// - cosine: cos(x, label), with thresholds you calibrate (there is no default).
// Label embeddings come from ZeroShotClassifier (computed once per labels x templates, and cached on disk, like
// classification).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "zeroshot/zeroshot.h"

namespace zeroshot {

enum class ScoreOn { Probability, Cosine };

// One label (or moderation category) of one input.
struct TagScore {
  std::string label;
  float score = 0.f;
  float threshold = 0.f;
  bool flagged = false;  // score >= threshold
};

struct MultiLabelOptions {
  ScoreOn on = ScoreOn::Probability;
  // For every label without its own; unset: 0.5 for probability, and an error for cosine.
  std::optional<float> threshold;
  // Per label, in label order (empty, or one per label; nullopt: `threshold`).
  std::vector<std::optional<float>> thresholds;
  // Negative names put through the templates and ensembled into one baseline; empty: the neutral names.
  std::vector<std::string> negatives;
  // Per label, in label order (empty, or one per label; "": `negatives`).
  std::vector<std::string> label_negatives;
  // The label-embedding disk cache of the ZeroShotClassifiers underneath (labels, and the negatives).
  ClassifierOptions classifier;
};

class MultiLabelClassifier {
 public:
  // classes[k][0] is the label shown (further entries: synonyms, ensembled); templates empty: the default template.
  MultiLabelClassifier(const Model& model, std::vector<std::vector<std::string>> classes,
                       std::vector<std::string> templates = {}, MultiLabelOptions options = {});
  ~MultiLabelClassifier();
  MultiLabelClassifier(MultiLabelClassifier&&) noexcept;

  const std::vector<std::string>& labels() const;
  const std::vector<float>& thresholds() const;  // resolved, in label order
  ScoreOn score_on() const;

  // Scores in label order.
  std::vector<float> scores(const float* embedding) const;
  // Sorted by score descending (ties in label order); top_k == 0: all.
  std::vector<TagScore> tag(const float* embedding, size_t top_k = 0) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// A moderation policy (TOML; the format is in src/classify/policy.h, examples/moderation-policy.toml shows it) over
// a model. Every category is scored on its own: the best of its prompts against its negatives (probability; with a
// sigmoid head: the model's sigmoid of the best prompt, negatives unused) or the best prompt's cosine.
class Moderator {
 public:
  // Throws zeroshot::Error "<file>:<line>: <problem>" for a malformed policy.
  // `options`: the label-embedding disk cache of the ZeroShotClassifiers underneath.
  static Moderator load(const Model& model, const std::string& policy_path, const ClassifierOptions& options = {});
  static Moderator parse(const Model& model, const std::string& policy_toml, const std::string& source_name,
                         const ClassifierOptions& options = {});
  ~Moderator();
  Moderator(Moderator&&) noexcept;

  const std::vector<std::string>& categories() const;  // in policy order

  // In policy order (TagScore::label is the category).
  std::vector<TagScore> moderate(const float* embedding) const;

  struct Impl;

 private:
  explicit Moderator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zeroshot
