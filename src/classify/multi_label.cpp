#include "classify/multi_label.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "zeroshot/error.h"

namespace zeroshot::classify {

namespace {

// Labels files are read whole; anything this large is not a list of labels.
constexpr std::streamoff kMaxLabelsFileBytes = 16 << 20;

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

}  // namespace

const char* score_on_name(ScoreOn on) { return on == ScoreOn::Cosine ? "cosine" : "probability"; }

bool parse_score_on(const std::string& text, ScoreOn* on) {
  if (text == "probability") *on = ScoreOn::Probability;
  else if (text == "cosine") *on = ScoreOn::Cosine;
  else return false;
  return true;
}

const std::vector<std::string>& neutral_names() {
  static const std::vector<std::string> names = {"something", "an object"};
  return names;
}

float two_way_probability(float cos_pos, float cos_neg, float scale) {
  const double d = static_cast<double>(scale) * (static_cast<double>(cos_pos) - cos_neg);
  // The logistic form of the two-way softmax; exp of a non-positive number only, so nothing overflows.
  if (d >= 0) return static_cast<float>(1.0 / (1.0 + std::exp(-d)));
  const double e = std::exp(d);
  return static_cast<float>(e / (1.0 + e));
}

void check_threshold(ScoreOn on, double t, const std::string& where) {
  const double lo = on == ScoreOn::Cosine ? -1.0 : 0.0;
  if (!std::isfinite(t) || t < lo || t > 1.0)
    throw Error(where, std::string("threshold must be between ") + (on == ScoreOn::Cosine ? "-1 and 1" : "0 and 1") +
                           " for a " + score_on_name(on) + " score");
}

std::vector<Tag> rank_tags(const std::vector<std::string>& labels, const std::vector<float>& scores,
                           const std::vector<float>& thresholds, size_t top_k) {
  if (scores.size() != labels.size() || thresholds.size() != labels.size())
    throw Error("rank_tags", "labels, scores and thresholds differ in length");
  std::vector<size_t> order(labels.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  if (top_k && top_k < order.size()) order.resize(top_k);
  std::vector<Tag> out;
  out.reserve(order.size());
  for (size_t i : order) out.push_back({labels[i], scores[i], thresholds[i], scores[i] >= thresholds[i]});
  return out;
}

std::optional<float> parse_number(const std::string& text) {
  const std::string t = trim(text);
  if (t.empty()) return std::nullopt;
  double v = 0;
  const char* end = t.data() + t.size();
  auto r = std::from_chars(t.data(), end, v);
  if (r.ec != std::errc() || r.ptr != end || !std::isfinite(v)) return std::nullopt;
  return static_cast<float>(v);
}

std::vector<TagLabel> parse_tag_labels(const std::string& text, const std::string& source) {
  std::vector<TagLabel> out;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    const std::string raw = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    const std::string where = source + ":" + std::to_string(line_no);
    const std::string whole = trim(raw);
    if (whole.empty() || whole[0] == '#') continue;
    std::vector<std::string> cols;
    size_t start = 0;
    for (size_t i = 0; i <= raw.size(); ++i) {
      if (i == raw.size() || raw[i] == '\t') {
        cols.push_back(trim(raw.substr(start, i - start)));
        start = i + 1;
      }
    }
    // Trailing empty columns (a stray TAB at the end) mean nothing.
    while (cols.size() > 1 && cols.back().empty()) cols.pop_back();
    if (cols.size() > 3) throw Error(where, "too many TAB-separated columns (label, threshold, negative)");
    TagLabel l;
    l.name = cols[0];
    l.line = line_no;
    if (l.name.empty()) throw Error(where, "empty label");
    if (cols.size() > 1 && !cols[1].empty()) {
      l.threshold = parse_number(cols[1]);
      if (!l.threshold) throw Error(where, "threshold \"" + cols[1] + "\" is not a number");
      check_threshold(ScoreOn::Cosine, *l.threshold, where);
    }
    if (cols.size() > 2) l.negative = cols[2];
    out.push_back(std::move(l));
  }
  return out;
}

std::vector<TagLabel> load_tag_labels_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path, "is a directory, not a labels file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open labels file");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size > kMaxLabelsFileBytes) throw Error(path, "labels file larger than 16 MiB");
  in.seekg(0);
  std::string text(size > 0 ? static_cast<size_t>(size) : 0, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad() || (size > 0 && !in)) throw Error(path, "read error");
  return parse_tag_labels(text, path);
}

ThresholdSpec parse_threshold_spec(const std::string& text) {
  ThresholdSpec s;
  std::string value = text;
  const auto eq = text.rfind('=');
  if (eq != std::string::npos) {
    s.label = trim(text.substr(0, eq));
    value = text.substr(eq + 1);
    if (s.label.empty()) throw Error("--threshold \"" + text + "\"", "empty label before '='");
  }
  const auto v = parse_number(value);
  if (!v) throw Error("--threshold \"" + text + "\"", "expected a number or LABEL=NUMBER");
  s.value = *v;
  return s;
}

}  // namespace zeroshot::classify
