#include "text/text_normalize.h"

#include <utf8proc.h>

#include <algorithm>
#include <string>
#include <unordered_map>

#include "text/unicode_data.h"

namespace zeroshot::text {

namespace data {
bool in_ranges(const CodepointRange* table, size_t size, char32_t c) {
  const CodepointRange* end = table + size;
  const CodepointRange* it =
      std::upper_bound(table, end, c, [](char32_t v, const CodepointRange& r) { return v < r.lo; });
  return it != table && c <= (it - 1)->hi;
}
}  // namespace data

// ---- UTF-8 -------------------------------------------------------------------------------------------------------

namespace {
// Length of the valid UTF-8 sequence starting at s[i], or 0; `maximal` gets the length of the longest prefix of a
// valid sequence (what Python replaces with one U+FFFD).
size_t utf8_sequence(std::string_view s, size_t i, char32_t& cp, size_t& maximal) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  maximal = 1;
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) return 0;
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
    cp = (cp << 6) | (b & 0x3F);
    maximal = k + 1;
  }
  return need + 1;
}
}  // namespace

std::u32string decode_utf8_lossy(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    size_t maximal = 1;
    const size_t n = utf8_sequence(s, i, cp, maximal);
    if (n) {
      out.push_back(cp);
      i += n;
    } else {
      out.push_back(0xFFFD);
      i += maximal;
    }
  }
  return out;
}

bool decode_utf8_strict(std::string_view s, bool variants, std::u32string& out) {
  out.clear();
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (variants && b0 == 0xC0 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80) {
      out.push_back(0);  // Java's modified UTF-8 null
      i += 2;
      continue;
    }
    if (variants && b0 == 0xED && i + 5 < s.size()) {
      auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
      if (b(1) >= 0xA0 && b(1) <= 0xAF && b(2) >= 0x80 && b(2) <= 0xBF && b(3) == 0xED && b(4) >= 0xB0 &&
          b(4) <= 0xBF && b(5) >= 0x80 && b(5) <= 0xBF) {  // CESU-8 surrogate pair
        out.push_back(static_cast<char32_t>(((b(1) & 0x0F) << 16) + ((b(2) & 0x3F) << 10) + ((b(4) & 0x0F) << 6) +
                                            (b(5) & 0x3F) + 0x10000));
        i += 6;
        continue;
      }
    }
    char32_t cp = 0;
    size_t maximal = 1;
    const size_t n = utf8_sequence(s, i, cp, maximal);
    if (!n) return false;
    out.push_back(cp);
    i += n;
  }
  return true;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) append_utf8(out, c);
  return out;
}

// ---- html.unescape ------------------------------------------------------------------------------------------------

namespace {
const std::unordered_map<std::string, std::u32string>& html5_table() {
  static const auto* table = [] {
    auto* m = new std::unordered_map<std::string, std::u32string>();
    m->reserve(data::kHtml5Entities_size * 2);
    for (size_t i = 0; i < data::kHtml5Entities_size; ++i)
      m->emplace(data::kHtml5Entities[i].name, data::kHtml5Entities[i].value);
    return m;
  }();
  return *table;
}

bool is_ascii_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_hex_digit(char32_t c) { return is_ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(char32_t c) {
  return is_ascii_digit(c) ? int(c - '0') : (c >= 'a' ? int(c - 'a' + 10) : int(c - 'A' + 10));
}

// html._replace_charref for "&#...": the number, saturated just above 0x10FFFF (Python's int is unbounded).
void append_numeric_charref(std::u32string& out, uint32_t num) {
  for (size_t i = 0; i < data::kHtmlInvalidCharrefs_size; ++i) {
    if (data::kHtmlInvalidCharrefs[i].number == num) {
      out += data::kHtmlInvalidCharrefs[i].value;
      return;
    }
  }
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    out.push_back(0xFFFD);
    return;
  }
  if (std::binary_search(data::kHtmlInvalidCodepoints, data::kHtmlInvalidCodepoints + data::kHtmlInvalidCodepoints_size,
                         static_cast<char32_t>(num)))
    return;
  out.push_back(static_cast<char32_t>(num));
}
}  // namespace

const std::u32string* html5_entity(std::string_view name) {
  const auto& table = html5_table();
  auto it = table.find(std::string(name));
  return it == table.end() ? nullptr : &it->second;
}

std::u32string html_unescape(std::u32string_view s) {
  if (s.find(U'&') == std::u32string_view::npos) return std::u32string(s);
  const auto& table = html5_table();
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    const size_t start = i + 1;
    // Alternatives in the order of html._charref: '#' digits, '#x' hex digits, then a name.
    if (start < s.size() && s[start] == U'#') {
      size_t j = start + 1;
      uint32_t num = 0;
      const uint32_t cap = 0x110000;
      if (j < s.size() && is_ascii_digit(s[j])) {
        while (j < s.size() && is_ascii_digit(s[j])) {
          num = std::min<uint32_t>(cap, num * 10 + uint32_t(s[j] - '0'));
          ++j;
        }
      } else if (j + 1 < s.size() && (s[j] == U'x' || s[j] == U'X') && is_hex_digit(s[j + 1])) {
        ++j;
        while (j < s.size() && is_hex_digit(s[j])) {
          num = std::min<uint32_t>(cap, num * 16 + uint32_t(hex_value(s[j])));
          ++j;
        }
      } else {
        out.push_back(s[i++]);  // "&#" not followed by a number: no match here
        continue;
      }
      if (j < s.size() && s[j] == U';') ++j;
      append_numeric_charref(out, num);
      i = j;
      continue;
    }
    // [^\t\n\f <&#;]{1,32};?
    size_t j = start;
    while (j < s.size() && j - start < 32) {
      const char32_t c = s[j];
      if (c == U'\t' || c == U'\n' || c == U'\f' || c == U' ' || c == U'<' || c == U'&' || c == U'#' || c == U';')
        break;
      ++j;
    }
    if (j == start) {
      out.push_back(s[i++]);
      continue;
    }
    if (j < s.size() && s[j] == U';') ++j;
    // Names are ASCII: other code points become a byte no name contains, keeping one byte per code point.
    std::string name;
    name.reserve(j - start);
    for (size_t k = start; k < j; ++k) name.push_back(s[k] < 0x80 ? static_cast<char>(s[k]) : '\x01');
    if (auto it = table.find(name); it != table.end()) {
      out += it->second;
    } else {
      bool found = false;
      for (size_t x = name.size() - 1; x >= 2 && x < name.size(); --x) {  // longest matching prefix, at least 2
        if (auto p = table.find(name.substr(0, x)); p != table.end()) {
          out += p->second;
          out.append(s.substr(start + x, j - start - x));
          found = true;
          break;
        }
      }
      if (!found) out.append(s.substr(i, j - i));
    }
    i = j;
  }
  return out;
}

// ---- lower-case, whitespace ----------------------------------------------------------------------------------------

bool py_isspace(char32_t c) { return data::in_ranges(data::kPyIsSpace, data::kPyIsSpace_size, c); }
bool regex_isspace(char32_t c) { return py_isspace(c) && !(c >= 0x1C && c <= 0x1F); }
bool py_isword(char32_t c) { return data::in_ranges(data::kPyReWord, data::kPyReWord_size, c); }

namespace {
bool py_cased(char32_t c) { return data::in_ranges(data::kPyCased, data::kPyCased_size, c); }
bool py_case_ignorable(char32_t c) { return data::in_ranges(data::kPyCaseIgnorable, data::kPyCaseIgnorable_size, c); }

// CPython's handle_capital_sigma: final form when preceded by a cased letter and not followed by one (skipping
// case-ignorable characters both ways).
bool final_sigma(std::u32string_view s, size_t i) {
  size_t j = i;
  while (j > 0 && py_case_ignorable(s[j - 1])) --j;
  if (j == 0 || !py_cased(s[j - 1])) return false;
  size_t k = i + 1;
  while (k < s.size() && py_case_ignorable(s[k])) ++k;
  return k == s.size() || !py_cased(s[k]);
}
}  // namespace

std::u32string python_lower(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    } else if (c == 0x130) {  // the one unconditional multi-character lower-case mapping (SpecialCasing.txt)
      out.push_back(U'i');
      out.push_back(0x307);
    } else if (c == 0x3A3) {
      out.push_back(final_sigma(s, i) ? 0x3C2 : 0x3C3);
    } else {
      out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
  }
  return out;
}

std::u32string_view py_strip(std::u32string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && py_isspace(s[b])) ++b;
  while (e > b && py_isspace(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::u32string whitespace_clean(std::u32string_view s) {
  std::u32string collapsed;
  collapsed.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (regex_isspace(s[i])) {
      while (i < s.size() && regex_isspace(s[i])) ++i;
      collapsed.push_back(U' ');
    } else {
      collapsed.push_back(s[i++]);
    }
  }
  return std::u32string(py_strip(collapsed));
}

}  // namespace zeroshot::text
