// Outputs a reference library wrote at test time: a CTest fixture-setup script (src/image/pil_reference.py,
// formats_reference.py, ...) writes files and a manifest.json into a folder of the build tree. When the setup
// skipped (its library is not installed) there is no manifest, and the tests that compare against it skip with
// ZS_REQUIRE_REFERENCE instead of failing.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"

namespace zeroshot::testing {

// A reference fixture folder's expected outputs, as tests/reference's generators write them: DIR/expected.json
// and DIR/expected.safetensors. Throws zeroshot::Error when either cannot be read.
struct ExpectedOutputs {
  io::Json json;
  io::SafeTensorsFile tensors;
  explicit ExpectedOutputs(const std::string& dir);
  std::vector<float> get(const std::string& name) const;    // a tensor, converted to f32
  bool has(const std::string& name) const;                  // whether expected.safetensors holds it
  std::vector<std::string> strings(const char* key) const;  // a list of strings of expected.json
  std::vector<int64_t> shape(const std::string& name) const;
  // The model inputs the reference ran: "pixel_values/<image>" of every image of expected.json's "images",
  // concatenated in that order, and expected.json's "input_ids".
  std::vector<float> all_pixel_values() const;
  std::vector<std::vector<int32_t>> input_ids() const;
};

// DIR/manifest.json, parsed once per folder for the life of the test binary; null when absent.
const nlohmann::json& reference_manifest(const std::string& dir);

// The bytes of a file (empty when it cannot be read: the comparison that follows fails and names it).
std::vector<uint8_t> read_bytes(const std::string& path);

// Where two byte strings first differ: -1 when equal, 0 when their sizes differ (the whole output is wrong).
long first_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b);

}  // namespace zeroshot::testing

// In a TEST body: skip unless the reference setup wrote DIR/manifest.json.
#define ZS_REQUIRE_REFERENCE(dir)                             \
  if (::zeroshot::testing::reference_manifest(dir).is_null()) \
  GTEST_SKIP() << "no " << (dir) << "/manifest.json (its reference setup skipped)"
