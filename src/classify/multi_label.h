// Multi-label tagging: every label scored on its own (no softmax across labels), then compared with a threshold.
//
// CLIP was trained with a softmax over a batch, so a single cosine has no calibrated meaning. Two scores are offered:
//
// - Probability (the default): label k is a two-way zero-shot problem, "the label" against "a neutral baseline":
//     p_k = softmax([s*cos(x, pos_k), s*cos(x, neg_k)])[0] = 1 / (1 + exp(-s * (cos(x, pos_k) - cos(x, neg_k))))
//   with s = exp(logit_scale), pos_k the label's ensembled prompt embedding and neg_k the ensembled embedding of its
//   negative names put through the SAME templates (so the template's own share of the text embedding cancels in
//   the difference). The default negative names are neutral_names(): generic words that describe any picture a
//   little ("something", "an object"), so p_k >= 0.5 means "x is closer to the label than to a generic picture".
//   A threshold t is a margin on the cosines: p_k >= t  <=>  cos_pos - cos_neg >= log(t / (1 - t)) / s.
// - Cosine: the raw cosine cos(x, pos_k); thresholds must then be calibrated per model and label (CLIP cosines of
//   matching image/text pairs are typically 0.2-0.4), so there is no default threshold.
//
// A model with a sigmoid head (SigLIP, logit_bias b) scores p_k = sigmoid(s * cos(x, pos_k) + b) with its own
// calibration instead of the negative prompt (zero_shot.h's sigmoid_score; src/api/tagging.cpp picks it from
// Model::score_head()); CLIP models have no such head.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace zeroshot::classify {

enum class ScoreOn { Probability, Cosine };

// "probability" / "cosine".
const char* score_on_name(ScoreOn on);
// Returns false for any other text.
bool parse_score_on(const std::string& text, ScoreOn* on);

// The default negative names (put through the label templates): {"something", "an object"}.
const std::vector<std::string>& neutral_names();
// For prompts used verbatim (no templates), the neutral names go through this template: "a photo of something.".
inline constexpr const char* kNeutralPromptTemplate = "a photo of {}.";
// The default threshold of the probability score (cosine scores have none).
inline constexpr float kDefaultProbabilityThreshold = 0.5f;

// softmax([scale * cos_pos, scale * cos_neg])[0], computed without overflow for any scale.
float two_way_probability(float cos_pos, float cos_neg, float scale);

// Throws zeroshot::Error(where, ...) unless t is finite and in [0, 1] (probability) or [-1, 1] (cosine).
void check_threshold(ScoreOn on, double t, const std::string& where);

struct Tag {
  std::string label;
  float score = 0.f;
  float threshold = 0.f;
  bool flagged = false;  // score >= threshold
};

// scores and thresholds in label order -> tags sorted by score descending (stable: ties keep label order);
// top_k == 0 keeps all.
std::vector<Tag> rank_tags(const std::vector<std::string>& labels, const std::vector<float>& scores,
                           const std::vector<float>& thresholds, size_t top_k = 0);

// One line of a multi-label labels file. Columns are separated by TABs:
//   label                         default threshold, default negative
//   label<TAB>0.7                 its own threshold
//   label<TAB>0.7<TAB>a toy gun   and its own negative name (put through the templates like the label)
//   label<TAB><TAB>a toy gun      own negative, default threshold
// Blank lines and lines starting with '#' are skipped; spaces around columns are trimmed.
struct TagLabel {
  std::string name;
  std::optional<float> threshold;
  std::string negative;  // empty: the default
  size_t line = 0;
};
// Throws zeroshot::Error("<source>:<line>", ...) on a bad threshold, an empty label or a fourth column.
// Thresholds are range-checked as cosines here ([-1, 1]); the caller checks them again for its score.
std::vector<TagLabel> parse_tag_labels(const std::string& text, const std::string& source);
std::vector<TagLabel> load_tag_labels_file(const std::string& path);

// A command-line threshold: "0.6" (every label) or "LABEL=0.6" (split at the last '='). Label empty: global.
struct ThresholdSpec {
  std::string label;
  float value = 0.f;
};
ThresholdSpec parse_threshold_spec(const std::string& text);

// A finite number written in full ("0.5", "1", "-0.2", "5e-1"); nullopt for anything else.
std::optional<float> parse_number(const std::string& text);

}  // namespace zeroshot::classify
