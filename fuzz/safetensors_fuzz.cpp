// The safetensors reader (header JSON, dtypes, shapes, offsets, metadata) on a file holding the input, then every
// float tensor converted to f32 (reads every byte the header claims).
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "io/safetensors.h"
#include "zeroshot/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zeroshot;
  const std::string path = fuzz::write_scratch("input.safetensors", data, size);
  try {
    const io::SafeTensorsFile f(path);
    for (const auto& [name, t] : f.tensors())
      if (t.is_float() && t.numel() <= (1 << 20)) io::to_f32(t);
  } catch (const Error&) {
  }
  return 0;
}
