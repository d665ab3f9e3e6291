#include "classify/policy.h"

#include <toml++/toml.h>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include "classify/zero_shot.h"
#include "zeroshot/error.h"

namespace zeroshot::classify {

namespace {

// A user's text inside a one-line message: quoted, control characters shown as escapes, long texts shortened.
std::string shown(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\n') out += "\\n";
    else if (c < 0x20 || c == 0x7f)
      out += "\\x" + std::string(1, "0123456789abcdef"[c >> 4]) + "0123456789abcdef"[c & 15];
    else out += static_cast<char>(c);
  }
  if (s.size() > 80) out += "...";
  return out + "\"";
}

std::string one_line(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  return out;
}

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    default: return "a date or time";
  }
}

// Reads the keys of one table (the top level or a [[category]]) with errors at "<file>:<line>".
class TableReader {
 public:
  TableReader(const std::string& source, const toml::table& t, const char* what)
      : source_(source), t_(t), what_(what) {}

  std::string at(const toml::source_region& r) const { return source_ + ":" + std::to_string(r.begin.line); }
  std::string at_table() const { return at(t_.source()); }

  // Refuses keys not in `known`; the first one in file order is named.
  void check_keys(const std::vector<std::string>& known) const {
    const toml::key* bad = nullptr;
    for (const auto& [k, v] : t_) {
      if (std::find(known.begin(), known.end(), k.str()) != known.end()) continue;
      if (!bad || k.source().begin.line < bad->source().begin.line) bad = &k;
    }
    if (!bad) return;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw Error(at(bad->source()), "unknown key " + shown(bad->str()) + " in " + what_ + " (known keys: " + list + ")");
  }

  const toml::node* get(const char* key) const { return t_.get(key); }

  std::optional<std::string> string(const char* key) const {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    if (!n->is_string()) throw Error(at(n->source()), std::string(key) + " must be a string, not " + type_name(*n));
    return n->as_string()->get();
  }

  // An array of non-empty strings; an empty array is refused (it would mean nothing).
  std::optional<std::vector<std::string>> strings(const char* key) const {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    if (!n->is_array())
      throw Error(at(n->source()), std::string(key) + " must be an array of strings, not " + type_name(*n));
    std::vector<std::string> out;
    for (const toml::node& e : *n->as_array()) {
      if (!e.is_string())
        throw Error(at(e.source()), std::string(key) + " must be an array of strings, but holds " + type_name(e));
      const std::string& s = e.as_string()->get();
      if (s.find_first_not_of(" \t\r\n") == std::string::npos)
        throw Error(at(e.source()), std::string(key) + " holds an empty string");
      out.push_back(s);
    }
    if (out.empty()) throw Error(at(n->source()), std::string(key) + " is empty");
    return out;
  }

  std::optional<ScoreOn> on() const {
    const auto s = string("on");
    if (!s) return std::nullopt;
    ScoreOn on;
    if (!parse_score_on(*s, &on))
      throw Error(at(get("on")->source()), "on must be \"probability\" or \"cosine\", not " + shown(*s));
    return on;
  }

  // The number itself (range-checked by the caller, who knows the score) and where it is.
  std::optional<double> number(const char* key) const {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    if (n->is_floating_point()) return n->as_floating_point()->get();
    if (n->is_integer()) return static_cast<double>(n->as_integer()->get());
    throw Error(at(n->source()), std::string(key) + " must be a number, not " + type_name(*n));
  }

  std::vector<std::string> templates(const std::optional<std::vector<std::string>>& t) const {
    if (!t) return {};
    for (const auto& s : *t) {
      try {
        validate_template(s);
      } catch (const Error& e) {
        throw Error(at(get("templates")->source()), e.what());
      }
    }
    return *t;
  }

 private:
  const std::string& source_;
  const toml::table& t_;
  std::string what_;
};

}  // namespace

Policy parse_policy(const std::string& toml_text, const std::string& source) {
  if (toml_text.size() > kMaxPolicyBytes) throw Error(source, "policy file larger than 1 MiB");
  toml::table root;
  try {
    root = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    throw Error(source + ":" + std::to_string(e.source().begin.line), "invalid TOML: " + one_line(e.description()));
  }
  Policy p;
  p.source = source;
  const TableReader top(source, root, "the policy");
  top.check_keys({"description", "templates", "negative_prompts", "on", "threshold", "category"});
  p.description = top.string("description").value_or("");
  const auto default_templates = top.templates(top.strings("templates"));
  const auto default_negatives = top.strings("negative_prompts");
  const ScoreOn default_on = top.on().value_or(ScoreOn::Probability);
  const auto default_threshold = top.number("threshold");
  const std::string default_threshold_at = default_threshold ? top.at(root.get("threshold")->source()) : "";

  const toml::node* cats = root.get("category");
  if (!cats) throw Error(source, "no categories: add one or more [[category]] tables");
  if (!cats->is_array_of_tables())
    throw Error(top.at(cats->source()), "category must be an array of tables: write each as [[category]]");
  for (const toml::node& cn : *cats->as_array()) {
    const toml::table& ct = *cn.as_table();
    const TableReader r(source, ct, "[[category]]");
    r.check_keys({"name", "description", "prompts", "negative_prompts", "templates", "on", "threshold"});
    PolicyCategory c;
    c.line = ct.source().begin.line;
    const auto name = r.string("name");
    if (!name) throw Error(r.at_table(), "category without a name");
    c.name = *name;
    if (c.name.find_first_not_of(" \t\r\n") == std::string::npos)
      throw Error(r.at(ct.get("name")->source()), "empty category name");
    for (const auto& other : p.categories)
      if (other.name == c.name)
        throw Error(r.at(ct.get("name")->source()), "category " + shown(c.name) + " is defined twice (first at line " +
                                                        std::to_string(other.line) + ")");
    c.description = r.string("description").value_or("");
    const auto prompts = r.strings("prompts");
    if (!prompts) throw Error(r.at_table(), "category " + shown(c.name) + " has no prompts");
    c.prompts = *prompts;
    c.on = r.on().value_or(default_on);

    const bool own_templates = ct.get("templates") != nullptr;
    c.templates = own_templates ? r.templates(r.strings("templates")) : default_templates;
    const bool verbatim = c.templates.empty();
    if (verbatim) c.templates = {"{}"};

    if (c.on == ScoreOn::Probability) {
      if (const auto neg = r.strings("negative_prompts")) c.negative_prompts = *neg;
      else if (default_negatives) c.negative_prompts = *default_negatives;
      else if (verbatim)
        for (const auto& n : neutral_names()) c.negative_prompts.push_back(fill_template(kNeutralPromptTemplate, n));
      else c.negative_prompts = neutral_names();
    } else if (const toml::node* neg = ct.get("negative_prompts")) {
      throw Error(r.at(neg->source()),
                  "negative_prompts only apply to on = \"probability\" (category " + shown(c.name) + ")");
    }

    if (const auto t = r.number("threshold")) {
      check_threshold(c.on, *t, r.at(ct.get("threshold")->source()));
      c.threshold = static_cast<float>(*t);
    } else if (default_threshold) {
      check_threshold(c.on, *default_threshold, default_threshold_at);
      c.threshold = static_cast<float>(*default_threshold);
    } else if (c.on == ScoreOn::Cosine) {
      throw Error(r.at_table(), "category " + shown(c.name) +
                                    " scores on cosine and needs a threshold (cosines must be calibrated per model)");
    } else {
      c.threshold = kDefaultProbabilityThreshold;
    }
    p.categories.push_back(std::move(c));
  }
  if (p.categories.empty()) throw Error(source, "no categories: add one or more [[category]] tables");
  return p;
}

Policy load_policy_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path, "is a directory, not a policy file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open policy file");
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxPolicyBytes) throw Error(path, "policy file larger than 1 MiB");
  }
  if (in.bad()) throw Error(path, "read error");
  return parse_policy(text, path);
}

float category_score(const PolicyCategory& c, const float* prompt_cosines, size_t num_prompts, float negative_cosine,
                     float scale) {
  if (num_prompts == 0) throw Error("category " + shown(c.name), "no prompt cosines");
  const float best = *std::max_element(prompt_cosines, prompt_cosines + num_prompts);
  return c.on == ScoreOn::Cosine ? best : two_way_probability(best, negative_cosine, scale);
}

}  // namespace zeroshot::classify
