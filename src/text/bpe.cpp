#include "text/bpe.h"

#include <utf8proc.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>
#include <limits>
#include <queue>
#include <sstream>
#include <string_view>

#include "text/text_normalize.h"
#include "zeroshot/error.h"

namespace zeroshot::text::bpe {

const std::array<std::string, 256>& byte_symbols() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> out;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      append_utf8(out[static_cast<size_t>(b)], printable ? char32_t(b) : char32_t(256 + n++));
    }
    return out;
  }();
  return table;
}

CharClass char_class_non_ascii(char32_t c) {
  if (regex_isspace(c)) return CharClass::kSpace;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return CharClass::kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return CharClass::kNumber;
    default: return CharClass::kOther;
  }
}

// ---- files -------------------------------------------------------------------------------------------------------

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path, "read error");
  return ss.str();
}

namespace {

nlohmann::json parse_json_file(const std::string& path) {
  const std::string text = read_file(path);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(path, "not valid JSON");
  return j;
}

// ---- fast path for vocab.json -------------------------------------------------------------------------------------
// vocab.json is one flat {"token": id, ...} object of ~50k entries. nlohmann's DOM (a std::map of json values, then
// copied into the hash map) takes ~50 ms to build for it, most of a cold CLI call's tokenizer time; this scanner fills
// the hash map directly in a few ms. It accepts only what it fully understands (strict JSON strings with validated
// UTF-8 and escapes, ids that are non-negative int32 literals) and otherwise returns false: the file then goes
// through nlohmann, which also words the error. Duplicate keys keep the last id, as nlohmann and Python do.

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// One well-formed UTF-8 sequence starting at s[i] (a byte >= 0x80): appended to out, i advanced. RFC 3629 ranges:
// no overlong forms, no surrogates, nothing above U+10FFFF.
bool take_utf8(std::string_view s, size_t& i, std::string& out) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return false;
  }
  if (i + len > s.size()) return false;
  if (b(i + 1) < lo || b(i + 1) > hi) return false;
  for (size_t k = 2; k < len; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return false;
  out.append(s.data() + i, len);
  i += len;
  return true;
}

bool take_hex4(std::string_view s, size_t& i, uint32_t& v) {
  if (i + 4 > s.size()) return false;
  v = 0;
  for (size_t k = 0; k < 4; ++k) {
    const char c = s[i + k];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
    else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
    else return false;
  }
  i += 4;
  return true;
}

// A JSON string starting after its opening quote; i ends after the closing quote.
bool take_json_string(std::string_view s, size_t& i, std::string& out) {
  out.clear();
  while (i < s.size()) {
    const char c = s[i];
    if (c == '"') {
      ++i;
      return true;
    }
    if (static_cast<unsigned char>(c) < 0x20) return false;
    if (static_cast<unsigned char>(c) >= 0x80) {
      if (!take_utf8(s, i, out)) return false;
      continue;
    }
    if (c != '\\') {
      out.push_back(c);
      ++i;
      continue;
    }
    if (++i >= s.size()) return false;
    const char e = s[i++];
    switch (e) {
      case '"': out.push_back('"'); break;
      case '\\': out.push_back('\\'); break;
      case '/': out.push_back('/'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'u': {
        uint32_t cp;
        if (!take_hex4(s, i, cp)) return false;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // lone low surrogate
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t low;
          if (i + 2 > s.size() || s[i] != '\\' || s[i + 1] != 'u') return false;
          i += 2;
          if (!take_hex4(s, i, low) || low < 0xDC00 || low > 0xDFFF) return false;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        append_utf8(out, static_cast<char32_t>(cp));
        break;
      }
      default: return false;
    }
  }
  return false;
}

bool parse_flat_vocab(std::string_view s, Vocab& vocab) {
  size_t i = 0;
  auto skip = [&] {
    while (i < s.size() && is_json_space(s[i])) ++i;
  };
  skip();
  if (i >= s.size() || s[i] != '{') return false;
  ++i;
  vocab.reserve(s.size() / 12);  // ~20 bytes per entry in CLIP's and GPT-2's files
  std::string key;
  skip();
  if (i < s.size() && s[i] == '}') {
    ++i;
  } else {
    for (;;) {
      skip();
      if (i >= s.size() || s[i] != '"') return false;
      ++i;
      if (!take_json_string(s, i, key)) return false;
      skip();
      if (i >= s.size() || s[i] != ':') return false;
      ++i;
      skip();
      // A non-negative integer literal without leading zeros that fits int32.
      if (i >= s.size() || s[i] < '0' || s[i] > '9') return false;
      if (s[i] == '0' && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '9') return false;
      int64_t id = 0;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        id = id * 10 + (s[i++] - '0');
        if (id > std::numeric_limits<int32_t>::max()) return false;
      }
      if (i < s.size() && (s[i] == '.' || s[i] == 'e' || s[i] == 'E')) return false;
      vocab.insert_or_assign(key, static_cast<int32_t>(id));
      skip();
      if (i >= s.size()) return false;
      if (s[i] == ',') {
        ++i;
        continue;
      }
      if (s[i] != '}') return false;
      ++i;
      break;
    }
  }
  skip();
  return i == s.size();
}

Vocab parse_vocab(const nlohmann::json& j, const std::string& name) {
  if (!j.is_object()) throw Error(name, "vocabulary is not a JSON object of token -> id");
  Vocab vocab;
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
bool split_merge(std::string_view line, MergeRule& out) {
  std::string_view parts[2];
  size_t count = 0, i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    const size_t s = i;
    while (i < line.size() && !(line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    if (i > s) {
      if (count == 2) return false;
      parts[count++] = line.substr(s, i - s);
    }
  }
  if (count != 2) return false;
  out.left = std::string(parts[0]);
  out.right = std::string(parts[1]);
  return true;
}

}  // namespace

Files load_vocab_and_merges(const std::string& vocab_json, const std::string& merges_txt, size_t max_merges) {
  Files f;
  {
    const std::string text = read_file(vocab_json);
    if (!parse_flat_vocab(text, f.vocab) || f.vocab.empty()) {
      f.vocab.clear();
      nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) throw Error(vocab_json, "not valid JSON");
      f.vocab = parse_vocab(j, vocab_json);
    }
  }
  f.vocab_name = vocab_json;
  f.merges_name = merges_txt;

  const std::string text = read_file(merges_txt);
  size_t pos = 0, line_no = 0;
  while (pos < text.size() && f.merges.size() < max_merges) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (line_no == 1 && line.rfind("#version", 0) == 0) continue;  // header
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
      if (pos >= text.size()) break;  // trailing empty line
      throw Error(merges_txt, "line " + std::to_string(line_no) + ": empty line");
    }
    MergeRule m;
    if (!split_merge(line, m)) throw Error(merges_txt, "line " + std::to_string(line_no) + ": expected two symbols");
    m.line = line_no;
    f.merges.push_back(std::move(m));
  }
  if (f.merges.empty()) throw Error(merges_txt, "no merges");
  return f;
}

Files load_tokenizer_json(const std::string& tokenizer_json, size_t max_merges) {
  return load_tokenizer_json(parse_json_file(tokenizer_json), tokenizer_json, max_merges);
}

Files load_tokenizer_json(const io::Json& j, const std::string& tokenizer_json, size_t max_merges) {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    throw Error(tokenizer_json, "no \"model\" object");
  const auto& model = j["model"];
  if (model.contains("type") && model["type"] != "BPE") throw Error(tokenizer_json, "model.type is not BPE");
  if (!model.contains("vocab") || !model.contains("merges") || !model["merges"].is_array())
    throw Error(tokenizer_json, "model needs \"vocab\" and \"merges\"");
  Files f;
  f.vocab = parse_vocab(model["vocab"], tokenizer_json);
  f.vocab_name = tokenizer_json;
  f.merges_name = tokenizer_json + " model.merges";
  const auto& merges = model["merges"];
  for (size_t i = 0; i < merges.size() && f.merges.size() < max_merges; ++i) {
    const auto& m = merges[i];
    MergeRule rule;
    if (m.is_string()) {  // "left right", split at the first space as `tokenizers` does: a symbol may hold tabs
                          // (SentencePiece-converted vocabularies such as Gemma's have whitespace pieces)
      const std::string& line = m.get_ref<const std::string&>();
      const size_t sp = line.find(' ');
      if (sp == std::string::npos)
        throw Error(tokenizer_json, "model.merges[" + std::to_string(i) + "]: expected two symbols");
      rule.left = line.substr(0, sp);
      rule.right = line.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // ["left", "right"]
      rule.left = m[0].get<std::string>();
      rule.right = m[1].get<std::string>();
    } else {
      throw Error(tokenizer_json, "model.merges[" + std::to_string(i) + "]: expected two symbols");
    }
    rule.line = i;
    f.merges.push_back(std::move(rule));
  }
  if (f.merges.empty()) throw Error(tokenizer_json, "no merges");
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& t : j["added_tokens"]) {
      if (!t.is_object() || !t.contains("content") || !t["content"].is_string() || !t.contains("id") ||
          !t["id"].is_number_integer())
        throw Error(tokenizer_json, "added_tokens: expected objects with \"content\" and \"id\"");
      const auto id = t["id"].get<int64_t>();
      if (id < 0 || id > std::numeric_limits<int32_t>::max())
        throw Error(tokenizer_json, "added_tokens: out-of-range id " + std::to_string(id));
      f.added_tokens.emplace_back(t["content"].get<std::string>(), static_cast<int32_t>(id));
    }
  }
  return f;
}

// ---- merging -----------------------------------------------------------------------------------------------------

MergeTable MergeTable::build(const Vocab& vocab, const std::vector<MergeRule>& merges, const std::string& merges_name) {
  MergeTable t;
  t.ranks.reserve(merges.size() * 2);
  auto lookup = [&](const std::string& tok, int32_t& id) {
    auto it = vocab.find(tok);
    if (it == vocab.end()) return false;
    id = it->second;
    return true;
  };
  std::string joined;  // reused: no allocation per rule
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& m = merges[r];
    int32_t ia, ib, iab;
    joined.assign(m.left).append(m.right);
    if (!lookup(m.left, ia) || !lookup(m.right, ib) || !lookup(joined, iab))
      throw Error(merges_name, "line " + std::to_string(m.line) + ": merge \"" + m.left + " " + m.right +
                                   "\" uses a symbol that is not in the vocabulary");
    t.ranks[pair_key(ia, ib)] = {int32_t(r), iab};
  }
  return t;
}

// One rank is applied as a batch (all its occurrences, left to right) before pairs formed by it are considered, as
// in the reference.
void MergeTable::apply(std::vector<int32_t>& symbols) const {
  const size_t n = symbols.size();
  if (n < 2) return;
  std::vector<int32_t>& id = symbols;
  std::vector<int32_t> next(n), prev(n);
  for (size_t i = 0; i < n; ++i) {
    next[i] = i + 1 == n ? -1 : int32_t(i + 1);
    prev[i] = int32_t(i) - 1;
  }
  struct Entry {
    int32_t rank, pos, left, right, merged;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push = [&](int32_t pos) {
    if (pos < 0 || next[size_t(pos)] < 0) return;
    const int32_t l = id[size_t(pos)], r = id[size_t(next[size_t(pos)])];
    if (auto it = ranks.find(pair_key(l, r)); it != ranks.end())
      heap.push({it->second.first, pos, l, r, it->second.second});
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
      id[p] = e.merged;
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
  size_t out = 0;
  for (int32_t i = 0; i >= 0; i = next[size_t(i)]) id[out++] = id[size_t(i)];
  id.resize(out);
}

}  // namespace zeroshot::text::bpe
