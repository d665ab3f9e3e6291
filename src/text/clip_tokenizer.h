// CLIP's byte-level BPE tokenizer, exactly as OpenAI's reference (and HF's slow CLIPTokenizer with ftfy).
//
// encode(): ftfy-like repair (see clip_tokenizer.cpp for what is and is not covered), html-unescape twice,
// whitespace collapse + strip, lower-case (Unicode-aware, via utf8proc), split with the CLIP pattern
//   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// byte-to-unicode mapping, BPE with merges ranked by line order and "</w>" on the last symbol of a word,
// then [bos] + ids + [eos]; longer than max_length: the first max_length-1 tokens and eos last.
// Thread-safe for concurrent encode() calls (the per-word merge cache is guarded).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace zeroshot::text {

class ClipTokenizer {
 public:
  // From vocab.json + merges.txt.
  static ClipTokenizer from_files(const std::string& vocab_json, const std::string& merges_txt);
  // From a `tokenizers` tokenizer.json (model.vocab + model.merges).
  static ClipTokenizer from_tokenizer_json(const std::string& tokenizer_json);
  // From a model folder: vocab.json + merges.txt if present, else tokenizer.json; a clear error naming the
  // folder and the missing files otherwise.
  static ClipTokenizer from_dir(const std::string& dir);

  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;
  ~ClipTokenizer();

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
