// RoBERTa's byte-level BPE tokenizer (GPT-2's, as CLAP's text tower uses it), exactly as Hugging Face's slow
// RobertaTokenizer encodes one text with add_special_tokens=True (ClapProcessor, zero-shot-audio-classification):
//
// 1. The text is used as is: no normalization, no lower-casing, no stripping. Invalid UTF-8 is decoded as Python's
//    bytes.decode("utf-8", "replace") would (one U+FFFD per maximal invalid sequence): the reference only ever sees
//    a Python str, so that is what a caller holding bytes would have passed it.
// 2. The special tokens <s> </s> <pad> <unk> <mask> written literally in the text are cut out first, left to right
//    (HF's added-tokens trie, which for these five prefix-free tokens is a plain left-to-right scan), and become
//    their ids. <mask> has lstrip: the white space (str.isspace()) right before it is dropped; the others keep the
//    text around them as it is (so " </s>" leaves a lone " " token before it).
// 3. Each piece between them is split with GPT-2's pattern (case-sensitive; classes as the `regex` module's)
//      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//    each word's UTF-8 bytes become GPT-2 bytes_to_unicode symbols, merged by BPE with the merges.txt ranks (no
//    end-of-word marker).
// 4. [<s>] + ids + [</s>]. max_length N (HF truncation=True, max_length=N, right side): the first N-2 text ids are
//    kept, so the result has at most N ids and still ends with </s>. 0: no truncation (the pipeline's behaviour;
//    the model itself accepts at most 512 positions).
// Thread-safe for concurrent encode() calls (the per-word merge cache is guarded).
//
// Deliberate differences from HF, all on inputs HF handles silently or inconsistently:
// - max_length 1 or 2 is an Error (HF logs an error and returns the ids untruncated, longer than max_length).
// - The vocabulary must hold the 256 byte symbols, every merge's two parts and result, and the five special tokens
//   (tokenizer.json: in model.vocab or added_tokens); otherwise loading fails with an Error naming the file and the
//   line, where HF would map the missing symbols to <unk>. So encode() never produces <unk> except for a literal
//   "<unk>".
// - The special tokens are RobertaTokenizer's defaults (what the laion CLAP checkpoints use); special_tokens_map.json
//   and tokenizer_config.json are not read, and no other added tokens are supported.
// - merges.txt: the first line is skipped only if it is a "#version" header, and a last line without '\n' is kept
//   (HF always drops the first line and whatever follows the last '\n').
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace zeroshot::text {

class RobertaTokenizer {
 public:
  // From vocab.json + merges.txt.
  static RobertaTokenizer from_files(const std::string& vocab_json, const std::string& merges_txt);
  // From a `tokenizers` tokenizer.json (model.vocab, model.merges, added_tokens).
  static RobertaTokenizer from_tokenizer_json(const std::string& tokenizer_json);
  // From a model folder: vocab.json + merges.txt if both are present, else tokenizer.json; otherwise an Error that
  // names the folder and the missing files.
  static RobertaTokenizer from_dir(const std::string& dir);

  RobertaTokenizer(RobertaTokenizer&&) noexcept;
  RobertaTokenizer& operator=(RobertaTokenizer&&) noexcept;
  ~RobertaTokenizer();

  // [<s>] + ids + [</s>]; max_length 0: no truncation, else at most max_length ids (>= 3, see above).
  std::vector<int32_t> encode(std::string_view utf8_text, size_t max_length = 0) const;

  int32_t bos_id() const;     // <s> (also the cls token every sequence starts with)
  int32_t eos_id() const;     // </s> (also the sep token every sequence ends with)
  int32_t pad_id() const;     // <pad> (HF pads on the right with it; position ids skip it)
  int32_t unk_id() const;     // <unk>
  int32_t mask_id() const;    // <mask>
  size_t vocab_size() const;  // entries of the vocabulary (50265 for roberta-base)

 private:
  struct Impl;
  explicit RobertaTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zeroshot::text
