// Where the shared fixtures are (../shared/fixtures, never copied into the repo; the build passes the path as
// ZEROSHOT_FIXTURES) and how to read the reference outputs in clip/<model>/ and clap/<model>/
// expected.{json,safetensors}. Expected and ClapExpected throw zeroshot::Error naming the file when a fixture is
// missing or damaged.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"

namespace zeroshot::testing {

inline std::string fixtures() { return ZEROSHOT_FIXTURES; }
inline std::string shared() { return ZEROSHOT_SHARED; }
inline std::string clip_dir(const std::string& model) { return fixtures() + "/clip/" + model; }
inline std::string clap_dir(const std::string& model) { return fixtures() + "/clap/" + model; }
inline std::string image_path(const std::string& name) { return fixtures() + "/images/" + name; }
inline std::string audio_path(const std::string& name) { return fixtures() + "/audio/" + name; }
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

struct ClapExpected {
  io::Json json;
  io::SafeTensorsFile tensors;
  explicit ClapExpected(const std::string& model)
      : json(io::load_json(clap_dir(model) + "/expected.json")), tensors(clap_dir(model) + "/expected.safetensors") {}
  std::vector<float> get(const std::string& name) const { return io::to_f32(tensors.tensors().at(name)); }
  std::vector<std::string> audio_files() const {
    std::vector<std::string> v;
    for (const auto& a : json["audio"]) v.push_back(a["file"].get<std::string>());
    return v;
  }
};

}  // namespace zeroshot::testing
