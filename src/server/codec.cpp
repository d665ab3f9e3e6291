#include "server/codec.h"

#include <algorithm>

#include "zeroshot/error.h"

namespace zeroshot::server {

namespace {

// 0-63: the digit's value (both alphabets); 64: whitespace (skipped); 65: '='; 255: anything else.
struct Table {
  uint8_t v[256];
  constexpr Table() : v() {
    for (uint8_t& x : v) x = 255;
    for (int i = 0; i < 26; ++i) v['A' + i] = static_cast<uint8_t>(i), v['a' + i] = static_cast<uint8_t>(26 + i);
    for (int i = 0; i < 10; ++i) v['0' + i] = static_cast<uint8_t>(52 + i);
    v['+'] = v['-'] = 62;
    v['/'] = v['_'] = 63;
    v[' '] = v['\n'] = v['\r'] = v['\t'] = 64;
    v['='] = 65;
  }
};
constexpr Table kTable;

}  // namespace

std::vector<uint8_t> base64_decode(std::string_view text, const std::string& what) {
  if (text.rfind("data:", 0) == 0) {
    const size_t comma = text.find(',');
    if (comma == std::string_view::npos || text.substr(0, comma).find(";base64") == std::string_view::npos)
      throw Error(what, "a data: URI must be base64 (\"data:image/png;base64,...\")");
    text.remove_prefix(comma + 1);
  }
  std::vector<uint8_t> out(text.size() / 4 * 3 + 3);
  uint8_t* o = out.data();
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0, digits = 0;
  for (const unsigned char c : text) {
    const uint8_t v = kTable.v[c];
    if (v < 64) {
      if (pad) throw Error(what, "base64: data after '=' padding");
      ++digits;
      acc = (acc << 6) | v;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        *o++ = static_cast<uint8_t>(acc >> bits);
        acc &= (1u << bits) - 1;
      }
    } else if (v == 65) {
      ++pad;
    } else if (v != 64) {
      throw Error(what, "not base64 (unexpected character)");
    }
  }
  if (digits % 4 == 1 || pad > 2 || (pad && (digits + pad) % 4 != 0)) throw Error(what, "base64: bad length");
  out.resize(static_cast<size_t>(o - out.data()));
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Every byte of the longer string is visited; the length difference is folded into the result.
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

}  // namespace zeroshot::server
