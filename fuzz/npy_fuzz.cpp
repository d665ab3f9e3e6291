// The strict .npy reader (index/npy.h) on a file holding the input: header, dtype, shape and length checks, then the
// matrix converted to float32 (reads every byte the header claims).
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "index/npy.h"
#include "zeroshot/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zeroshot;
  const std::string path = fuzz::write_scratch("input.npy", data, size);
  try {
    index::read_npy_f32(path);
  } catch (const Error&) {
  }
  return 0;
}
