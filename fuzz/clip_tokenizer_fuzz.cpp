// The CLIP tokenizer (html unescape, ftfy repairs, whitespace, lower-case, the split pattern, byte-level BPE) on
// arbitrary bytes (invalid UTF-8 included), with the fixture's real 49408-token vocabulary.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_util.h"
#include "text/clip_tokenizer.h"
#include "zeroshot/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zeroshot;
  static const text::ClipTokenizer tok = text::ClipTokenizer::from_dir(fuzz::fixtures() + "/clip/clip-tiny-quickgelu");
  const std::string_view s(reinterpret_cast<const char*>(data), size);
  try {
    const auto ids = tok.encode(s, size & 1 ? 77 : 0);
    if (ids.size() < 2 || ids.front() != tok.bos_id() || ids.back() != tok.eos_id()) __builtin_trap();
    for (int32_t id : ids)
      if (id < 0 || static_cast<size_t>(id) >= tok.vocab_size()) __builtin_trap();
  } catch (const Error&) {
  }
  return 0;
}
