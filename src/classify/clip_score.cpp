#include "classify/clip_score.h"

#include <algorithm>

namespace zeroshot::classify {

float dot(const float* a, const float* b, size_t dim) {
  double s = 0;
  for (size_t i = 0; i < dim; ++i) s += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(s);
}

float clip_score(float cosine, float w) { return w * std::max(cosine, 0.f); }

float ref_clip_score(float clip_s, float ref_cosine) {
  const float r = std::max(ref_cosine, 0.f);
  const float sum = clip_s + r;
  // Both zero: the harmonic mean's limit (the reference code would divide 0 by 0 here).
  return sum > 0.f ? 2.f * clip_s * r / sum : 0.f;
}

}  // namespace zeroshot::classify
