// SigLIP's tokenizer: transformers' SiglipTokenizer (the slow, SentencePiece
// one) over a checkpoint's spiece.model, and the zero-shot pipeline's padding.
//
// encode(), step by step as SiglipTokenizer.tokenize +
// build_inputs_with_special_tokens do it:
//   1. "▁" + the text with every U+2581 replaced by a space;
//   2. do_lower_case: Python's str.lower() one code point at a time (the
//   tokenizer lowers with re.sub over single
//      characters, so a final 'Σ' becomes 'σ', not 'ς');
//   3. split at the special tokens' spellings (eos, unk, pad: "</s>", "<unk>"),
//   stripping the whitespace on both
//      sides of each (their AddedToken lstrip / rstrip);
//   4. each other piece canonicalized as big_vision does (ASCII punctuation
//   removed, runs of Unicode whitespace to
//      one space, stripped), then encoded by SentencePiece with the model's
//      add_dummy_prefix turned off, behind the unk token's spelling whose
//      pieces are then dropped (SiglipTokenizer's trick to keep a leading "▁");
//   5. a leading lone "▁" before a special token dropped; ids of the pieces
//   (unknown pieces: the unk id);
//   6. over max_length - 1 ids: the first max_length - 1 (transformers'
//   truncation=True); eos appended unless the
//      ids already end with it.
// The zero-shot pipeline then pads to max_length (64) with the pad id, and passes the attention mask when the tokenizer
// returns one (its model_input_names in tokenizer_config.json name "attention_mask"; the class default does): pad()
// and the model's text encoder (models/siglip.h) reproduce either.
// Thread-safe: encode() may be called concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace zeroshot::text {

class SiglipTokenizer {
 public:
  // From a model folder: spiece.model, and tokenizer_config.json when present
  // (do_lower_case, model_max_length, the eos / unk / pad spellings). Throws
  // zeroshot::Error naming the file: missing or corrupt spiece.model, a special
  // token the SentencePiece model does not hold, ...
  static SiglipTokenizer from_dir(const std::string& dir);

  SiglipTokenizer(SiglipTokenizer&&) noexcept;
  SiglipTokenizer& operator=(SiglipTokenizer&&) noexcept;
  ~SiglipTokenizer();

  // ids + eos, at most max_length() ids (longer texts truncated as above); no
  // padding.
  std::vector<int32_t> encode(std::string_view utf8_text) const;
  // ids padded to max_length() with pad_id() (what the pipeline feeds the
  // model).
  std::vector<int32_t> pad(std::vector<int32_t> ids) const;
  // Whether the tokenizer returns an attention mask (the pipeline then masks the padding; without one the model
  // attends to the pad tokens too).
  bool attention_mask() const;
  int32_t eos_id() const;
  int32_t pad_id() const;
  size_t max_length() const;  // model_max_length (64 for every SigLIP checkpoint)
  size_t vocab_size() const;

 private:
  struct Impl;
  explicit SiglipTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zeroshot::text
