// What `fit` and `eval --head / --shots` share (cmd_fit.cpp implements it): a data set's embeddings as labeled
// rows, its class names, the zero-shot weights a head starts from, the fit options of a run.
#pragma once

#include <string>
#include <vector>

#include "classify/few_shot.h"
#include "eval/datasets.h"
#include "eval_inputs.h"
#include "zeroshot/zeroshot.h"

namespace zeroshot::cli {

// Rows of the embedded samples (in.evaluated order); multi-label when the data is or `multi_label`.
classify::LabeledEmbeddings labeled_embeddings(const eval::Dataset& d, const Inputs& in, size_t dim, bool multi_label);
// Each class's shown name (names[0]): the head's labels.
std::vector<std::string> class_labels(const eval::Dataset& d);
// K x dim normalized zero-shot class embeddings of the first template set (a.templates, default the model's).
std::vector<float> zero_shot_weights(const Model& model, const eval::Dataset& d, const EvalArgs& a);
// The run's fit options (seed, logit scale, zero-shot weights when given).
classify::FitOptions fit_options(const Model& model, const EvalArgs& a, classify::FewShotMethod m,
                                 const std::vector<float>* zero_shot);

}  // namespace zeroshot::cli
