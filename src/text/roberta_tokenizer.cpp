#include "text/roberta_tokenizer.h"

#include <array>
#include <filesystem>
#include <limits>
#include <utility>

#include "text/bpe.h"
#include "text/text_normalize.h"
#include "zeroshot/error.h"

namespace zeroshot::text {

namespace {

using bpe::CharClass;

struct SpecialToken {
  std::u32string text;
  bool lstrip = false;  // eats the white space on its left
  bool rstrip = false;  // ... on its right
  int32_t id = 0;
};

enum Special : size_t { kBos, kEos, kPad, kUnk, kMask, kSpecials };

// RobertaTokenizer.__init__: every special token is AddedToken(lstrip=False, rstrip=False) except
// <mask> (lstrip=True), "so that it behaves like a normal word, i.e. includes the space before it".
std::array<SpecialToken, kSpecials> default_specials() {
  return {{{U"<s>"}, {U"</s>"}, {U"<pad>"}, {U"<unk>"}, {U"<mask>", /*lstrip=*/true}}};
}

// Length of the token GPT-2's pattern matches at t[i] (always >= 1):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t gpt2_match_token(std::u32string_view t, size_t i) {
  const size_t n = t.size();
  if (t[i] == U'\'' && i + 1 < n) {
    const char32_t a = t[i + 1];
    if (a == U's' || a == U't' || a == U'm' || a == U'd') return 2;
    if (i + 2 < n) {
      const char32_t b = t[i + 2];
      if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return 3;
    }
  }
  auto run = [&](size_t j, CharClass k) {  // end of the run of class k from j
    while (j < n && bpe::char_class(t[j]) == k) ++j;
    return j;
  };
  if (t[i] == U' ' && i + 1 < n) {  // " ?" followed by a letter, number or other run
    const CharClass k = bpe::char_class(t[i + 1]);
    if (k != CharClass::kSpace) return run(i + 2, k) - i;
  }
  const CharClass k = bpe::char_class(t[i]);
  if (k != CharClass::kSpace) return run(i + 1, k) - i;
  // White space: all of it at the end of the text; otherwise all but the last character, which then starts the
  // next token (" word"), unless it is the only one (\s+(?!\S) fails, \s+ takes it).
  const size_t j = run(i + 1, CharClass::kSpace);
  if (j == n || j - i == 1) return j - i;
  return j - i - 1;
}

}  // namespace

struct RobertaTokenizer::Impl {
  bpe::Vocab vocab;
  std::array<int32_t, 256> byte_id{};  // the symbol id of each byte
  bpe::MergeTable merges;
  std::array<SpecialToken, kSpecials> specials = default_specials();
  bpe::WordCache cache;

  explicit Impl(bpe::Files files);
  void encode_word(const std::string& word, std::vector<int32_t>& out) const;
  // Appends the ids of a piece of text without special tokens, stopping once `out` holds `enough` ids.
  void encode_piece(std::u32string_view piece, std::vector<int32_t>& out, size_t enough) const;
  // The special token that starts at t[i] (the longest, if several did), or kSpecials.
  size_t special_at(std::u32string_view t, size_t i) const;
};

RobertaTokenizer::Impl::Impl(bpe::Files files) : vocab(std::move(files.vocab)) {
  const auto& symbols = bpe::byte_symbols();
  for (size_t b = 0; b < 256; ++b) {
    auto it = vocab.find(symbols[b]);
    if (it == vocab.end())
      throw Error(files.vocab_name, "not a byte-level BPE vocabulary (byte symbol " + std::to_string(b) + " missing)");
    byte_id[b] = it->second;
  }
  for (auto& s : specials) {
    const std::string name = encode_utf8(s.text);
    if (auto it = vocab.find(name); it != vocab.end()) {
      s.id = it->second;
      continue;
    }
    bool found = false;
    for (const auto& [content, id] : files.added_tokens)
      if (content == name) {
        s.id = id;
        found = true;
        break;
      }
    if (!found) throw Error(files.vocab_name, "missing the special token " + name);
  }
  merges = bpe::MergeTable::build(vocab, files.merges, files.merges_name);
}

void RobertaTokenizer::Impl::encode_word(const std::string& word, std::vector<int32_t>& out) const {
  cache.encode(word, out, [this](const std::string& w, std::vector<int32_t>& ids) {
    ids.resize(w.size());
    for (size_t i = 0; i < w.size(); ++i) ids[i] = byte_id[static_cast<unsigned char>(w[i])];
    merges.apply(ids);
  });
}

void RobertaTokenizer::Impl::encode_piece(std::u32string_view piece, std::vector<int32_t>& out, size_t enough) const {
  std::string word;
  for (size_t i = 0; i < piece.size() && out.size() < enough;) {
    const size_t len = gpt2_match_token(piece, i);
    word.clear();
    for (size_t k = i; k < i + len; ++k) append_utf8(word, piece[k]);
    encode_word(word, out);
    i += len;
  }
}

size_t RobertaTokenizer::Impl::special_at(std::u32string_view t, size_t i) const {
  size_t best = kSpecials;
  for (size_t s = 0; s < kSpecials; ++s) {
    const auto& tok = specials[s].text;
    if (t.substr(i, tok.size()) == tok && (best == kSpecials || tok.size() > specials[best].text.size())) best = s;
  }
  return best;
}

RobertaTokenizer::RobertaTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RobertaTokenizer::RobertaTokenizer(RobertaTokenizer&&) noexcept = default;
RobertaTokenizer& RobertaTokenizer::operator=(RobertaTokenizer&&) noexcept = default;
RobertaTokenizer::~RobertaTokenizer() = default;

RobertaTokenizer RobertaTokenizer::from_files(const std::string& vocab_json, const std::string& merges_txt) {
  constexpr size_t kAll = std::numeric_limits<size_t>::max();
  return RobertaTokenizer(std::make_unique<Impl>(bpe::load_vocab_and_merges(vocab_json, merges_txt, kAll)));
}

RobertaTokenizer RobertaTokenizer::from_tokenizer_json(const std::string& tokenizer_json) {
  constexpr size_t kAll = std::numeric_limits<size_t>::max();
  return RobertaTokenizer(std::make_unique<Impl>(bpe::load_tokenizer_json(tokenizer_json, kAll)));
}

RobertaTokenizer RobertaTokenizer::from_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path d(dir);
  std::error_code ec;
  const bool has_vocab = fs::is_regular_file(d / "vocab.json", ec);
  const bool has_merges = fs::is_regular_file(d / "merges.txt", ec);
  if (has_vocab && has_merges) return from_files((d / "vocab.json").string(), (d / "merges.txt").string());
  if (fs::is_regular_file(d / "tokenizer.json", ec)) return from_tokenizer_json((d / "tokenizer.json").string());
  const std::string missing = !has_vocab && !has_merges ? "vocab.json and merges.txt"
                              : has_vocab               ? "merges.txt"
                                                        : "vocab.json";
  throw Error(dir, "no RoBERTa tokenizer: missing " + missing + " (and no tokenizer.json)");
}

std::vector<int32_t> RobertaTokenizer::encode(std::string_view utf8_text, size_t max_length) const {
  if (max_length == 1 || max_length == 2)
    throw Error("RoBERTa tokenizer", "max_length " + std::to_string(max_length) +
                                         " leaves no room for text (0: no truncation, or at least 3)");
  const Impl& im = *impl_;
  const std::u32string text = decode_utf8_lossy(utf8_text);
  // Once `enough` text ids are known the result is fixed (truncated), so the rest of the text is not tokenized.
  const size_t enough = max_length == 0 ? std::numeric_limits<size_t>::max() : max_length - 2;

  std::vector<int32_t> ids;
  ids.push_back(im.specials[kBos].id);                                                      // cls
  const size_t limit = enough == std::numeric_limits<size_t>::max() ? enough : enough + 1;  // counting <s>
  const std::u32string_view t(text);
  size_t begin = 0;       // start of the current piece of plain text
  bool eat_left = false;  // the previous special token has rstrip
  for (size_t i = 0; i <= t.size() && ids.size() < limit;) {
    const size_t s = i < t.size() && t[i] == U'<' ? im.special_at(t, i) : kSpecials;  // all start with '<'
    if (s == kSpecials && i < t.size()) {
      ++i;
      continue;
    }
    // A piece ends here, at a special token or at the end of the text.
    size_t b = begin, e = i;
    if (eat_left)
      while (b < e && py_isspace(t[b])) ++b;
    if (s != kSpecials && im.specials[s].lstrip)
      while (e > b && py_isspace(t[e - 1])) --e;
    im.encode_piece(t.substr(b, e - b), ids, limit);
    if (s == kSpecials) break;
    if (ids.size() < limit) ids.push_back(im.specials[s].id);
    eat_left = im.specials[s].rstrip;
    i += im.specials[s].text.size();
    begin = i;
  }
  if (ids.size() > limit) ids.resize(limit);
  ids.push_back(im.specials[kEos].id);  // sep
  return ids;
}

int32_t RobertaTokenizer::bos_id() const { return impl_->specials[kBos].id; }
int32_t RobertaTokenizer::eos_id() const { return impl_->specials[kEos].id; }
int32_t RobertaTokenizer::pad_id() const { return impl_->specials[kPad].id; }
int32_t RobertaTokenizer::unk_id() const { return impl_->specials[kUnk].id; }
int32_t RobertaTokenizer::mask_id() const { return impl_->specials[kMask].id; }
size_t RobertaTokenizer::vocab_size() const { return impl_->vocab.size(); }

}  // namespace zeroshot::text
