// A `tokenizers` tokenizer.json of the SentencePiece-converted kind (Gemma's, which SigLIP 2 ships): a BPE model with
// byte fallback, run as transformers' fast tokenizer (GemmaTokenizerFast, or PreTrainedTokenizerFast) runs it.
//
// encode(), step by step as `tokenizers` (0.19) Tokenizer.encode does it:
//   1. the added tokens (tokenizer.json "added_tokens", plus the special tokens tokenizer_config.json names) with
//      "normalized": false are split out of the raw text, leftmost-longest, honouring lstrip / rstrip (the
//      whitespace next to the token joins it) and single_word;
//   2. every other piece goes through the normalizer (supported: Replace with a string pattern, Prepend, Lowercase,
//      Strip, Sequence of those; Gemma's is Replace(" ", "▁")), then the "normalized": true added tokens are split
//      out of it;
//   3. there is no pre-tokenizer (Gemma has none: another one is refused), so each remaining piece is one BPE word:
//      one symbol per character, a character missing from the vocabulary becomes its UTF-8 bytes' <0xXX> tokens
//      (byte_fallback), else the unk token (consecutive unks fused with fuse_unk), then the merges by rank;
//   4. truncation=True: the first max_length - (number of special tokens added) ids; then the post-processor's
//      special tokens. For GemmaTokenizer(Fast) the post-processor is rebuilt from tokenizer_config.json's
//      add_bos_token (default true) and add_eos_token (default false), as GemmaTokenizerFast.__init__ does;
//      otherwise tokenizer.json's TemplateProcessing (or none).
// No lower-casing unless the normalizer says so: SigLIP 2's shipped tokenizer does not lower-case, and the reference
// pipeline feeds it the text as typed.
// The zero-shot pipeline then pads to model_max_length (64) on tokenizer_config.json's padding_side (GemmaTokenizer's
// class default: left) with the pad token, with the attention mask when model_input_names holds "attention_mask".
// Thread-safe: encode() may be called concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace zeroshot::text {

class BpeJsonTokenizer {
 public:
  // From a model folder: tokenizer.json, and tokenizer_config.json when present (tokenizer_class, add_bos_token,
  // add_eos_token, the special tokens, model_max_length, padding_side, model_input_names). Throws zeroshot::Error
  // naming the file: missing or corrupt tokenizer.json, a model other than BPE, a normalizer / pre-tokenizer /
  // post-processor this does not implement, a special token that is not in the vocabulary, ...
  static BpeJsonTokenizer from_dir(const std::string& dir);

  BpeJsonTokenizer(BpeJsonTokenizer&&) noexcept;
  BpeJsonTokenizer& operator=(BpeJsonTokenizer&&) noexcept;
  ~BpeJsonTokenizer();

  // ids with the special tokens, at most max_length() (longer texts truncated as above); no padding.
  std::vector<int32_t> encode(std::string_view utf8_text) const;
  // ids padded to max_length() with pad_id(), on the padding side.
  std::vector<int32_t> pad(std::vector<int32_t> ids) const;
  bool attention_mask() const;
  bool pad_left() const;  // padding_side "left"
  int32_t pad_id() const;
  size_t max_length() const;
  size_t vocab_size() const;  // model vocabulary plus added tokens (the highest id + 1)

 private:
  struct Impl;
  explicit BpeJsonTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zeroshot::text
