// Zero-shot evaluation of a labeled data set: template sets compared side by side over one set of input
// embeddings, and the results as CLIP_benchmark-style JSON.
//
// Every distinct prompt (class name x template, over all template sets) is embedded once; each set's class
// embeddings are then ensembled exactly as ZeroShotClassifier does (normalize each prompt embedding, average,
// normalize). Inputs are scored by cosine with each class (the ranking of exp(logit_scale) * cosine and of the
// softmax over it), so the input embeddings are computed once for all sets.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/datasets.h"
#include "eval/metrics.h"
#include "zeroshot/zeroshot.h"

namespace zeroshot::eval {

struct TemplateSet {
  std::string name;
  std::vector<std::string> templates;
};

// Items of --templates: "default" (`default_template`: the image pipeline's "This is a photo of {}.", or the
// model's, Model::default_template()), a built-in set (imagenet80, imagenet7, or a label set's name, e.g.
// cifar10), or a literal template containing {}. With more than one item an "ensemble" set of all their templates
// (each once, in order) is added last. No items: {"default"}.
// Throws zeroshot::Error on an unknown name, a bad template, or a name given twice.
std::vector<TemplateSet> resolve_template_sets(const std::vector<std::string>& items,
                                               const std::string& default_template = kDefaultImageTemplate);

// The distinct prompts of all sets, and for each set and class the rows of `prompts` that ensemble into it.
struct PromptPlan {
  std::vector<std::string> prompts;
  std::vector<std::vector<std::vector<size_t>>> rows;  // [set][class] -> prompt rows (names x templates order)
};
PromptPlan plan_prompts(const std::vector<Class>& classes, const std::vector<TemplateSet>& sets);

// One set's K x dim normalized class embeddings from the prompt embeddings (plan.prompts.size() x dim).
std::vector<float> class_embeddings(const PromptPlan& plan, size_t set, const float* prompt_embeds, size_t dim);

// Embeds the plan's prompts in chunks of `chunk` through `embed` (Model::embed_texts' shape), calling
// progress(done, total) after each chunk. Returns prompts x dim.
using EmbedTextsFn = std::function<Embeddings(const std::vector<std::string>&)>;
Embeddings embed_prompts(const PromptPlan& plan, const EmbedTextsFn& embed, size_t chunk,
                         const std::function<void(size_t, size_t)>& progress = {});

// n x K cosines of each input embedding (any norm) with each normalized class embedding.
std::vector<float> cosine_scores(const float* inputs, size_t n, const float* classes, size_t num_classes, size_t dim);

struct SetResult {
  TemplateSet set;
  SingleLabelMetrics single;                              // single-label data sets
  MultiLabelMetrics multi;                                // multi-label data sets
  std::vector<std::pair<int, SingleLabelMetrics>> folds;  // single-label, when the samples carry folds (ESC-50)
};

struct Evaluation {
  bool multi_label = false;
  std::vector<size_t> evaluated;  // indices into Dataset::samples that have an embedding, ascending
  std::vector<std::pair<size_t, std::string>> failed;  // (sample index, error) of the others
  std::vector<SetResult> sets;                         // sets[0] is the primary: its metrics are the top-level ones
};

// `inputs`: evaluated.size() x dim embeddings, row i for sample evaluated[i]; `class_embeds[s]` for sets[s].
// multi_label: the data set's, or forced (every sample's labels are its positives). One set's evaluated x K score
// matrix is held at a time (ImageNet's 50,000 x 1,000: 200 MB).
Evaluation evaluate(const Dataset& data, std::vector<size_t> evaluated,
                    std::vector<std::pair<size_t, std::string>> failed, const float* inputs, size_t dim,
                    const std::vector<TemplateSet>& sets, const std::vector<std::vector<float>>& class_embeds,
                    bool multi_label);

// The same over scores computed elsewhere (a few-shot head's): scorers[s](n) returns set s's evaluated x K score
// matrix (any monotone score: the metrics rank by it).
using ScoreFn = std::function<std::vector<float>(size_t n)>;
Evaluation evaluate_scores(const Dataset& data, std::vector<size_t> evaluated,
                           std::vector<std::pair<size_t, std::string>> failed, const std::vector<TemplateSet>& sets,
                           const std::vector<ScoreFn>& scorers, bool multi_label);

// Facts about the run that go into the JSON and the report.
struct RunInfo {
  std::string model;
  std::string cache;                    // the embedding store used ("" none)
  size_t embedded = 0, from_cache = 0;  // inputs embedded now / read from the cache
  double seconds_total = 0, seconds_text = 0, seconds_inputs = 0;
  std::string head;  // eval --head: the head file scored with ("" zero-shot)
  // eval --shots: the k-shot curve (the CLIP paper's figure): one head fitted per k on k samples per class, scored on
  // the same held-out rows (those outside the largest k's draw) as the zero-shot classifier.
  struct ShotPoint {
    size_t shots = 0, train = 0;
    double score = 0;  // acc1 (single-label) or mean average precision (multi-label)
  };
  std::vector<ShotPoint> shot_curve;
  std::string shot_method, shot_metric;
  double shot_zero_shot = 0;
  size_t shot_test = 0;
};

// CLIP_benchmark's result form: {"dataset", "model", "task": "zeroshot_classification", "metrics": {"acc1",
// "acc5", "mean_per_class_recall"} or {"mean_average_precision"}, ...} plus: "layout", "samples", "evaluated",
// "classes", "templates" (each set: name, count, metrics, per-fold), the primary set's "per_class", "confusion"
// ([truth, predicted, count] non-zero cells), "worst_confused", "failures", "seconds". NaN is null.
nlohmann::ordered_json to_json(const Dataset& data, const Evaluation& ev, const RunInfo& info, size_t worst_pairs = 20);

// The metrics object of one set ({"acc1", "acc5", "mean_per_class_recall"} or {"mean_average_precision"}).
nlohmann::ordered_json metrics_json(const SetResult& r, bool multi_label);

}  // namespace zeroshot::eval
