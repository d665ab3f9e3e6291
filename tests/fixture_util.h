// Reading the reference outputs in ../shared/fixtures/clip/<model>/expected.{json,safetensors}.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"

namespace zeroshot::testing {

inline std::string fixtures() { return ZEROSHOT_FIXTURES; }
inline std::string clip_dir(const std::string& model) { return fixtures() + "/clip/" + model; }
inline std::string image_path(const std::string& name) { return fixtures() + "/images/" + name; }
inline const std::vector<std::string>& clip_models() {
  static const std::vector<std::string> m = {"clip-tiny-quickgelu", "clip-tiny-gelu-f16"};
  return m;
}

struct Expected {
  io::Json json;
  io::SafeTensorsFile tensors;
  explicit Expected(const std::string& model)
      : json(io::load_json(clip_dir(model) + "/expected.json")), tensors(clip_dir(model) + "/expected.safetensors") {}
  std::vector<float> get(const std::string& name) const { return io::to_f32(tensors.tensors().at(name)); }
  std::vector<int64_t> shape(const std::string& name) const { return tensors.tensors().at(name).shape; }
  bool ftfy_sensitive(const std::string& text) const {
    for (const auto& t : json["ftfy_sensitive_texts"])
      if (t.get<std::string>() == text) return true;
    return false;
  }
};

inline float max_abs(const float* a, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i]));
  return m;
}
inline float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace zeroshot::testing
