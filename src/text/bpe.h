// Byte-level BPE pieces shared by the CLIP and RoBERTa (GPT-2) tokenizers: GPT-2's bytes_to_unicode table, the
// \p{L} / \p{N} / \s classes of the pre-tokenizer patterns, vocab.json / merges.txt / tokenizer.json loading, the
// merge loop and a bounded, thread-safe per-word cache. Internal to src/text/.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/json.h"

namespace zeroshot::text::bpe {

// GPT-2's bytes_to_unicode(): the symbol (as UTF-8) that stands for each byte. Printable Latin-1 bytes stand for
// themselves, the other 68 for U+0100 onwards, in byte order.
const std::array<std::string, 256>& byte_symbols();

// ---- character classes -------------------------------------------------------------------------------------------

enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

// How the `regex` module classifies a code point in a case-sensitive pattern: \p{L} (Lu Ll Lt Lm Lo), \p{N}
// (Nd Nl No), \s (Unicode White_Space, which unlike str.isspace() excludes U+001C..U+001F) or none of them.
// Categories are utf8proc's.
CharClass char_class_non_ascii(char32_t c);
inline CharClass char_class(char32_t c) {
  if (c < 0x80) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CharClass::kLetter;
    if (c >= '0' && c <= '9') return CharClass::kNumber;
    if (c == ' ' || (c >= '\t' && c <= '\r')) return CharClass::kSpace;
    return CharClass::kOther;
  }
  return char_class_non_ascii(c);
}

// ---- files -------------------------------------------------------------------------------------------------------

using Vocab = std::unordered_map<std::string, int32_t>;

struct MergeRule {
  std::string left, right;
  size_t line;  // merges.txt line number (1-based), or index in tokenizer.json's model.merges; for error messages
};

// What a tokenizer is built from; the names are the ones error messages start with.
struct Files {
  Vocab vocab;
  std::vector<MergeRule> merges;  // in rank order
  std::string vocab_name, merges_name;
  std::vector<std::pair<std::string, int32_t>> added_tokens;  // tokenizer.json's "added_tokens": content, id
};

std::string read_file(const std::string& path);
// vocab.json (object token -> non-negative id) + merges.txt: an optional "#version" first line, then one "left right"
// pair per line (whitespace separated, as str.split()); an empty last line is allowed, other empty lines are errors.
// At most max_merges rules are read (the rest of the file is ignored, as the CLIP reference slices it).
Files load_vocab_and_merges(const std::string& vocab_json, const std::string& merges_txt, size_t max_merges);
// A `tokenizers` tokenizer.json: model.type "BPE", model.vocab, model.merges ("left right" strings or [left, right]).
Files load_tokenizer_json(const std::string& tokenizer_json, size_t max_merges);
// The same from the parsed file (`name` starts the error messages).
Files load_tokenizer_json(const io::Json& j, const std::string& name, size_t max_merges);

// ---- merging -----------------------------------------------------------------------------------------------------

inline uint64_t pair_key(int32_t left, int32_t right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }

struct MergeTable {
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> ranks;  // (left, right) -> (rank, merged id)

  // Every symbol of every rule must be in the vocabulary (an error naming merges_name and the line otherwise); a
  // repeated pair keeps its last rank, like the reference's dict(zip(merges, range(...))).
  static MergeTable build(const Vocab& vocab, const std::vector<MergeRule>& merges, const std::string& merges_name);

  // The reference's bpe(word): merge every occurrence (left to right) of the adjacent pair with the lowest rank,
  // then look again, until no adjacent pair has a rank. Symbols are vocabulary ids; in place. O(n log n) with a
  // heap, so that a huge word cannot stall it.
  void apply(std::vector<int32_t>& symbols) const;
};

// ---- cache -------------------------------------------------------------------------------------------------------

// word (UTF-8) -> ids. Words longer than kMaxWordBytes are not cached; the cache is emptied when it holds kMaxWords.
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 128;
  static constexpr size_t kMaxWords = size_t(1) << 18;

  // Appends the ids of `word` to `out`: cached, or compute(word, ids) (which fills an empty vector) and cached.
  template <class Compute>
  void encode(const std::string& word, std::vector<int32_t>& out, Compute&& compute) const {
    const bool cacheable = word.size() <= kMaxWordBytes;
    if (cacheable) {
      std::shared_lock lock(mutex_);
      if (auto it = map_.find(word); it != map_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> ids;
    compute(word, ids);
    out.insert(out.end(), ids.begin(), ids.end());
    if (cacheable) {
      std::unique_lock lock(mutex_);
      if (map_.size() >= kMaxWords) map_.clear();
      map_.emplace(word, std::move(ids));
    }
  }

 private:
  mutable std::shared_mutex mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> map_;
};

}  // namespace zeroshot::text::bpe
