// Explanation maps: which regions of an image support each label of a zero-shot classifier.
//
//   auto model = zeroshot::Model::load("openai/clip-vit-base-patch16");
//   zeroshot::ZeroShotClassifier clf(*model, {"cat", "dog"});
//   auto pixels = model->preprocess_image_file("photo.jpg");
//   for (const auto& m : zeroshot::explain(*model, clf, pixels.data())) ...  // m.values: m.grid x m.grid
//
// Each map is a grid over the patches of the square the model saw (the center crop), built from the patch tokens
// of CLIP Surgery's value-value path (Model::embed_patch_tokens) and the classifier's label embeddings, with its
// feature surgery or as plain cosines (src/classify/explain.h has the formulas). Higher = more support.
// Only models with patch tokens (Model::patch_grid() > 0: CLIP ViTs) explain; others throw zeroshot::Error.
// Thread-safe like Model and ZeroShotClassifier.
#pragma once

#include <string>
#include <vector>

#include "zeroshot/zeroshot.h"

namespace zeroshot {

struct ExplainOptions {
  int vv_blocks = 1;            // encoder layers on the value-value path, counted from the last (1..layers)
  bool feature_surgery = true;  // false: cos(patch token, label) maps
};

struct LabelMap {
  std::string label;
  float score = 0.f;          // the classifier's score of the label for this image
  int grid = 0;               // side of the square grid
  std::vector<float> values;  // grid x grid, row-major, top row first
  float min = 0.f, max = 0.f;
};

// One map per label of `clf` (which must be built on `model`), in the classifier's label order.
// pixel_values: one preprocessed image [3, S, S] (Model::preprocess_image_file).
std::vector<LabelMap> explain(const Model& model, const ZeroShotClassifier& clf, const float* pixel_values,
                              const ExplainOptions& options = {});

}  // namespace zeroshot
