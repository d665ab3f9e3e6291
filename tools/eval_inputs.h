// What `eval` and `fit` share: their data and model options, the data set's embeddings (directly or through the
// index cache) and the zero-shot class embeddings (through the label-embedding cache). cmd_eval.cpp implements it.
#pragma once

#include <string>
#include <vector>

#include "cli_common.h"
#include "eval/datasets.h"
#include "eval/evaluate.h"
#include "zeroshot/zeroshot.h"

namespace zeroshot::cli {

struct EvalArgs {
  ModelArgs model;
  std::string data;
  std::string layout = "auto";
  LabelArgs labels;  // labels.file: --labels-file
  std::string class_map;
  std::vector<std::string> templates;      // --templates items (comma-separated, repeatable)
  std::vector<std::string> template_text;  // -t literal templates, each its own set
  bool multi_label = false;
  int fold = 0;
  std::string report;
  std::string output;
  size_t batch = 16;
  bool cache = false;
  std::string db;
  std::string label_cache;
  size_t show_classes = 30;
  std::string format;
  bool quiet = false;
  // Few-shot heads (eval --head, eval --shots, fit).
  std::string head;
  std::vector<size_t> shots;
  std::string method = "linear";  // the shot draws and validation splits are seeded by --seed (model.seed)
};

// Image (or audio) embeddings of the data set's files, one row per evaluated sample.
struct Inputs {
  std::vector<size_t> evaluated;
  std::vector<std::pair<size_t, std::string>> failed;
  std::vector<float> rows;
  size_t embedded = 0, from_cache = 0;
};

// The data set's embeddings: through the index database when a.cache or a.db (*cache_used: its path), else the
// engine directly. Unreadable files are reported on stderr and listed in Inputs::failed.
Inputs embed_dataset(const Model& model, const eval::Dataset& d, const EvalArgs& a, std::string* cache_used);

// Each template set's K x dim class embeddings (the label-embedding cache first).
std::vector<std::vector<float>> class_embeddings(const Model& model, const eval::Dataset& d,
                                                 const std::vector<eval::TemplateSet>& sets, const EvalArgs& a);

}  // namespace zeroshot::cli
