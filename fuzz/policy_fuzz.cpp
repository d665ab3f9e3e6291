// The moderation policy parser (TOML via toml++, then the policy's own checks).
#include <cstddef>
#include <cstdint>
#include <string>

#include "classify/policy.h"
#include "zeroshot/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zeroshot;
  try {
    classify::parse_policy(std::string(reinterpret_cast<const char*>(data), size), "fuzz.toml");
  } catch (const Error&) {
  }
  return 0;
}
