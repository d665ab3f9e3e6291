#include "text/clip_tokenizer.h"

#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <queue>
#include <shared_mutex>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "text/ftfy.h"
#include "text/text_normalize.h"
#include "zeroshot/error.h"

namespace zeroshot::text {

namespace {

constexpr size_t kClipMerges = 49152 - 256 - 2;  // the reference uses merges[1 : 49152-256-2+1]
constexpr size_t kCacheLimit = 1 << 18;           // words; the cache is dropped when it grows past this
constexpr size_t kCacheWordBytes = 128;           // longer words are not cached
const char* const kBos = "<|startoftext|>";
const char* const kEos = "<|endoftext|>";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path, "read error");
  return ss.str();
}

// GPT-2 / CLIP bytes_to_unicode(): printable Latin-1 bytes map to themselves, the rest to U+0100 onwards.
std::array<std::string, 256> byte_symbols() {
  std::array<std::string, 256> out;
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    append_utf8(out[static_cast<size_t>(b)], printable ? char32_t(b) : char32_t(256 + n++));
  }
  return out;
}

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

// Printable ASCII (plus tab / line feed / form feed) without '&': ftfy and html.unescape leave it unchanged.
bool ftfy_identity(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (!((c >= 0x20 && c < 0x7F && c != '&') || c == '\t' || c == '\n' || c == '\f')) return false;
  }
  return true;
}

}  // namespace

namespace {
enum class CharClass { kLetter, kNumber, kSpace, kOther };

// The classes of the CLIP pattern as the `regex` module matches them with IGNORECASE: U+0345 (which case-folds to
// a letter but is not one) matches neither [\p{L}] nor [^\s\p{L}\p{N}], so it separates tokens and is dropped.
CharClass char_class(char32_t c) {
  if (c < 0x80) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CharClass::kLetter;
    if (c >= '0' && c <= '9') return CharClass::kNumber;
    return regex_isspace(c) ? CharClass::kSpace : CharClass::kOther;
  }
  if (c == 0x345 || regex_isspace(c)) return CharClass::kSpace;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return CharClass::kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return CharClass::kNumber;
    default:
      return CharClass::kOther;
  }
}

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

size_t clip_match_token(std::u32string_view t, size_t i) {
  if (t[i] == U'<') {
    if (literal_at(t, i, kBos)) return 15;
    if (literal_at(t, i, kEos)) return 13;
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
    case CharClass::kNumber:
      return 1;
    case CharClass::kSpace:
      return 0;
    case CharClass::kOther: {
      size_t j = i + 1;
      while (j < t.size() && char_class(t[j]) == CharClass::kOther) ++j;
      return j - i;
    }
  }
  return 0;
}


namespace {
struct Tables {
  std::unordered_map<std::string, int32_t> vocab;
  std::array<int32_t, 256> byte_id{};      // symbol id of each byte, inside a word
  std::array<int32_t, 256> byte_end_id{};  // ... and as the last symbol of a word (with "</w>")
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (left, right) -> (rank, merged id)
  int32_t bos = 0, eos = 0;
};
}  // namespace

struct ClipTokenizer::Impl : Tables {
  explicit Impl(Tables t) : Tables(std::move(t)) {}

  mutable std::shared_mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  void bpe(const std::string& word, std::vector<int32_t>& out) const;
  void encode_word(const std::string& word, std::vector<int32_t>& out) const;
};

// Byte-level BPE of one word, merging the lowest-ranked adjacent pair everywhere (left to right) until none is
// left: the reference's loop, in O(n log n) with a heap so that a huge word cannot stall it. One rank is applied
// as a batch (all its occurrences, left to right) before pairs formed by it are considered, as in the reference.
void ClipTokenizer::Impl::bpe(const std::string& word, std::vector<int32_t>& out) const {
  const size_t n = word.size();
  std::vector<int32_t> id(n), next(n), prev(n);
  for (size_t i = 0; i < n; ++i) {
    const auto b = static_cast<unsigned char>(word[i]);
    id[i] = i + 1 == n ? byte_end_id[b] : byte_id[b];
    next[i] = i + 1 == n ? -1 : int32_t(i + 1);
    prev[i] = int32_t(i) - 1;
  }
  struct Entry {
    int32_t rank, pos, left, right;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push = [&](int32_t pos) {
    if (pos < 0 || next[size_t(pos)] < 0) return;
    const int32_t l = id[size_t(pos)], r = id[size_t(next[size_t(pos)])];
    if (auto it = merges.find(pair_key(l, r)); it != merges.end()) heap.push({it->second.first, pos, l, r});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(int32_t(i));
  std::vector<Entry> batch;
  std::vector<int32_t> touched;
  std::vector<char> alive(n, 1);
  while (!heap.empty()) {
    const int32_t rank = heap.top().rank;
    batch.clear();
    while (!heap.empty() && heap.top().rank == rank) {
      batch.push_back(heap.top());
      heap.pop();
    }  // popped in position order
    touched.clear();
    for (const Entry& e : batch) {
      const auto p = size_t(e.pos);
      if (!alive[p] || next[p] < 0 || id[p] != e.left || id[size_t(next[p])] != e.right) continue;
      const auto q = size_t(next[p]);
      id[p] = merges.at(pair_key(e.left, e.right)).second;
      alive[q] = 0;
      next[p] = next[q];
      if (next[q] >= 0) prev[size_t(next[q])] = int32_t(p);
      touched.push_back(int32_t(p));
    }
    for (int32_t p : touched) {
      if (!alive[size_t(p)]) continue;
      push(prev[size_t(p)]);
      push(p);
    }
  }
  for (int32_t i = 0; i >= 0; i = next[size_t(i)]) out.push_back(id[size_t(i)]);
}

void ClipTokenizer::Impl::encode_word(const std::string& word, std::vector<int32_t>& out) const {
  if (word == kBos) {
    out.push_back(bos);
    return;
  }
  if (word == kEos) {
    out.push_back(eos);
    return;
  }
  const bool cacheable = word.size() <= kCacheWordBytes;
  if (cacheable) {
    std::shared_lock lock(cache_mutex);
    if (auto it = cache.find(word); it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  bpe(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::unique_lock lock(cache_mutex);
    if (cache.size() >= kCacheLimit) cache.clear();
    cache.emplace(word, std::move(ids));
  }
}

ClipTokenizer::ClipTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;
ClipTokenizer::~ClipTokenizer() = default;

namespace {

// Shared by both file formats: `merges` are the "left right" pairs in rank order (already sliced).
Tables build(std::unordered_map<std::string, int32_t> vocab,
                                           const std::vector<std::pair<std::string, std::string>>& merges,
                                           const std::vector<size_t>& merge_lines, const std::string& vocab_name,
                                           const std::string& merges_name) {
  Tables t;
  Tables* impl = &t;
  impl->vocab = std::move(vocab);
  const auto& v = impl->vocab;
  auto lookup = [&](const std::string& tok, int32_t& id) {
    auto it = v.find(tok);
    if (it == v.end()) return false;
    id = it->second;
    return true;
  };
  const auto symbols = byte_symbols();
  for (size_t b = 0; b < 256; ++b) {
    if (!lookup(symbols[b], impl->byte_id[b]) || !lookup(symbols[b] + "</w>", impl->byte_end_id[b]))
      throw Error(vocab_name, "not a CLIP byte-level vocabulary (byte symbol " + std::to_string(b) + " missing)");
  }
  if (!lookup(kBos, impl->bos) || !lookup(kEos, impl->eos))
    throw Error(vocab_name, "missing the special tokens <|startoftext|> / <|endoftext|>");
  impl->merges.reserve(merges.size() * 2);
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& [a, b] = merges[r];
    int32_t ia, ib, iab;
    if (!lookup(a, ia) || !lookup(b, ib) || !lookup(a + b, iab))
      throw Error(merges_name, "line " + std::to_string(merge_lines[r]) + ": merge \"" + a + " " + b +
                                   "\" uses a symbol that is not in the vocabulary");
    impl->merges[pair_key(ia, ib)] = {int32_t(r), iab};  // a repeated pair keeps its last rank, like dict(zip())
  }
  return t;
}

std::unordered_map<std::string, int32_t> parse_vocab(const nlohmann::json& j, const std::string& name) {
  if (!j.is_object()) throw Error(name, "vocabulary is not a JSON object of token -> id");
  std::unordered_map<std::string, int32_t> vocab;
  vocab.reserve(j.size());
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_number_integer()) throw Error(name, "token \"" + it.key() + "\" has a non-integer id");
    const auto id = it.value().get<int64_t>();
    if (id < 0 || id > std::numeric_limits<int32_t>::max())
      throw Error(name, "token \"" + it.key() + "\" has an out-of-range id " + std::to_string(id));
    vocab.emplace(it.key(), static_cast<int32_t>(id));
  }
  if (vocab.empty()) throw Error(name, "empty vocabulary");
  return vocab;
}

// One merges.txt line "left right" (whitespace separated, as str.split()).
bool split_merge(std::string_view line, std::pair<std::string, std::string>& out) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    const size_t s = i;
    while (i < line.size() && !(line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    if (i > s) parts.push_back(line.substr(s, i - s));
  }
  if (parts.size() != 2) return false;
  out = {std::string(parts[0]), std::string(parts[1])};
  return true;
}

}  // namespace

ClipTokenizer ClipTokenizer::from_files(const std::string& vocab_json, const std::string& merges_txt) {
  const std::string vocab_text = read_file(vocab_json);
  const nlohmann::json vj = nlohmann::json::parse(vocab_text, nullptr, /*allow_exceptions=*/false);
  if (vj.is_discarded()) throw Error(vocab_json, "not valid JSON");
  auto vocab = parse_vocab(vj, vocab_json);

  const std::string text = read_file(merges_txt);
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<size_t> lines;
  size_t pos = 0, line_no = 0;
  while (pos < text.size() && merges.size() < kClipMerges) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (line_no == 1 && line.rfind("#version", 0) == 0) continue;  // header
    std::pair<std::string, std::string> m;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
      if (pos >= text.size()) break;  // trailing empty line
      throw Error(merges_txt, "line " + std::to_string(line_no) + ": empty line");
    }
    if (!split_merge(line, m)) throw Error(merges_txt, "line " + std::to_string(line_no) + ": expected two symbols");
    merges.push_back(std::move(m));
    lines.push_back(line_no);
  }
  if (merges.empty()) throw Error(merges_txt, "no merges");
  return ClipTokenizer(std::make_unique<Impl>(build(std::move(vocab), merges, lines, vocab_json, merges_txt)));
}

ClipTokenizer ClipTokenizer::from_tokenizer_json(const std::string& tokenizer_json) {
  const std::string text = read_file(tokenizer_json);
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(tokenizer_json, "not valid JSON");
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    throw Error(tokenizer_json, "no \"model\" object");
  const auto& model = j["model"];
  if (model.contains("type") && model["type"] != "BPE") throw Error(tokenizer_json, "model.type is not BPE");
  if (!model.contains("vocab") || !model.contains("merges") || !model["merges"].is_array())
    throw Error(tokenizer_json, "model needs \"vocab\" and \"merges\"");
  auto vocab = parse_vocab(model["vocab"], tokenizer_json);
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<size_t> lines;
  for (size_t i = 0; i < model["merges"].size() && merges.size() < kClipMerges; ++i) {
    const auto& m = model["merges"][i];
    std::pair<std::string, std::string> pair;
    if (m.is_string()) {  // "left right"
      if (!split_merge(m.get<std::string>(), pair))
        throw Error(tokenizer_json, "model.merges[" + std::to_string(i) + "]: expected two symbols");
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // ["left", "right"]
      pair = {m[0].get<std::string>(), m[1].get<std::string>()};
    } else {
      throw Error(tokenizer_json, "model.merges[" + std::to_string(i) + "]: expected two symbols");
    }
    merges.push_back(std::move(pair));
    lines.push_back(i);
  }
  if (merges.empty()) throw Error(tokenizer_json, "no merges");
  return ClipTokenizer(
      std::make_unique<Impl>(build(std::move(vocab), merges, lines, tokenizer_json, tokenizer_json + " model.merges")));
}

ClipTokenizer ClipTokenizer::from_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path d(dir);
  std::error_code ec;
  const bool has_vocab = fs::is_regular_file(d / "vocab.json", ec);
  const bool has_merges = fs::is_regular_file(d / "merges.txt", ec);
  if (has_vocab && has_merges) return from_files((d / "vocab.json").string(), (d / "merges.txt").string());
  if (fs::is_regular_file(d / "tokenizer.json", ec)) return from_tokenizer_json((d / "tokenizer.json").string());
  std::string missing = !has_vocab && !has_merges ? "vocab.json and merges.txt" : has_vocab ? "merges.txt" : "vocab.json";
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
    const size_t len = clip_match_token(text, i);
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
