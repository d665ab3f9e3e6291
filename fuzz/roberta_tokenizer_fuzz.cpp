// The RoBERTa tokenizer (special tokens, GPT-2 split pattern, byte-level BPE) on arbitrary bytes, with the CLAP
// fixture's vocabulary; truncation on and off.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_util.h"
#include "text/roberta_tokenizer.h"
#include "zeroshot/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zeroshot;
  static const text::RobertaTokenizer tok =
      text::RobertaTokenizer::from_dir(fuzz::fixtures() + "/clap/clap-tiny-unfused");
  const std::string_view s(reinterpret_cast<const char*>(data), size);
  try {
    const size_t max_length = size & 1 ? 0 : 3 + size % 13;
    const auto ids = tok.encode(s, max_length);
    if (ids.size() < 2 || ids.front() != tok.bos_id() || ids.back() != tok.eos_id()) __builtin_trap();
    if (max_length && ids.size() > max_length) __builtin_trap();
    for (int32_t id : ids)
      if (id < 0 || static_cast<size_t>(id) >= tok.vocab_size()) __builtin_trap();
  } catch (const Error&) {
  }
  return 0;
}
