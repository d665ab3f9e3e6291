#include "classify/label_sets.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>

#include "io/json.h"
#include "zeroshot/error.h"

extern const unsigned char zeroshot_prompts_json[];
extern const size_t zeroshot_prompts_json_size;

namespace zeroshot::classify {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

const std::map<std::string, LabelSet>& sets() {
  static std::map<std::string, LabelSet> table;
  static std::once_flag once;
  std::call_once(once, [] {
    io::Json j =
        io::parse_json(std::string(reinterpret_cast<const char*>(zeroshot_prompts_json), zeroshot_prompts_json_size),
                       "built-in zero_shot_prompts.json");
    for (auto it = j["datasets"].begin(); it != j["datasets"].end(); ++it) {
      LabelSet s;
      s.name = it.key();
      const io::Json& d = it.value();
      s.modality = d.value("modality", "image");
      for (const auto& c : d["classes"]) {
        if (c.is_string()) s.classes.push_back({c.get<std::string>()});
        else s.classes.push_back(c.get<std::vector<std::string>>());
      }
      s.templates = d["templates"].get<std::vector<std::string>>();
      if (d.contains("templates_selected7"))
        s.templates_selected = d["templates_selected7"].get<std::vector<std::string>>();
      table.emplace(lower(s.name), std::move(s));
    }
  });
  return table;
}

}  // namespace

const LabelSet* find_label_set(const std::string& name) {
  auto it = sets().find(lower(name));
  return it == sets().end() ? nullptr : &it->second;
}

std::vector<std::string> label_set_names() {
  std::vector<std::string> out;
  for (const auto& [k, v] : sets()) out.push_back(v.name);
  return out;
}

bool find_template_set(const std::string& name, std::vector<std::string>* templates) {
  const std::string n = lower(name);
  if (n == "imagenet80") {
    *templates = find_label_set("imagenet")->templates;
    return true;
  }
  if (n == "imagenet7") {
    *templates = find_label_set("imagenet")->templates_selected;
    return true;
  }
  if (const LabelSet* s = find_label_set(n)) {
    *templates = s->templates;
    return true;
  }
  return false;
}

}  // namespace zeroshot::classify
