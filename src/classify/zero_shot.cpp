#include "classify/zero_shot.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "zeroshot/error.h"

namespace zeroshot::classify {

namespace {

// Walks a template the way Python's str.format does for "{}" fields; calls out(piece) / field().
template <typename Out, typename Field>
void walk_template(const std::string& t, Out out, Field field) {
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (c == '{') {
      if (i + 1 < t.size() && t[i + 1] == '{') {
        out('{');
        ++i;
      } else if (i + 1 < t.size() && t[i + 1] == '}') {
        field();
        ++i;
      } else {
        throw Error("template \"" + t + "\"", "only \"{}\" fields are supported (use \"{{\" for a literal brace)");
      }
    } else if (c == '}') {
      if (i + 1 < t.size() && t[i + 1] == '}') {
        out('}');
        ++i;
      } else {
        throw Error("template \"" + t + "\"", "single '}' encountered (use \"}}\" for a literal brace)");
      }
    } else {
      out(c);
    }
  }
}

}  // namespace

void validate_template(const std::string& tmpl) {
  int fields = 0;
  walk_template(
      tmpl, [](char) {}, [&] { ++fields; });
  if (fields == 0) throw Error("template \"" + tmpl + "\"", "has no \"{}\" where the label goes");
}

std::string fill_template(const std::string& tmpl, const std::string& label) {
  validate_template(tmpl);
  std::string s;
  s.reserve(tmpl.size() + label.size());
  walk_template(
      tmpl, [&](char c) { s.push_back(c); }, [&] { s += label; });
  return s;
}

void l2_normalize_rows(float* x, size_t rows, size_t dim) {
  for (size_t r = 0; r < rows; ++r) {
    float* v = x + r * dim;
    double ss = 0;
    for (size_t i = 0; i < dim; ++i) ss += static_cast<double>(v[i]) * v[i];
    const float n = std::max(static_cast<float>(std::sqrt(ss)), 1e-12f);
    for (size_t i = 0; i < dim; ++i) v[i] /= n;
  }
}

std::vector<float> ensemble_label_embeddings(const float* prompt_embeds, size_t num_labels, size_t num_templates,
                                             size_t dim) {
  std::vector<float> prompts(prompt_embeds, prompt_embeds + num_labels * num_templates * dim);
  l2_normalize_rows(prompts.data(), num_labels * num_templates, dim);
  std::vector<float> out(num_labels * dim, 0.f);
  for (size_t k = 0; k < num_labels; ++k) {
    float* o = out.data() + k * dim;
    for (size_t t = 0; t < num_templates; ++t) {
      const float* p = prompts.data() + (k * num_templates + t) * dim;
      for (size_t i = 0; i < dim; ++i) o[i] += p[i];
    }
    for (size_t i = 0; i < dim; ++i) o[i] /= static_cast<float>(num_templates);
  }
  l2_normalize_rows(out.data(), num_labels, dim);
  return out;
}

std::vector<float> cosines(const float* x, const float* label_embeds, size_t num_labels, size_t dim) {
  double ss = 0;
  for (size_t i = 0; i < dim; ++i) ss += static_cast<double>(x[i]) * x[i];
  const double inv = 1.0 / std::max(std::sqrt(ss), 1e-12);
  std::vector<float> cos(num_labels);
  for (size_t k = 0; k < num_labels; ++k) {
    double dot = 0;
    const float* l = label_embeds + k * dim;
    for (size_t i = 0; i < dim; ++i) dot += static_cast<double>(x[i]) * l[i];
    cos[k] = static_cast<float>(dot * inv);
  }
  return cos;
}

std::vector<float> zero_shot_probs(const float* x, const float* label_embeds, size_t num_labels, size_t dim,
                                   float scale) {
  std::vector<float> p = cosines(x, label_embeds, num_labels, dim);
  if (p.empty()) return p;
  for (float& v : p) v *= scale;
  const float mx = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (float& v : p) {
    v = std::exp(v - mx);
    sum += v;
  }
  for (float& v : p) v = static_cast<float>(v / sum);
  return p;
}

float sigmoid_score(float cos, float scale, float bias) {
  const float logit = scale * cos + bias;
  // Either branch keeps exp's argument <= 0 (no overflow at any logit).
  if (logit >= 0) return 1.0f / (1.0f + std::exp(-logit));
  const float e = std::exp(logit);
  return e / (1.0f + e);
}

std::vector<float> zero_shot_sigmoid(const float* x, const float* label_embeds, size_t num_labels, size_t dim,
                                     float scale, float bias) {
  std::vector<float> p = cosines(x, label_embeds, num_labels, dim);
  for (float& v : p) v = sigmoid_score(v, scale, bias);
  return p;
}

std::vector<LabelScore> rank(const std::vector<std::string>& labels, const std::vector<float>& scores, size_t top_k) {
  std::vector<size_t> order(labels.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  if (top_k && top_k < order.size()) order.resize(top_k);
  std::vector<LabelScore> out;
  out.reserve(order.size());
  for (size_t i : order) out.push_back({labels[i], scores[i]});
  return out;
}

}  // namespace zeroshot::classify
