#include "support/reference.h"

#include <fstream>
#include <iterator>
#include <map>
#include <mutex>

namespace zeroshot::testing {

ExpectedOutputs::ExpectedOutputs(const std::string& dir)
    : json(io::load_json(dir + "/expected.json")), tensors(dir + "/expected.safetensors") {}

std::vector<float> ExpectedOutputs::get(const std::string& name) const {
  return io::to_f32(tensors.tensors().at(name));
}

bool ExpectedOutputs::has(const std::string& name) const { return tensors.tensors().count(name) != 0; }

std::vector<std::string> ExpectedOutputs::strings(const char* key) const {
  return json.at(key).get<std::vector<std::string>>();
}

std::vector<int64_t> ExpectedOutputs::shape(const std::string& name) const { return tensors.tensors().at(name).shape; }

std::vector<float> ExpectedOutputs::all_pixel_values() const {
  std::vector<float> all;
  for (const std::string& image : strings("images")) {
    const std::vector<float> v = get("pixel_values/" + image);
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

std::vector<std::vector<int32_t>> ExpectedOutputs::input_ids() const {
  return json.at("input_ids").get<std::vector<std::vector<int32_t>>>();
}

const nlohmann::json& reference_manifest(const std::string& dir) {
  static std::mutex mu;
  static std::map<std::string, nlohmann::json> parsed;  // node-based: references stay valid as it grows
  const std::lock_guard<std::mutex> lock(mu);
  auto it = parsed.find(dir);
  if (it == parsed.end()) {
    std::ifstream f(dir + "/manifest.json");
    it = parsed.emplace(dir, f ? nlohmann::json::parse(f) : nlohmann::json()).first;
  }
  return it->second;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

long first_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return static_cast<long>(i);
  return -1;
}

}  // namespace zeroshot::testing
