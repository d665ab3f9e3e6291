#include "text/clip_tokenizer.h"

#include <array>
#include <filesystem>
#include <limits>
#include <utility>

#include "text/bpe.h"
#include "text/ftfy.h"
#include "text/text_normalize.h"
#include "zeroshot/error.h"

namespace zeroshot::text {

namespace {

constexpr size_t kClipMerges = 49152 - 256 - 2;  // the reference uses merges[1 : 49152-256-2+1]
const char* const kBos = "<|startoftext|>";
const char* const kEos = "<|endoftext|>";

// Printable ASCII (plus tab / line feed / form feed) without '&': ftfy and html.unescape leave it unchanged.
bool ftfy_identity(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (!((c >= 0x20 && c < 0x7F && c != '&') || c == '\t' || c == '\n' || c == '\f')) return false;
  }
  return true;
}

using bpe::CharClass;

// The classes of the CLIP pattern as the `regex` module matches them with IGNORECASE: U+0345 (which case-folds to
// a letter but is not one) matches neither [\p{L}] nor [^\s\p{L}\p{N}], so it separates tokens and is dropped.
inline CharClass char_class(char32_t c) { return c == 0x345 ? CharClass::kSpace : bpe::char_class(c); }

// Case-insensitive literal match as the pattern's IGNORECASE does it on lower-cased text: only 's' has another
// simple case-folding partner among the literal letters (U+017F LATIN SMALL LETTER LONG S).
bool literal_at(std::u32string_view t, size_t i, std::string_view lit) {
  if (i + lit.size() > t.size()) return false;
  for (size_t k = 0; k < lit.size(); ++k) {
    const char32_t c = t[i + k];
    const char32_t l = static_cast<unsigned char>(lit[k]);
    if (!(c == l || (l == U's' && c == 0x17F))) return false;
  }
  return true;
}

}  // namespace

size_t clip_match_token(std::u32string_view t, size_t i, const ClipSpecialTokens& specials) {
  if (t[i] == U'<') {
    if (literal_at(t, i, specials.bos)) return specials.bos.size();
    if (literal_at(t, i, specials.eos)) return specials.eos.size();
  }
  if (t[i] == U'\'') {
    for (std::string_view c : {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"})
      if (literal_at(t, i, c)) return c.size();
  }
  switch (char_class(t[i])) {
    case CharClass::kLetter: {
      size_t j = i + 1;
      while (j < t.size() && char_class(t[j]) == CharClass::kLetter) ++j;
      return j - i;
    }
    case CharClass::kNumber: return 1;
    case CharClass::kSpace: return 0;
    case CharClass::kOther: {
      size_t j = i + 1;
      while (j < t.size() && char_class(t[j]) == CharClass::kOther) ++j;
      return j - i;
    }
  }
  return 0;
}

struct ClipTokenizer::Impl {
  bpe::Vocab vocab;
  std::array<int32_t, 256> byte_id{};      // symbol id of each byte, inside a word
  std::array<int32_t, 256> byte_end_id{};  // ... and as the last symbol of a word (with "</w>")
  bpe::MergeTable merges;
  int32_t bos = 0, eos = 0;
  ClipSpecialTokens specials;  // how bos / eos are spelled in a text
  bpe::WordCache cache;

  Impl(bpe::Files files, ClipSpecialTokens specials);
  void encode_word(const std::string& word, std::vector<int32_t>& out) const;
};

ClipTokenizer::Impl::Impl(bpe::Files files, ClipSpecialTokens sp)
    : vocab(std::move(files.vocab)), specials(std::move(sp)) {
  auto lookup = [&](const std::string& tok, int32_t& id) {
    auto it = vocab.find(tok);
    if (it == vocab.end()) return false;
    id = it->second;
    return true;
  };
  const auto& symbols = bpe::byte_symbols();
  for (size_t b = 0; b < 256; ++b) {
    if (!lookup(symbols[b], byte_id[b]) || !lookup(symbols[b] + "</w>", byte_end_id[b]))
      throw Error(files.vocab_name, "not a CLIP byte-level vocabulary (byte symbol " + std::to_string(b) + " missing)");
  }
  if (!lookup(kBos, bos) || !lookup(kEos, eos))
    throw Error(files.vocab_name, "missing the special tokens <|startoftext|> / <|endoftext|>");
  merges = bpe::MergeTable::build(vocab, files.merges, files.merges_name);
}

// The word's bytes as symbols ("</w>" on the last one), then BPE.
void ClipTokenizer::Impl::encode_word(const std::string& word, std::vector<int32_t>& out) const {
  if (word == specials.bos) {
    out.push_back(bos);
    return;
  }
  if (word == specials.eos) {
    out.push_back(eos);
    return;
  }
  cache.encode(word, out, [this](const std::string& w, std::vector<int32_t>& ids) {
    ids.resize(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      const auto b = static_cast<unsigned char>(w[i]);
      ids[i] = i + 1 == w.size() ? byte_end_id[b] : byte_id[b];
    }
    merges.apply(ids);
  });
}

ClipTokenizer::ClipTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;
ClipTokenizer::~ClipTokenizer() = default;

ClipTokenizer ClipTokenizer::from_files(const std::string& vocab_json, const std::string& merges_txt,
                                        ClipSpecialTokens specials) {
  return ClipTokenizer(
      std::make_unique<Impl>(bpe::load_vocab_and_merges(vocab_json, merges_txt, kClipMerges), std::move(specials)));
}

ClipTokenizer ClipTokenizer::from_tokenizer_json(const std::string& tokenizer_json, ClipSpecialTokens specials) {
  return ClipTokenizer(
      std::make_unique<Impl>(bpe::load_tokenizer_json(tokenizer_json, kClipMerges), std::move(specials)));
}

ClipTokenizer ClipTokenizer::from_dir(const std::string& dir, ClipSpecialTokens specials) {
  namespace fs = std::filesystem;
  const fs::path d(dir);
  std::error_code ec;
  const bool has_vocab = fs::is_regular_file(d / "vocab.json", ec);
  const bool has_merges = fs::is_regular_file(d / "merges.txt", ec);
  if (has_vocab && has_merges)
    return from_files((d / "vocab.json").string(), (d / "merges.txt").string(), std::move(specials));
  if (fs::is_regular_file(d / "tokenizer.json", ec))
    return from_tokenizer_json((d / "tokenizer.json").string(), std::move(specials));
  std::string missing = !has_vocab && !has_merges ? "vocab.json and merges.txt"
                        : has_vocab               ? "merges.txt"
                                                  : "vocab.json";
  throw Error(dir, "no CLIP tokenizer: missing " + missing + " (and no tokenizer.json)");
}

std::vector<int32_t> ClipTokenizer::encode(std::string_view utf8_text, size_t max_length) const {
  // basic_clean: ftfy.fix_text, html.unescape twice, strip; whitespace_clean; lower().
  std::u32string text = decode_utf8_lossy(utf8_text);
  if (!ftfy_identity(utf8_text)) text = html_unescape(html_unescape(ftfy_fix_text(text)));
  text = python_lower(whitespace_clean(py_strip(text)));

  // Once max_length-1 ids are known the result is fixed (truncated), so the rest of the text is not tokenized.
  const size_t enough = max_length == 0 ? std::numeric_limits<size_t>::max() : max_length - 1;
  std::vector<int32_t> ids;
  std::string word;
  for (size_t i = 0; i < text.size() && ids.size() < enough;) {
    const size_t len = clip_match_token(text, i, impl_->specials);
    if (len == 0) {
      ++i;
      continue;
    }
    word.clear();
    for (size_t k = i; k < i + len; ++k) append_utf8(word, text[k]);
    impl_->encode_word(word, ids);
    i += len;
  }

  std::vector<int32_t> out;
  out.reserve(ids.size() + 2);
  out.push_back(impl_->bos);
  out.insert(out.end(), ids.begin(), ids.end());
  out.push_back(impl_->eos);
  if (max_length != 0 && out.size() > max_length) {
    out.resize(max_length - 1);
    out.push_back(impl_->eos);
  }
  return out;
}

int32_t ClipTokenizer::bos_id() const { return impl_->bos; }
int32_t ClipTokenizer::eos_id() const { return impl_->eos; }
size_t ClipTokenizer::vocab_size() const { return impl_->vocab.size(); }

}  // namespace zeroshot::text
