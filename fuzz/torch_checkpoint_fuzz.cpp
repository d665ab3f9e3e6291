// The PyTorch checkpoint reader (zip and legacy formats, the restricted unpickler, storage records) on a file
// holding the input, then every float tensor converted to f32 (reads every byte a tensor's view claims).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "io/safetensors.h"
#include "io/torch_checkpoint.h"
#include "zeroshot/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zeroshot;
  (void)io::is_torch_checkpoint(data, size);
  const std::string path = fuzz::write_scratch("input.bin", data, size);
  try {
    for (const io::LoadedTensor& t : io::read_torch_checkpoint(path))
      if (t.view.is_float() && t.view.numel() <= (1 << 20)) io::to_f32(t.view);
  } catch (const Error&) {
  }
  return 0;
}
