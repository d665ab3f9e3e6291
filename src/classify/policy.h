// Content-moderation policies: named categories of prompts with thresholds, read from TOML, as plain data; and the
// score of one category given cosines (the embeddings are the caller's: see zeroshot/tagging.h's Moderator).
//
// The file (examples/moderation-policy.toml is a complete one):
//
//   description = "..."                      # optional, for people
//   # Defaults for every category (each optional; a category's own key wins):
//   templates = ["a photo of {}."]           # prompts are put through every template, ensembled per prompt;
//                                            #   without templates prompts are used verbatim
//   negative_prompts = ["a photo of a toy"]  # the baseline of the probability score (ensembled into one)
//   on = "probability"                       # or "cosine"
//   threshold = 0.5
//
//   [[category]]
//   name = "weapons"                         # required, unique
//   prompts = ["a photo of a gun", "a photo of a knife"]   # required, one or more
//   description = "..."                      # optional; also negative_prompts, templates, on, threshold
//
// Score of a category for an input x, with P_j its prompts' embeddings and N its negative set's embedding:
//   on = "probability": two_way_probability(max_j cos(x, P_j), cos(x, N), exp(logit_scale))   (multi_label.h)
//   on = "cosine":      max_j cos(x, P_j)
// The prompts of a category are alternatives (any one matching flags it), hence the max; the templates of one
// prompt are paraphrases, hence the ensemble. Flagged when score >= threshold. Without negative_prompts the
// negatives are the neutral names (multi_label.h) through the templates, or "a photo of something." and "a photo of
// an object." when prompts are verbatim. Thresholds: [0, 1] for probability (default 0.5), [-1, 1] for cosine
// (required: cosines need calibrating per model).
//
// Every mistake is one zeroshot::Error "<file>:<line>: <problem>": TOML syntax, unknown keys, wrong types, missing
// or empty prompts, a template without "{}", thresholds out of range, duplicate names, no categories.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "classify/multi_label.h"

namespace zeroshot::classify {

struct PolicyCategory {
  std::string name;
  std::string description;
  std::vector<std::string> prompts;           // one or more
  std::vector<std::string> templates;         // resolved: {"{}"} when prompts are used verbatim
  std::vector<std::string> negative_prompts;  // resolved (defaults applied); empty when on == Cosine
  ScoreOn on = ScoreOn::Probability;
  float threshold = kDefaultProbabilityThreshold;
  size_t line = 0;  // of the [[category]] header
};

struct Policy {
  std::string source;  // the file name, for messages
  std::string description;
  std::vector<PolicyCategory> categories;  // in file order
};

// Policy files are small; larger ones are refused before parsing.
inline constexpr size_t kMaxPolicyBytes = 1 << 20;

Policy parse_policy(const std::string& toml_text, const std::string& source);
Policy load_policy_file(const std::string& path);

// prompt_cosines: cos(x, P_j) for each prompt j of c (in order); negative_cosine: cos(x, N) (unused for cosine).
float category_score(const PolicyCategory& c, const float* prompt_cosines, size_t num_prompts, float negative_cosine,
                     float scale);

}  // namespace zeroshot::classify
