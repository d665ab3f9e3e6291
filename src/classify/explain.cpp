#include "classify/explain.h"

#include <algorithm>
#include <cmath>

#include "zeroshot/error.h"

namespace zeroshot::classify {

namespace {

double dot(const float* a, const float* b, size_t dim) {
  double s = 0;
  for (size_t i = 0; i < dim; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

double norm(const float* a, size_t dim) { return std::sqrt(dot(a, a, dim)); }

// cos(a, label) with the label already unit length; a zero vector gives 0, not NaN.
double cosine(const float* a, const float* label, size_t dim) {
  const double n = norm(a, dim);
  return n > 0 ? dot(a, label, dim) / n : 0.0;
}

}  // namespace

bool parse_map_method(const std::string& name, MapMethod* out) {
  if (name == "cosine") *out = MapMethod::Cosine;
  else if (name == "surgery") *out = MapMethod::Surgery;
  else return false;
  return true;
}

const char* map_method_name(MapMethod m) { return m == MapMethod::Cosine ? "cosine" : "surgery"; }

std::vector<float> patch_label_maps(const float* tokens, size_t n, size_t dim, const float* labels, size_t k,
                                    MapMethod method, const float* empty_label) {
  std::vector<float> out(k * n);
  if (k == 0 || n == 0) return out;
  const float* patches = tokens + dim;
  if (method == MapMethod::Cosine) {
    for (size_t j = 0; j < k; ++j)
      for (size_t i = 0; i < n; ++i)
        out[j * n + i] = static_cast<float>(cosine(patches + i * dim, labels + j * dim, dim));
    return out;
  }
  if (k == 1) {
    if (!empty_label) throw Error("explain", "feature surgery with one label needs the empty label's embedding");
    std::vector<float> diff(dim);
    for (size_t c = 0; c < dim; ++c) diff[c] = labels[c] - empty_label[c];
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(cosine(patches + i * dim, diff.data(), dim));
    return out;
  }
  // Label weights from the image embedding: w_k = softmax(2 cos) / mean(softmax) (CLIP Surgery's t = 2).
  std::vector<double> w(k);
  double top = -1e300;
  for (size_t j = 0; j < k; ++j) top = std::max(top, w[j] = 2.0 * cosine(tokens, labels + j * dim, dim));
  double sum = 0;
  for (double& v : w) sum += v = std::exp(v - top);
  for (double& v : w) v = v / sum * static_cast<double>(k);
  std::vector<double> s(k);
  for (size_t i = 0; i < n; ++i) {
    double mean = 0;
    for (size_t j = 0; j < k; ++j) mean += s[j] = w[j] * cosine(patches + i * dim, labels + j * dim, dim);
    mean /= static_cast<double>(k);
    for (size_t j = 0; j < k; ++j) out[j * n + i] = static_cast<float>(s[j] - mean);
  }
  return out;
}

}  // namespace zeroshot::classify
