#include "server/request.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "classify/label_sets.h"
#include "index/query.h"
#include "server/codec.h"
#include "zeroshot/error.h"

namespace zeroshot::server {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& m) { throw HttpError(400, m); }

// What a request field may hold. The schema is the same for every route (a key means one thing everywhere), so one
// parser serves them all; keys it does not know are parsed and dropped, never stored.
enum class Shape : uint8_t { kSkip, kString, kBool, kNumber, kStrings, kParameters, kTerms, kTerm };

struct FieldShape {
  Shape shape;
  size_t max;  // kStrings, kTerms: most entries
};

// The request body's JSON, built by nlohmann's SAX interface instead of json::parse because a DOM costs ~100 bytes a
// node whatever the input: a 31 MiB body of "{},{},..." grew the process by 1.2 GB (issue 19). Here every value is
// checked against the field's shape when it starts (the first "{" where labels go is a 400 naming "labels", before
// anything is built), arrays stop at their field's limit, keys the API does not know are skipped without being
// stored, nesting is capped, and every stored value counts against a node cap. What is built is a small object
// holding copies of strings of the body, so its memory is bounded by the body's size plus the node cap.
class RequestSax {
 public:
  explicit RequestSax(const Limits& l) : limits_(l) {
    max_nodes_ = 64 + 2 * (l.max_labels + l.max_templates + l.max_texts + l.max_images) + 4 * terms_max();
  }

  json take() { return std::move(root_); }
  const std::string& error() const { return error_; }

  bool null() { return scalar(Kind::kNull, json()); }
  bool boolean(bool v) { return scalar(Kind::kBool, json(v)); }
  bool number_integer(json::number_integer_t v) { return scalar(Kind::kNumber, json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return scalar(Kind::kNumber, json(v)); }
  bool number_float(json::number_float_t v, const std::string&) { return scalar(Kind::kNumber, json(v)); }
  bool string(std::string& v) { return scalar(Kind::kString, json(std::move(v))); }
  bool binary(json::binary_t&) { return fail("request body: unexpected binary value"); }

  bool start_object(size_t) {
    if (!deeper()) return false;
    if (skip_ > 0 || (!stack_.empty() && expected() == Shape::kSkip)) return ++skip_, true;
    if (stack_.empty()) {
      root_ = json::object();
      stack_.push_back(Frame{&root_, Shape::kSkip, "", 0, 0, {}});  // the top level: its own key table
      return true;
    }
    const Shape want = expected();
    if (want != Shape::kParameters && want != Shape::kTerm) return mismatch(want);
    const std::string name = field_name();
    json* v = store(json::object());
    if (!v) return false;
    stack_.push_back(Frame{v, want, name, 0, 0, {}});
    return true;
  }

  bool key(std::string& k) {
    if (skip_ > 0) return true;
    Frame& f = stack_.back();
    f.key = std::move(k);
    return true;
  }

  bool end_object() { return end(); }

  bool start_array(size_t) {
    if (!deeper()) return false;
    if (skip_ > 0 || (!stack_.empty() && expected() == Shape::kSkip)) return ++skip_, true;
    if (stack_.empty()) return fail("request body: expected a JSON object");
    const FieldShape want = expected_field();
    if (want.shape != Shape::kStrings && want.shape != Shape::kTerms) return mismatch(want.shape);
    const std::string name = field_name();
    json* v = store(json::array());
    if (!v) return false;
    stack_.push_back(Frame{v, want.shape, name, 0, want.max, {}});
    return true;
  }

  bool end_array() { return end(); }

  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception&) {
    return fail("request body: malformed JSON (send a JSON object, or multipart/form-data)");
  }

 private:
  enum class Kind : uint8_t { kNull, kBool, kNumber, kString };
  struct Frame {
    json* value;
    Shape shape;  // kSkip for the top level
    std::string name;
    size_t count, max;
    std::string key;  // objects: the key of the value that comes next
  };

  size_t terms_max() const { return limits_.max_texts + limits_.max_images; }

  bool fail(std::string m) {
    if (error_.empty()) error_ = std::move(m);
    return false;
  }

  bool deeper() {
    if (++depth_ > kMaxDepth) return fail("request body: nested deeper than " + std::to_string(kMaxDepth) + " levels");
    return true;
  }

  bool end() {
    --depth_;
    if (skip_ > 0) return --skip_, true;
    stack_.pop_back();
    return true;
  }

  // The shape of the value about to start: the field's (in an object) or the element's (in an array).
  FieldShape expected_field() const {
    const Frame& f = stack_.back();
    if (f.shape == Shape::kStrings) return {Shape::kString, 0};
    if (f.shape == Shape::kTerms) return {Shape::kTerm, 0};
    const std::string& k = f.key;
    if (f.shape == Shape::kTerm) {
      if (k == "text" || k == "image") return {Shape::kString, 0};
      if (k == "weight") return {Shape::kNumber, 0};
      return {Shape::kSkip, 0};
    }
    if (f.shape == Shape::kParameters) {  // Hugging Face's {"inputs", "parameters": {...}}
      if (k == "candidate_labels") return {Shape::kStrings, limits_.max_labels};
      if (k == "hypothesis_template") return {Shape::kString, 0};
      if (k == "multi_label") return {Shape::kBool, 0};
      if (k == "top_k") return {Shape::kNumber, 0};
      return {Shape::kSkip, 0};
    }
    if (k == "candidate_labels" || k == "labels") return {Shape::kStrings, limits_.max_labels};
    if (k == "templates") return {Shape::kStrings, limits_.max_templates};
    if (k == "texts") return {Shape::kStrings, limits_.max_texts};
    if (k == "images") return {Shape::kStrings, limits_.max_images};
    if (k == "image" || k == "inputs" || k == "label_set" || k == "hypothesis_template" || k == "text" ||
        k == "query" || k == "head")
      return {Shape::kString, 0};
    if (k == "multi_label" || k == "normalize") return {Shape::kBool, 0};
    if (k == "top_k") return {Shape::kNumber, 0};
    if (k == "parameters") return {Shape::kParameters, 0};
    if (k == "terms") return {Shape::kTerms, terms_max()};
    return {Shape::kSkip, 0};
  }
  Shape expected() const { return expected_field().shape; }

  // "labels", "parameters.candidate_labels", "terms[3].text": the field the next value belongs to.
  std::string field_name() const {
    const Frame& f = stack_.back();
    if (f.shape == Shape::kStrings || f.shape == Shape::kTerms) return f.name + "[" + std::to_string(f.count) + "]";
    return f.name.empty() ? f.key : f.name + "." + f.key;
  }

  bool mismatch(Shape want) {
    const Frame& f = stack_.back();
    // An array's element is named by its array ("labels: expected an array of strings"), as the checks after
    // parsing do.
    const std::string name = f.shape == Shape::kStrings || f.shape == Shape::kTerms ? f.name : field_name();
    switch (want) {
      case Shape::kString:
        return fail(name + (f.shape == Shape::kStrings ? ": expected an array of strings" : ": expected a string"));
      case Shape::kStrings: return fail(name + ": expected a string or an array of strings");
      case Shape::kBool: return fail(name + ": expected true or false");
      case Shape::kNumber: return fail(name + ": expected a number");
      case Shape::kParameters: return fail(name + ": expected an object with candidate_labels");
      case Shape::kTerms: return fail(name + ": expected an array of {\"text\" or \"image\", \"weight\"}");
      case Shape::kTerm:
        return fail(field_name() + ": expected {\"text\": ...} or {\"image\": <base64>}, with an optional \"weight\"");
      case Shape::kSkip: break;
    }
    return fail(name + ": unexpected value");
  }

  // Adds v where the parser is (the current object's key, or the end of the current array); nullptr past a cap.
  json* store(json v) {
    if (++nodes_ > max_nodes_) {
      fail("request body: more than " + std::to_string(max_nodes_) + " values");
      return nullptr;
    }
    Frame& f = stack_.back();
    if (f.value->is_array()) {
      if (++f.count > f.max) {
        const std::string what =
            f.name == "candidate_labels" || f.name == "labels" || f.name == "parameters.candidate_labels" ? "labels"
                                                                                                          : f.name;
        fail("too many " + what + ": more than " + std::to_string(f.max) + " (the limit is " + std::to_string(f.max) +
             ")");
        return nullptr;
      }
      f.value->push_back(std::move(v));
      return &f.value->back();
    }
    json& slot = (*f.value)[f.key];  // a repeated key replaces the earlier value, as json::parse does
    slot = std::move(v);
    return &slot;
  }

  bool scalar(Kind kind, json v) {
    if (skip_ > 0) return true;
    if (stack_.empty()) return fail("request body: expected a JSON object");
    const Shape want = expected();
    const bool ok = want == Shape::kSkip ||
                    (kind == Kind::kString && (want == Shape::kString || want == Shape::kStrings)) ||
                    (kind == Kind::kBool && want == Shape::kBool) || (kind == Kind::kNumber && want == Shape::kNumber);
    if (!ok) return mismatch(want);
    if (want == Shape::kSkip) return true;
    return store(std::move(v)) != nullptr;
  }

  static constexpr size_t kMaxDepth = 32;
  const Limits& limits_;
  json root_;
  std::vector<Frame> stack_;
  size_t depth_ = 0, skip_ = 0, nodes_ = 0, max_nodes_ = 0;
  std::string error_;
};

json parse_json(const Body& b, const Limits& l) {
  RequestSax sax(l);
  if (!json::sax_parse(*b.json, &sax)) bad(sax.error().empty() ? "request body: malformed JSON" : sax.error());
  return sax.take();
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

// Stops at `max` entries: a 31 MiB "a,a,a,..." would otherwise become 15 million strings (500 MB).
std::vector<std::string> split_commas(const std::string& s, size_t max) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t c = s.find(',', start);
    std::string t = trim(s.substr(start, c == std::string::npos ? std::string::npos : c - start));
    if (!t.empty()) {
      if (out.size() == max)
        bad("too many labels: more than " + std::to_string(max) + " (the limit is " + std::to_string(max) + ")");
      out.push_back(std::move(t));
    }
    if (c == std::string::npos) break;
    start = c + 1;
  }
  return out;
}

// A reference, not a copy: an image's base64 text can be most of a 32 MiB body.
const std::string& get_string(const json& j, const char* key) {
  const auto& v = j.at(key);
  if (!v.is_string()) bad(std::string(key) + ": expected a string");
  return v.get_ref<const std::string&>();
}

// A list of strings: a JSON array of strings, or one string (split at commas into at most `split` labels when
// `split` is not 0).
std::vector<std::string> get_strings(const json& j, const char* key, size_t split) {
  const auto& v = j.at(key);
  if (v.is_string()) {
    const auto& text = v.get_ref<const std::string&>();
    return split ? split_commas(text, split) : std::vector<std::string>{text};
  }
  if (!v.is_array()) bad(std::string(key) + ": expected an array of strings");
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) bad(std::string(key) + ": expected an array of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

bool get_bool(const json& j, const char* key) {
  const auto& v = j.at(key);
  if (!v.is_boolean()) bad(std::string(key) + ": expected true or false");
  return v.get<bool>();
}

size_t get_count(const json& j, const char* key, size_t max) {
  const auto& v = j.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || static_cast<uint64_t>(v.get<int64_t>()) > max)
    bad(std::string(key) + ": expected an integer from 0 to " + std::to_string(max));
  return static_cast<size_t>(v.get<int64_t>());
}

float get_weight(const json& j, const char* key) {
  const auto& v = j.at(key);
  if (!v.is_number() || !std::isfinite(v.get<double>()) || std::fabs(v.get<double>()) > 1e6)
    bad(std::string(key) + ": expected a number");
  return static_cast<float>(v.get<double>());
}

bool parse_bool_text(const std::string& s, const char* key) {
  const std::string t = trim(s);
  if (t == "true" || t == "1" || t == "on") return true;
  if (t == "false" || t == "0" || t == "off" || t.empty()) return false;
  bad(std::string(key) + ": expected true or false");
}

size_t parse_count_text(const std::string& s, const char* key, size_t max) {
  const std::string t = trim(s);
  size_t v = 0;
  const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || r.ec != std::errc() || r.ptr != t.data() + t.size() || v > max)
    bad(std::string(key) + ": expected an integer from 0 to " + std::to_string(max));
  return v;
}

ImageInput image_from_base64(const std::string& text, const std::string& name) {
  if (text.rfind("http://", 0) == 0 || text.rfind("https://", 0) == 0 || text.rfind("file:", 0) == 0)
    bad(name + ": URLs are not fetched; send the image's bytes base64-encoded");
  ImageInput in;
  try {
    in.bytes = base64_decode(text, name);
  } catch (const Error& e) {
    bad(e.what());
  }
  if (in.bytes.empty()) bad(name + ": empty image");
  in.name = name;
  return in;
}

ImageInput image_from_part(const Part& p) {
  ImageInput in;
  in.bytes.assign(p.content.begin(), p.content.end());
  in.name = p.filename.empty() ? p.name : p.filename;
  if (in.bytes.empty()) bad(in.name + ": empty upload");
  return in;
}

bool is_file(const Part& p) { return !p.filename.empty() || p.content_type.rfind("image/", 0) == 0; }

// Multipart: the values of every text field `name` (repeated fields, each also split at commas into at most `split`
// labels when `split` is not 0).
std::vector<std::string> fields(const Body& b, const char* name, size_t split) {
  std::vector<std::string> out;
  for (const auto& p : b.parts)
    if (p.name == name && !is_file(p)) {
      if (split) {
        for (auto& s : split_commas(p.content, split)) out.push_back(std::move(s));
      } else {
        out.push_back(p.content);
      }
    }
  return out;
}

const Part* field(const Body& b, const char* name) {
  for (const auto& p : b.parts)
    if (p.name == name && !is_file(p)) return &p;
  return nullptr;
}

std::vector<ImageInput> uploaded_images(const Body& b) {
  std::vector<ImageInput> out;
  for (const auto& p : b.parts)
    if (is_file(p)) out.push_back(image_from_part(p));
  return out;
}

void check_text(const std::string& s, const char* what, const Limits& l) {
  if (s.size() > l.max_label_bytes)
    bad(std::string(what) + " of " + std::to_string(s.size()) + " bytes (the limit is " +
        std::to_string(l.max_label_bytes) + ")");
}

// Labels typed by the client and/or a built-in set's name -> classes, checked.
void resolve_labels(ClassifyRequest* r, std::vector<std::string> labels, const std::string& set, const Limits& l) {
  if (!set.empty()) {
    const classify::LabelSet* ls = classify::find_label_set(set);
    if (!ls || ls->modality != "image")
      bad("label_set: no built-in image label set \"" + set + "\" (see /v1/label_sets)");
    if (!labels.empty()) bad("give candidate_labels or label_set, not both");
    if (ls->classes.size() > l.max_labels)
      bad("too many labels: " + std::to_string(ls->classes.size()) + " (the limit is " + std::to_string(l.max_labels) +
          ")");
    r->classes = ls->classes;
    r->label_set = ls->name;
    return;
  }
  if (labels.empty()) bad("candidate_labels: none given (a list of labels, or label_set: a built-in set)");
  if (labels.size() > l.max_labels)
    bad("too many labels: " + std::to_string(labels.size()) + " (the limit is " + std::to_string(l.max_labels) + ")");
  std::set<std::string> seen;
  for (auto& s : labels) {
    s = trim(s);
    if (s.empty()) bad("candidate_labels: an empty label");
    check_text(s, "a label", l);
    if (!seen.insert(s).second) bad("candidate_labels: label \"" + s + "\" is given twice");
    r->classes.push_back({s});
  }
}

// Templates: explicit ones (each with "{}"), or one name of a built-in template set.
std::vector<std::string> resolve_templates(std::vector<std::string> list, const Limits& l) {
  if (list.size() == 1 && list[0].find("{}") == std::string::npos) {
    std::vector<std::string> set;
    if (!classify::find_template_set(list[0], &set))
      bad("templates: \"" + list[0] + "\" has no {} and is not a built-in template set (imagenet80, imagenet7, ...)");
    list = set;
  }
  if (list.size() > l.max_templates)
    bad("too many templates: " + std::to_string(list.size()) + " (the limit is " + std::to_string(l.max_templates) +
        ")");
  for (const auto& t : list) {
    check_text(t, "a template", l);
    if (t.find("{}") == std::string::npos) bad("template \"" + t + "\" has no {} for the label");
  }
  return list;
}

template <class F>
auto guarded(F&& f) {
  try {
    return f();
  } catch (const json::exception& e) {
    bad(std::string("request body: ") + e.what());
  }
}

}  // namespace

ClassifyRequest parse_classify(const Body& b, const Limits& l) {
  return guarded([&] {
    ClassifyRequest r;
    std::vector<std::string> labels, templates;
    std::string set;
    if (b.multipart) {
      auto imgs = uploaded_images(b);
      if (imgs.size() != 1) bad("multipart: expected exactly one image file (field \"image\")");
      r.image = std::move(imgs[0]);
      labels = fields(b, "candidate_labels", l.max_labels);
      for (auto& s : fields(b, "labels", l.max_labels)) labels.push_back(std::move(s));
      if (const Part* p = field(b, "label_set")) set = trim(p->content);
      if (const Part* p = field(b, "head")) r.head = trim(p->content);
      templates = fields(b, "hypothesis_template", 0);
      for (auto& s : fields(b, "templates", 0)) templates.push_back(std::move(s));
      if (const Part* p = field(b, "multi_label")) r.multi_label = parse_bool_text(p->content, "multi_label");
      if (const Part* p = field(b, "top_k")) r.top_k = parse_count_text(p->content, "top_k", l.max_labels);
    } else {
      const json j = parse_json(b, l);
      if (j.contains("inputs")) {  // Hugging Face: {"inputs": <base64>, "parameters": {"candidate_labels": [...]}}
        r.hf = true;
        r.image = image_from_base64(get_string(j, "inputs"), "inputs");
        if (!j.contains("parameters") || !j.at("parameters").is_object())
          bad("parameters: expected an object with candidate_labels");
        const json& p = j.at("parameters");
        if (p.contains("candidate_labels")) labels = get_strings(p, "candidate_labels", l.max_labels);
        if (p.contains("hypothesis_template")) templates = {get_string(p, "hypothesis_template")};
        if (p.contains("multi_label")) r.multi_label = get_bool(p, "multi_label");
        if (p.contains("top_k")) r.top_k = get_count(p, "top_k", l.max_labels);
      } else {
        if (!j.contains("image")) bad("image: missing (base64 bytes of the image)");
        r.image = image_from_base64(get_string(j, "image"), "image");
        if (j.contains("candidate_labels")) labels = get_strings(j, "candidate_labels", l.max_labels);
        if (j.contains("labels")) labels = get_strings(j, "labels", l.max_labels);
        if (j.contains("label_set")) set = get_string(j, "label_set");
        if (j.contains("head")) r.head = get_string(j, "head");
        if (j.contains("hypothesis_template")) templates = {get_string(j, "hypothesis_template")};
        if (j.contains("templates")) {
          for (auto& s : get_strings(j, "templates", 0)) templates.push_back(std::move(s));
        }
        if (j.contains("multi_label")) r.multi_label = get_bool(j, "multi_label");
        if (j.contains("top_k")) r.top_k = get_count(j, "top_k", l.max_labels);
      }
    }
    if (!r.head.empty()) {  // the head carries its labels and weights
      if (!labels.empty() || !set.empty() || !templates.empty())
        bad("head: give a head or labels (and templates), not both");
      if (r.multi_label) bad("head: multi_label does not apply (a multi-label head scores each label itself)");
      return r;
    }
    resolve_labels(&r, std::move(labels), set, l);
    if (!templates.empty()) r.templates = resolve_templates(std::move(templates), l);
    return r;
  });
}

EmbedRequest parse_embed(const Body& b, const Limits& l) {
  return guarded([&] {
    EmbedRequest r;
    if (b.multipart) {
      r.images = uploaded_images(b);
      r.texts = fields(b, "text", 0);
      for (auto& s : fields(b, "texts", 0)) r.texts.push_back(std::move(s));
      if (const Part* p = field(b, "normalize")) r.normalize = parse_bool_text(p->content, "normalize");
    } else {
      const json j = parse_json(b, l);
      if (j.contains("texts")) r.texts = get_strings(j, "texts", 0);
      if (j.contains("text")) r.texts.push_back(get_string(j, "text"));
      std::vector<std::string> imgs;
      if (j.contains("images")) imgs = get_strings(j, "images", 0);
      if (j.contains("image")) imgs.push_back(get_string(j, "image"));
      if (imgs.size() > l.max_images)
        bad("too many images: " + std::to_string(imgs.size()) + " (the limit is " + std::to_string(l.max_images) + ")");
      for (size_t i = 0; i < imgs.size(); ++i)
        r.images.push_back(image_from_base64(imgs[i], "images[" + std::to_string(i) + "]"));
      if (j.contains("normalize")) r.normalize = get_bool(j, "normalize");
    }
    if (r.texts.empty() && r.images.empty()) bad("nothing to embed: give texts and/or images");
    if (r.texts.size() > l.max_texts)
      bad("too many texts: " + std::to_string(r.texts.size()) + " (the limit is " + std::to_string(l.max_texts) + ")");
    if (r.images.size() > l.max_images)
      bad("too many images: " + std::to_string(r.images.size()) + " (the limit is " + std::to_string(l.max_images) +
          ")");
    for (const auto& t : r.texts) check_text(t, "a text", l);
    return r;
  });
}

namespace {

// rclip's syntax, every term text: words between "+" and "-" form one term; "W:term" weights it.
void parse_query_text(const std::string& q, std::vector<SearchTerm>* out) {
  std::vector<std::string> words;
  for (size_t i = 0; i < q.size();) {
    while (i < q.size() && (q[i] == ' ' || q[i] == '\t' || q[i] == '\n' || q[i] == '\r')) ++i;
    size_t j = i;
    while (j < q.size() && !(q[j] == ' ' || q[j] == '\t' || q[j] == '\n' || q[j] == '\r')) ++j;
    if (j > i) words.push_back(q.substr(i, j - i));
    i = j;
  }
  float sign = 1;
  std::string cur;
  bool expect_term = true;
  auto flush = [&] {
    if (cur.empty()) bad("query: a \"+\" or \"-\" without a term after it");
    SearchTerm t;
    float w = 1;
    std::string rest;
    if (index::split_weight(cur, &w, &rest)) cur = trim(rest);
    if (cur.empty()) bad("query: empty term");
    t.weight = sign * w;
    t.text = cur;
    out->push_back(std::move(t));
    cur.clear();
  };
  for (const auto& w : words) {
    if (w == "+" || w == "-") {
      if (expect_term) bad("query: \"" + w + "\" without a term before it");
      flush();
      sign = w == "-" ? -1.f : 1.f;
      expect_term = true;
      continue;
    }
    cur += (cur.empty() ? "" : " ") + w;
    expect_term = false;
  }
  if (words.empty()) return;
  if (expect_term) bad("query: ends with \"+\" or \"-\"");
  flush();
}

}  // namespace

SearchRequest parse_search(const Body& b, const Limits& l) {
  return guarded([&] {
    SearchRequest r;
    if (b.multipart) {
      if (const Part* p = field(b, "query")) parse_query_text(p->content, &r.terms);
      for (auto& img : uploaded_images(b)) {
        SearchTerm t;
        t.image = true;
        t.img = std::move(img);
        r.terms.push_back(std::move(t));
      }
      if (const Part* p = field(b, "top_k")) r.top_k = parse_count_text(p->content, "top_k", 1000);
    } else {
      const json j = parse_json(b, l);
      if (j.contains("query")) parse_query_text(get_string(j, "query"), &r.terms);
      if (j.contains("image")) {
        SearchTerm t;
        t.image = true;
        t.img = image_from_base64(get_string(j, "image"), "image");
        r.terms.push_back(std::move(t));
      }
      if (j.contains("terms")) {
        const json& ts = j.at("terms");
        if (!ts.is_array()) bad("terms: expected an array of {\"text\" or \"image\", \"weight\"}");
        for (size_t i = 0; i < ts.size(); ++i) {
          const json& e = ts[i];
          const std::string where = "terms[" + std::to_string(i) + "]";
          if (!e.is_object() || e.contains("text") == e.contains("image"))
            bad(where + ": expected {\"text\": ...} or {\"image\": <base64>}, with an optional \"weight\"");
          SearchTerm t;
          if (e.contains("weight")) t.weight = get_weight(e, "weight");
          if (e.contains("text")) {
            t.text = trim(get_string(e, "text"));
            if (t.text.empty()) bad(where + ": empty text");
          } else {
            t.image = true;
            t.img = image_from_base64(get_string(e, "image"), where);
          }
          r.terms.push_back(std::move(t));
        }
      }
      if (j.contains("top_k")) r.top_k = get_count(j, "top_k", 1000);
    }
    if (r.terms.empty()) bad("query: empty (give \"query\" text, an \"image\", or \"terms\")");
    if (r.top_k == 0) bad("top_k: expected an integer from 1 to 1000");
    size_t images = 0, texts = 0;
    for (const auto& t : r.terms) {
      (t.image ? images : texts)++;
      if (!t.image) check_text(t.text, "a query term", l);
    }
    if (images > l.max_images) bad("too many images in the query");
    if (texts > l.max_texts) bad("too many text terms in the query");
    return r;
  });
}

ImageInput parse_image_only(const Body& b) {
  return guarded([&] {
    if (b.multipart) {
      auto imgs = uploaded_images(b);
      if (imgs.size() != 1) bad("multipart: expected exactly one image file (field \"image\")");
      return std::move(imgs[0]);
    }
    const json j = parse_json(b, Limits{});
    if (j.contains("inputs")) return image_from_base64(get_string(j, "inputs"), "inputs");
    if (!j.contains("image")) bad("image: missing (base64 bytes of the image)");
    return image_from_base64(get_string(j, "image"), "image");
  });
}

}  // namespace zeroshot::server
