// CLIP's byte-level BPE tokenizer, exactly as OpenAI's reference (and HF's slow CLIPTokenizer with ftfy).
//
// encode(): ftfy-like repair (ftfy.h says what is and is not mirrored), html-unescape twice,
// whitespace collapse + strip, lower-case (Unicode-aware, via utf8proc), split with the CLIP pattern
//   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// byte-to-unicode mapping, BPE with merges ranked by line order and "</w>" on the last symbol of a word,
// then [bos] + ids + [eos]; longer than max_length: the first max_length-1 tokens and eos last.
// Thread-safe for concurrent encode() calls (the per-word merge cache is guarded).
//
// Python semantics kept on purpose: lower() is str.lower(), so 'İ' (U+0130) becomes "i" + U+0307 (two tokens:
// "i" and the combining dot), 'ẞ' (U+1E9E) becomes 'ß', and a word-final 'Σ' becomes 'ς'. Invalid UTF-8 is
// decoded as Python's bytes.decode("utf-8", "replace") would (one U+FFFD per maximal invalid sequence).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "text/text_normalize.h"

namespace zeroshot::text {

class ClipTokenizer {
 public:
  // From vocab.json + merges.txt. `specials`: how bos / eos are spelled in texts (text_normalize.h); the ids are
  // the vocabulary's <|startoftext|> / <|endoftext|> either way.
  static ClipTokenizer from_files(const std::string& vocab_json, const std::string& merges_txt,
                                  ClipSpecialTokens specials = {});
  // From a `tokenizers` tokenizer.json (model.vocab + model.merges).
  static ClipTokenizer from_tokenizer_json(const std::string& tokenizer_json, ClipSpecialTokens specials = {});
  // From a model folder: vocab.json + merges.txt if present, else tokenizer.json; a clear error naming the
  // folder and the missing files otherwise.
  static ClipTokenizer from_dir(const std::string& dir, ClipSpecialTokens specials = {});

  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;
  ~ClipTokenizer();

  // [bos] + ids + [eos]; longer than max_length: the first max_length-1 and eos. max_length 0: no truncation.
  std::vector<int32_t> encode(std::string_view utf8_text, size_t max_length = 77) const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  size_t vocab_size() const;

 private:
  struct Impl;
  explicit ClipTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zeroshot::text
