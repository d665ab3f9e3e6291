// Built-in label sets and prompt templates (data/zero_shot_prompts.json, compiled in; attribution in data/README.md).
#pragma once

#include <string>
#include <vector>

namespace zeroshot::classify {

struct LabelSet {
  std::string name;      // "imagenet", "cifar10", "esc50", ...
  std::string modality;  // "image" or "audio"
  // One entry per class; most classes have one name, a few (FER2013) several synonyms: the first is the label
  // shown, all of them are embedded and ensembled together with the templates.
  std::vector<std::vector<std::string>> classes;
  std::vector<std::string> templates;
  std::vector<std::string> templates_selected;  // imagenet's 7 forward-selected templates; else empty
};

// nullptr when there is no such set. Names are case-insensitive.
const LabelSet* find_label_set(const std::string& name);
std::vector<std::string> label_set_names();

// Template-set names: "imagenet80" (= "imagenet"), "imagenet7", or any label set's name (its templates).
// Returns false when `name` is not a template-set name.
bool find_template_set(const std::string& name, std::vector<std::string>* templates);

}  // namespace zeroshot::classify
