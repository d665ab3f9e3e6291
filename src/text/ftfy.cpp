// ftfy.fix_text, step by step. Written by hand from ftfy 6.3's documented behaviour and source: the regular
// expressions of ftfy (badness.BADNESS_RE, chardata.UTF8_DETECTOR_RE, ALTERED_UTF8_RE, LOSSY_UTF8_RE, ...) are
// fixed-length patterns, so each is matched by direct code instead of a regex engine (no C++ regex library is
// both fast and Unicode-aware).
#include "text/ftfy.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/text_normalize.h"
#include "text/unicode_data.h"

namespace zeroshot::text {
namespace {

using U32 = std::u32string;
using U32View = std::u32string_view;
using Bytes = std::string;

// A set of BMP code points (every character ftfy's heuristics name is in the BMP).
class CharSet {
 public:
  CharSet() = default;
  CharSet(std::initializer_list<char32_t> cps) {
    for (char32_t c : cps) add(c);
  }
  CharSet& add(char32_t c) {
    if (c < 0x10000) bits_.set(c);
    return *this;
  }
  CharSet& add_range(char32_t lo, char32_t hi) {
    for (char32_t c = lo; c <= hi; ++c) add(c);
    return *this;
  }
  CharSet& add(const CharSet& other) {
    bits_ |= other.bits_;
    return *this;
  }
  bool has(char32_t c) const { return c < 0x10000 && bits_.test(c); }

 private:
  std::bitset<0x10000> bits_;
};

CharSet unite(std::initializer_list<const CharSet*> sets) {
  CharSet out;
  for (const CharSet* s : sets) out.add(*s);
  return out;
}

// ftfy.badness.MOJIBAKE_CATEGORIES and the sets BADNESS_RE combines from them.
struct Badness {
  CharSet common{0xA0, 0xAD, 0xB7, 0xB4, 0x2013, 0x2014, 0x2015, 0x2026, 0x2019};
  CharSet c1 = CharSet().add_range(0x80, 0x9F);
  CharSet bad{0xA6,  0xA4,  0xA8,   0xAC,   0xAF,   0xB8,   0x192,  0x2C6,  0x2C7, 0x2D8,
              0x2DB, 0x2DC, 0x2020, 0x2021, 0x2030, 0x2310, 0x25CA, 0xFFFD, 0xAA,  0xBA};
  CharSet law{0xB6, 0xA7};
  CharSet cur{0xA2, 0xA3, 0xA5, 0x20A7, 0x20AC};
  CharSet sp{0xA1, 0xAB, 0xBF, 0xA9, 0x384, 0x385, 0x2018, 0x201A, 0x201C, 0x201E, 0x2022, 0x2039, 0xF8FF};
  CharSet ep{0xAE, 0xBB, 0x2DD, 0x201D, 0x203A, 0x2122};
  CharSet num{0xB2,   0xB3,   0xB9,   0xB1,   0xBC,   0xBD,   0xBE,   0xD7,   0xB5,   0xF7,   0x2044, 0x2202, 0x2206,
              0x220F, 0x2211, 0x221A, 0x221E, 0x2229, 0x222B, 0x2248, 0x2260, 0x2261, 0x2264, 0x2265, 0x2116};
  CharSet kao = CharSet({0x150, 0x14C, 0x16A, 0x172, 0xB0})
                    .add_range(0xD2, 0xD6)
                    .add_range(0xD9, 0xDC)
                    .add_range(0xF2, 0xF6)
                    .add_range(0xF8, 0xFC);
  CharSet ua =
      CharSet({0xD8,  0xDC,  0xDD,  0x102, 0x100, 0x104, 0x106, 0x10C, 0x10E, 0x110, 0x118, 0x11A, 0x112, 0x116,
               0x11E, 0x122, 0x130, 0x12A, 0x136, 0x139, 0x13D, 0x141, 0x13B, 0x143, 0x147, 0x145, 0x152, 0x158,
               0x15A, 0x15E, 0x160, 0x162, 0x164, 0x16E, 0x170, 0x178, 0x179, 0x17B, 0x17D, 0x490})
          .add_range(0xC0, 0xD1);
  CharSet la = CharSet({0xDF,  0x103, 0x105, 0x101, 0x107, 0x10D, 0x10F, 0x111, 0x119,  0x11B, 0x113, 0x117,
                        0x11F, 0x123, 0x12F, 0x12B, 0x137, 0x13A, 0x13E, 0x142, 0x13C,  0x153, 0x155, 0x15B,
                        0x15F, 0x161, 0x165, 0xFC,  0x17A, 0x17C, 0x17E, 0x491, 0xFB01, 0xFB02})
                   .add_range(0xE0, 0xF1);
  CharSet uc = CharSet({0xDE, 0x386, 0x388, 0x389, 0x38A, 0x38C, 0x38E, 0x38F, 0x3AA, 0x3AB})
                   .add_range(0x391, 0x3A9)
                   .add_range(0x401, 0x42F);
  CharSet lc = CharSet({0x3AC, 0x3AD, 0x3AE, 0x3AF, 0x3B0}).add_range(0x3B1, 0x3C9).add_range(0x430, 0x45F);
  CharSet box = CharSet({0x2502, 0x250C, 0x2510, 0x2518, 0x251C, 0x2524, 0x252C, 0x253C, 0x2580, 0x2584, 0x2588, 0x258C,
                         0x2590, 0x2591, 0x2592, 0x2593})
                    .add_range(0x2550, 0x256C);
  CharSet az = CharSet().add_range('a', 'z');
  CharSet az_AZ = CharSet().add_range('a', 'z').add_range('A', 'Z');

  // Left / right sides of BADNESS_RE's alternatives, in its order.
  CharSet a2 = unite({&bad, &la, &ua, &box, &sp, &ep, &cur, &num, &law});
  CharSet lc_uc = unite({&lc, &uc});
  CharSet a4 = unite({&la, &ua, &box, &sp, &ep, &cur, &num, &law});
  CharSet a5 = unite({&la, &lc, &box, &ep, &cur, &num});
  CharSet a6 = unite({&box, &ep, &cur, &num});
  CharSet a7 = unite({&la, &box, &ep});
  CharSet ua_box = unite({&ua, &box});
  CharSet num_law = unite({&num, &law});
  CharSet a10 = unite({&la, &ua, &box, &cur, &ep});
  CharSet a11 = unite({&la, &ua, &cur, &num, &box, &law});
  CharSet a12 = unite({&cur, &num, &box});
  CharSet sp_cur = unite({&sp, &cur});
  CharSet a15 = unite({&la, &ua, &cur, &num, &sp, &ep, &law});
  CharSet la_ua = unite({&la, &ua});
  CharSet sp_ep = unite({&sp, &ep});
  CharSet a20_right = unite({&sp, &ep})
                          .add(CharSet{0x20AC, 0x153, 0x160, 0x161, 0xA2, 0xA3, 0x178, 0x17E, 0xA0, 0xAD, 0xAE, 0xA9,
                                       0xB0, 0xB7, 0xBB, 0x2013, 0x2014, 0xB4});
  CharSet a22_right = unite({&common, &cur, &bad, &num, &sp}).add(CharSet{0x178, 0x160, 0xAE, 0xB0, 0xB5, 0xBB});
  CharSet a29_mid = unite({&c1, &bad, &sp, &ep, &cur}).add(CharSet{0xB0, 0xB5});
  CharSet a34_left = unite({&az, &ep}).add(CharSet{'.', ',', '?', '!'});
  CharSet a34_right = unite({&sp, &ep}).add(' ');
  CharSet a36_mid = unite({&c1, &bad, &sp, &ep, &cur}).add(0xB0);
};

const Badness& badness() {
  static const auto* b = new Badness();
  return *b;
}

}  // namespace

// ftfy.badness.is_bad: BADNESS_RE.search(text). Every alternative is tried at every position.
bool ftfy_is_bad(U32View t) {
  const Badness& B = badness();
  const size_t n = t.size();
  auto at = [&](size_t k) -> char32_t { return k < n ? t[k] : char32_t(0xFFFFFFFF); };
  auto in = [&](const CharSet& s, size_t k) { return k < n && s.has(t[k]); };
  auto one_of = [&](size_t k, std::initializer_list<char32_t> cs) {
    return k < n && std::find(cs.begin(), cs.end(), t[k]) != cs.end();
  };
  auto space = [&](size_t k) { return k < n && py_isspace(t[k]); };
  for (size_t i = 0; i < n; ++i) {
    if (in(B.c1, i)) return true;
    if (in(B.a2, i) && in(B.bad, i + 1)) return true;
    if (in(B.az_AZ, i) && in(B.lc_uc, i + 1) && in(B.bad, i + 2)) return true;
    if (in(B.bad, i) && in(B.a4, i + 1)) return true;
    if (in(B.a5, i) && in(B.ua, i + 1)) return true;
    if (in(B.a6, i) && in(B.la, i + 1)) return true;
    if (in(B.a7, i) && in(B.cur, i + 1)) return true;
    if (space(i) && in(B.ua, i + 1) && in(B.cur, i + 2)) return true;
    if (in(B.ua_box, i) && in(B.num_law, i + 1)) return true;
    if (in(B.a10, i) && in(B.sp, i + 1) && in(B.num, i + 2)) return true;
    if (in(B.a11, i) && in(B.ep, i + 1) && in(B.sp, i + 2)) return true;
    if (in(B.a12, i) && in(B.sp, i + 1)) return true;
    if (in(B.az, i) && in(B.ua, i + 1) && in(B.sp_cur, i + 2)) return true;
    if (in(B.box, i) && in(B.kao, i + 1)) return true;
    if (in(B.a15, i) && in(B.box, i + 1)) return true;
    if (in(B.box, i) && in(B.ep, i + 1)) return true;
    if (in(B.la_ua, i) && in(B.sp_ep, i + 1) && i + 2 < n && py_isword(t[i + 2])) return true;
    if (one_of(i, {0x152, 0x153}) && i + 1 < n && !B.az_AZ.has(t[i + 1])) return true;
    if (in(B.ua, i) && at(i + 1) == 0xB0) return true;
    if (one_of(i, {0xC2, 0xC3, 0xCE, 0xD0}) && in(B.a20_right, i + 1)) return true;
    if (at(i) == 0xD7 && one_of(i + 1, {0xB2, 0xB3})) return true;
    if (one_of(i, {0xD8, 0xD9}) && in(B.a22_right, i + 1) && one_of(i + 2, {0xD8, 0xD9}) && in(B.a22_right, i + 3))
      return true;
    if (at(i) == 0xE0 && one_of(i + 1, {0xB2, 0xB5, 0xB9, 0xBC, 0xBD, 0xBE})) return true;
    if (at(i) == 0x221A &&
        one_of(i + 1, {0xB1, 0x2202, 0x2020, 0x2260, 0xAE, 0x2122, 0xB4, 0x2264, 0x2265, 0xA5, 0xB5, 0xF8}))
      return true;
    if (at(i) == 0x2248 && one_of(i + 1, {0xB0, 0xA2})) return true;
    if (at(i) == 0x201A && at(i + 1) == 0xC4 &&
        one_of(i + 2, {0xEC, 0xEE, 0xEF, 0xF2, 0xF4, 0xFA, 0xF9, 0xFB, 0x2020, 0xB0, 0xA2, 0x3C0}))
      return true;
    if (at(i) == 0x201A && one_of(i + 1, {0xE2, 0xF3}) && one_of(i + 2, {0xE0, 0xE4, 0xB0, 0xEA})) return true;
    if (at(i) == 0x432 && at(i + 1) == 0x402) return true;
    if (one_of(i, {0x412, 0x413, 0x420, 0x421}) && in(B.a29_mid, i + 1) && one_of(i + 2, {0x412, 0x413, 0x420, 0x421}))
      return true;
    if (at(i) == 0x413 && at(i + 1) == 0x45E && at(i + 2) == 0x412 && at(i + 3) == 0x402 && at(i + 4) == 0x412 &&
        i + 5 < n && t[i + 5] != U'\n' && (in(B.az_AZ, i + 6) || at(i + 6) == U' '))
      return true;
    if (at(i) == 0xC3 && one_of(i + 1, {0xA0, 0xA1})) return true;
    if (in(B.az, i) && ((space(i + 1) && one_of(i + 2, {0xC3, 0xC2}) && at(i + 3) == U' ') ||
                        (one_of(i + 1, {0xC3, 0xC2}) && at(i + 2) == U' ')))
      return true;
    if (i == 0 && one_of(0, {0xC3, 0xC2}) && at(1) == U' ') return true;
    if (in(B.a34_left, i) && at(i + 1) == 0xC2 && in(B.a34_right, i + 2)) return true;
    if (at(i) == 0x3B2 && at(i + 1) == 0x20AC && one_of(i + 2, {0x2122, 0xA0, 0x386, 0xAD, 0xAE, 0xB0})) return true;
    if (one_of(i, {0x392, 0x393, 0x39E, 0x39F}) && in(B.a36_mid, i + 1) && one_of(i + 2, {0x392, 0x393, 0x39E, 0x39F}))
      return true;
    if (at(i) == 0x101 && at(i + 1) == 0x20AC) return true;
  }
  return false;
}

namespace {

// ---- single-byte code pages -----------------------------------------------------------------------------------

struct Codec {
  const data::SingleByteCodec* table;
  std::unordered_map<char32_t, unsigned char> encode;  // code points >= 0x80 (and U+FFFD for sloppy codecs)
  CharSet allowed;  // ENCODING_REGEXES: [\x00-\x19\x1b-\x7f] + what bytes 0x80..0xFF and 0x1A decode to
};

const std::vector<Codec>& codecs() {
  static const auto* list = [] {
    auto* v = new std::vector<Codec>();
    for (size_t k = 0; k < data::kFtfyCodecs_size; ++k) {
      Codec c;
      c.table = &data::kFtfyCodecs[k];
      c.allowed.add_range(0x00, 0x19).add_range(0x1B, 0x7F);
      for (int b = 0x80; b < 0x100; ++b) {
        c.encode.emplace(c.table->high[b - 0x80], static_cast<unsigned char>(b));
        c.allowed.add(c.table->high[b - 0x80]);
      }
      if (c.table->sloppy) {
        c.encode.emplace(0xFFFD, 0x1A);
        c.allowed.add(0xFFFD);
      } else {
        c.allowed.add(0x1A);
      }
      v->push_back(std::move(c));
    }
    return v;
  }();
  return *list;
}

// Every character is in the code page (and none is above the BMP: no code page has one).
bool possible_encoding(U32View text, const Codec& codec) {
  for (char32_t c : text)
    if (!codec.allowed.has(c)) return false;
  return true;
}

Bytes encode_with(U32View text, const Codec& codec) {
  Bytes out;
  out.reserve(text.size());
  for (char32_t c : text) {
    if (c < 0x80 && !(codec.table->sloppy && c == 0x1A)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back(static_cast<char>(codec.encode.at(c)));
    }
  }
  return out;
}

// ---- byte patterns (ALTERED_UTF8_RE, LOSSY_UTF8_RE) ------------------------------------------------------------

using ByteClass = std::bitset<256>;

ByteClass bytes_of(std::initializer_list<std::pair<int, int>> ranges) {
  ByteClass c;
  for (auto [lo, hi] : ranges)
    for (int b = lo; b <= hi; ++b) c.set(static_cast<size_t>(b));
  return c;
}
using BytePattern = std::vector<ByteClass>;

bool match_at(const Bytes& s, size_t i, const BytePattern& p) {
  if (i + p.size() > s.size()) return false;
  for (size_t k = 0; k < p.size(); ++k)
    if (!p[k].test(static_cast<unsigned char>(s[i + k]))) return false;
  return true;
}

// Index of the first alternative matching at i, or -1.
int first_match(const Bytes& s, size_t i, const std::vector<BytePattern>& alternatives) {
  for (size_t a = 0; a < alternatives.size(); ++a)
    if (match_at(s, i, alternatives[a])) return static_cast<int>(a);
  return -1;
}

const std::vector<BytePattern>& altered_utf8() {
  static const auto* alts = [] {
    const ByteClass sp = bytes_of({{0x20, 0x20}}), cont = bytes_of({{0x80, 0xBF}}), f0 = bytes_of({{0xF0, 0xF0}});
    const ByteClass mid = bytes_of({{0x80, 0x84}, {0x86, 0x9F}, {0xA1, 0xBF}});
    ByteClass lead2;
    for (int b : {0xC2, 0xC3, 0xC5, 0xCE, 0xD0, 0xD9}) lead2.set(static_cast<size_t>(b));
    return new std::vector<BytePattern>{
        {lead2, sp},
        {bytes_of({{0xE2, 0xE3}}), sp, mid},
        {bytes_of({{0xE0, 0xE3}}), mid, sp},
        {f0, sp, cont, cont},
        {f0, cont, sp, cont},
        {f0, cont, cont, sp},
    };
  }();
  return *alts;
}

bool contains_altered_utf8(const Bytes& s) {
  for (size_t i = 0; i < s.size(); ++i)
    if (first_match(s, i, altered_utf8()) >= 0) return true;
  return false;
}

bool starts_with_at(const Bytes& s, size_t i, std::string_view w) { return s.compare(i, w.size(), w) == 0; }

// fixes.restore_byte_a0
Bytes restore_byte_a0(const Bytes& in) {
  // A_GRAVE_WORD_RE: b"\xc3 (?! |quele|quela|quilo|s )" -> b"\xc3\xa0 "
  Bytes s;
  s.reserve(in.size() + 8);
  for (size_t i = 0; i < in.size();) {
    if (static_cast<unsigned char>(in[i]) == 0xC3 && i + 1 < in.size() && in[i + 1] == ' ') {
      const size_t k = i + 2;
      const bool excluded = starts_with_at(in, k, " ") || starts_with_at(in, k, "quele") ||
                            starts_with_at(in, k, "quela") || starts_with_at(in, k, "quilo") ||
                            starts_with_at(in, k, "s ");
      if (!excluded) {
        s += "\xc3\xa0 ";
        i += 2;
        continue;
      }
    }
    s.push_back(in[i++]);
  }
  Bytes out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const int a = first_match(s, i, altered_utf8());
    if (a < 0) {
      out.push_back(s[i++]);
      continue;
    }
    for (size_t k = 0; k < altered_utf8()[static_cast<size_t>(a)].size(); ++k)
      out.push_back(s[i + k] == ' ' ? static_cast<char>(0xA0) : s[i + k]);
    i += altered_utf8()[static_cast<size_t>(a)].size();
  }
  return out;
}

// fixes.replace_lossy_sequences: LOSSY_UTF8_RE.sub("\ufffd".encode(), byts)
Bytes replace_lossy_sequences(const Bytes& s) {
  static const auto* alts = [] {
    const ByteClass sub = bytes_of({{0x1A, 0x1A}}), q = bytes_of({{'?', '?'}}),
                    sub_q = bytes_of({{0x1A, 0x1A}, {'?', '?'}});
    const ByteClass sub_cont = bytes_of({{0x1A, 0x1A}, {0x80, 0xBF}});
    const ByteClass sub_q_cont = bytes_of({{0x1A, 0x1A}, {'?', '?'}, {0x80, 0xBF}});
    const ByteClass ed = bytes_of({{0xED, 0xED}}), hi_a = bytes_of({{0xA0, 0xAF}}), hi_b = bytes_of({{0xB0, 0xBF}});
    const ByteClass e = bytes_of({{0xE0, 0xEF}}), f = bytes_of({{0xF0, 0xF4}});
    return new std::vector<BytePattern>{
        {bytes_of({{0xC2, 0xDF}}), sub},
        {bytes_of({{0xC2, 0xC3}}), q},
        {ed, hi_a, sub_q, ed, hi_b, sub_q_cont},
        {ed, hi_a, sub_q_cont, ed, hi_b, sub_q},
        {e, sub_q, sub_cont},
        {e, sub_cont, sub_q},
        {f, sub_q, sub_cont, sub_cont},
        {f, sub_cont, sub_q, sub_cont},
        {f, sub_cont, sub_cont, sub_q},
        {sub},
    };
  }();
  Bytes out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const int a = first_match(s, i, *alts);
    if (a < 0) {
      out.push_back(s[i++]);
    } else {
      out += "\xef\xbf\xbd";
      i += (*alts)[static_cast<size_t>(a)].size();
    }
  }
  return out;
}

// ---- UTF8_DETECTOR_RE / decode_inconsistent_utf8 ---------------------------------------------------------------

struct Utf8Clues {
  CharSet first2, first3, first4, cont, cont_strict;
};

const Utf8Clues& utf8_clues() {
  static const auto* c = [] {
    auto* k = new Utf8Clues();
    for (size_t i = 0; i < data::kUtf8FirstOf2_size; ++i) k->first2.add(data::kUtf8FirstOf2[i]);
    for (size_t i = 0; i < data::kUtf8FirstOf3_size; ++i) k->first3.add(data::kUtf8FirstOf3[i]);
    for (size_t i = 0; i < data::kUtf8FirstOf4_size; ++i) k->first4.add(data::kUtf8FirstOf4[i]);
    const CharSet loose{0x2013, 0x2014, 0x2015, 0x2018, 0x2019, 0x201A, 0x201C, 0x201D, 0x201E, 0x2022, 0x2026};
    for (size_t i = 0; i < data::kUtf8Continuation_size; ++i) {
      const char32_t c = data::kUtf8Continuation[i];
      k->cont.add(c);
      if (!loose.has(c)) k->cont_strict.add(c);
    }
    k->cont.add(U' ');  // a space may stand for a lost 0xA0
    return k;
  }();
  return *c;
}

// Length of the UTF8_DETECTOR_RE match at i (0 when none): (?<![strict])(first2 cont | first3 cont{2} | first4
// cont{3})+
size_t utf8_detector_match(U32View t, size_t i) {
  const Utf8Clues& C = utf8_clues();
  if (i > 0 && C.cont_strict.has(t[i - 1])) return 0;
  size_t j = i;
  while (j < t.size()) {
    size_t need = C.first2.has(t[j]) ? 1 : C.first3.has(t[j]) ? 2 : C.first4.has(t[j]) ? 3 : 0;
    if (need == 0 || j + need >= t.size()) break;
    bool ok = true;
    for (size_t k = 1; k <= need; ++k) ok = ok && C.cont.has(t[j + k]);
    if (!ok) break;
    j += need + 1;
  }
  return j - i;
}

U32 fix_encoding_impl(U32View text, int depth);

// fixes.decode_inconsistent_utf8
U32 decode_inconsistent_utf8(U32View t, int depth) {
  U32 out;
  out.reserve(t.size());
  for (size_t i = 0; i < t.size();) {
    const size_t len = utf8_detector_match(t, i);
    if (len == 0) {
      out.push_back(t[i++]);
      continue;
    }
    const U32View sub = t.substr(i, len);
    if (sub.size() < t.size() && ftfy_is_bad(sub)) {
      out += fix_encoding_impl(sub, depth + 1);
    } else {
      out.append(sub);
    }
    i += len;
  }
  return out;
}

// fixes.fix_c1_controls: U+0080..U+009F read as sloppy Windows-1252.
U32 fix_c1_controls(U32View t) {
  const auto& cp1252 = data::kFtfyCodecs[1];
  U32 out(t);
  for (char32_t& c : out)
    if (c >= 0x80 && c <= 0x9F) c = cp1252.high[c - 0x80];
  return out;
}

bool has_c1(U32View t) {
  return std::any_of(t.begin(), t.end(), [](char32_t c) { return c >= 0x80 && c <= 0x9F; });
}

// ftfy._fix_encoding_one_step_and_explain
U32 fix_encoding_one_step(U32View text, int depth) {
  if (text.empty()) return U32(text);
  if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x80; })) return U32(text);
  if (!ftfy_is_bad(text)) return U32(text);

  bool latin1_possible = false;
  for (const Codec& codec : codecs()) {
    if (!possible_encoding(text, codec)) continue;
    if (codec.table == &data::kFtfyCodecs[0]) latin1_possible = true;
    Bytes bytes = encode_with(text, codec);
    if (std::string_view(codec.table->name) != "macroman" && contains_altered_utf8(bytes)) {
      bytes = restore_byte_a0(bytes);
    }
    if (codec.table->sloppy) bytes = replace_lossy_sequences(bytes);
    const bool variants = bytes.find('\xed') != Bytes::npos || bytes.find('\xc0') != Bytes::npos;
    U32 fixed;
    if (decode_utf8_strict(bytes, variants, fixed)) return fixed;
  }

  // Leftover a-hat-euro sequences, fixed in isolation.
  bool detector = false;
  for (size_t i = 0; i < text.size() && !detector; ++i) detector = utf8_detector_match(text, i) > 0;
  if (detector) {
    U32 fixed = decode_inconsistent_utf8(text, depth);
    if (fixed != text) return fixed;
  }

  // Latin-1 meant as Windows-1252. (ftfy checks `"windows-1252" in possible_1byte_encodings`, a name that list never
  // holds -- it holds "sloppy-windows-1252" -- so this branch is taken whenever Latin-1 was possible.)
  if (latin1_possible) {
    const auto& cp1252 = data::kFtfyCodecs[1];
    U32 fixed;
    bool ok = true;
    for (char32_t c : text) {
      if (c < 0x80) {
        fixed.push_back(c);
      } else if (c == 0x81 || c == 0x8D || c == 0x8F || c == 0x90 || c == 0x9D) {
        ok = false;  // undefined in the real (strict) Windows-1252
        break;
      } else {
        fixed.push_back(cp1252.high[c - 0x80]);
      }
    }
    if (ok && fixed != text) return fixed;
  }

  if (has_c1(text)) return fix_c1_controls(text);
  return U32(text);
}

U32 fix_encoding_impl(U32View text, int depth) {
  U32 cur(text);
  if (depth > 64) return cur;  // ftfy recurses on strictly shorter pieces; this only bounds pathological input
  for (int round = 0; round < 64; ++round) {
    U32 next = fix_encoding_one_step(cur, depth);
    if (next == cur) break;
    cur = std::move(next);
  }
  return cur;
}

// ---- the simple fixers -------------------------------------------------------------------------------------------

// chardata.HTML_ENTITY_RE = r"&#?[0-9A-Za-z]{1,24};" with fixes._unescape_fixup
U32 ftfy_unescape_html(U32View t) {
  static const auto* upper = [] {
    auto* m = new std::unordered_map<std::string, U32>();
    for (size_t i = 0; i < data::kFtfyUpperEntities_size; ++i)
      m->emplace(data::kFtfyUpperEntities[i].name, data::kFtfyUpperEntities[i].value);
    return m;
  }();
  if (t.find(U'&') == U32View::npos) return U32(t);
  auto alnum = [](char32_t c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
  U32 out;
  out.reserve(t.size());
  for (size_t i = 0; i < t.size();) {
    if (t[i] == U'&') {
      size_t j = i + 1;
      if (j < t.size() && t[j] == U'#') ++j;
      const size_t run_start = j;
      while (j < t.size() && alnum(t[j]) && j - run_start < 25) ++j;
      const size_t run = j - run_start;
      if (run >= 1 && run <= 24 && j < t.size() && t[j] == U';') {
        const U32View match = t.substr(i, j + 1 - i);
        const std::string key = encode_utf8(match);  // ASCII
        U32 replacement(match);
        if (match[1] != U'#') {
          // "&name;" with "name;" in html5, or one of ftfy's all-caps spellings.
          if (const U32* v = html5_entity(key.substr(1))) {
            replacement = *v;
          } else if (auto it = upper->find(key); it != upper->end()) {
            replacement = it->second;
          }
        } else {
          const U32 html = html_unescape(match);
          if (html.find(U';') == U32::npos) replacement = html;  // the ';' must be consumed
        }
        out += replacement;
        i = j + 1;
        continue;
      }
    }
    out.push_back(t[i++]);
  }
  return out;
}

U32 fix_latin_ligatures(U32View t) {
  static const std::unordered_map<char32_t, U32View> lig = {
      {0x132, U"IJ"},      {0x133, U"ij"},      {0x149, U"\u02bcn"},  {0x1F1, U"DZ"},  {0x1F2, U"Dz"},  {0x1F3, U"dz"},
      {0x1C4, U"D\u017d"}, {0x1C5, U"D\u017e"}, {0x1C6, U"d\u017e"},  {0x1C7, U"LJ"},  {0x1C8, U"Lj"},  {0x1C9, U"lj"},
      {0x1CA, U"NJ"},      {0x1CB, U"Nj"},      {0x1CC, U"nj"},       {0xFB00, U"ff"}, {0xFB01, U"fi"}, {0xFB02, U"fl"},
      {0xFB03, U"ffi"},    {0xFB04, U"ffl"},    {0xFB05, U"\u017ft"}, {0xFB06, U"st"}};
  U32 out;
  out.reserve(t.size());
  for (char32_t c : t) {
    if (auto it = lig.find(c); it != lig.end()) {
      out.append(it->second);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

U32 nfkc_char(char32_t c) {
  std::string in;
  append_utf8(in, c);
  utf8proc_uint8_t* res = nullptr;
  const auto n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(in.data()), static_cast<utf8proc_ssize_t>(in.size()), &res,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  U32 out;
  if (n >= 0 && res)
    out = decode_utf8_lossy(std::string_view(reinterpret_cast<const char*>(res), static_cast<size_t>(n)));
  std::free(res);
  return out;
}

// chardata.WIDTH_MAP: U+3000 -> ' ', U+FF01..U+FFEF -> NFKC where that differs.
U32 fix_character_width(U32View t) {
  static const auto* table = [] {
    auto* m = new std::vector<U32>(0xFFF0 - 0xFF01);
    for (char32_t c = 0xFF01; c < 0xFFF0; ++c) {
      U32 n = nfkc_char(c);
      if (n != U32(1, c)) (*m)[c - 0xFF01] = std::move(n);
    }
    return m;
  }();
  U32 out;
  out.reserve(t.size());
  for (char32_t c : t) {
    if (c == 0x3000) {
      out.push_back(U' ');
    } else if (c >= 0xFF01 && c < 0xFFF0 && !(*table)[c - 0xFF01].empty()) {
      out += (*table)[c - 0xFF01];
    } else {
      out.push_back(c);
    }
  }
  return out;
}

U32 uncurl_quotes(U32View t) {
  U32 out(t);
  for (char32_t& c : out) {
    if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) c = U'\'';
    else if (c >= 0x201C && c <= 0x201F) c = U'"';
  }
  return out;
}

U32 fix_line_breaks(U32View t) {
  U32 out;
  out.reserve(t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    const char32_t c = t[i];
    if (c == U'\r') {
      out.push_back(U'\n');
      if (i + 1 < t.size() && t[i + 1] == U'\n') ++i;
    } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
      out.push_back(U'\n');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// ANSI_RE = "\033\[((?:\d|;)*)([a-zA-Z])"; \d is any Unicode decimal digit (Nd).
U32 remove_terminal_escapes(U32View t) {
  auto digit = [](char32_t c) {
    return c < 0x110000 && utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_ND;
  };
  U32 out;
  out.reserve(t.size());
  for (size_t i = 0; i < t.size();) {
    if (t[i] == 0x1B && i + 1 < t.size() && t[i + 1] == U'[') {
      size_t j = i + 2;
      while (j < t.size() && (digit(t[j]) || t[j] == U';')) ++j;
      if (j < t.size() && ((t[j] >= 'a' && t[j] <= 'z') || (t[j] >= 'A' && t[j] <= 'Z'))) {
        i = j + 1;
        continue;
      }
    }
    out.push_back(t[i++]);
  }
  return out;
}

U32 remove_control_chars(U32View t) {
  U32 out;
  out.reserve(t.size());
  for (char32_t c : t) {
    const bool drop = c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
                      c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
    if (!drop) out.push_back(c);
  }
  return out;
}

U32 nfc(U32View t) {
  if (std::all_of(t.begin(), t.end(), [](char32_t c) { return c < 0x300; })) return U32(t);  // nothing composes
  const std::string in = encode_utf8(t);
  utf8proc_uint8_t* res = nullptr;
  const auto n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(in.data()), static_cast<utf8proc_ssize_t>(in.size()), &res,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  U32 out = (n >= 0 && res)
                ? decode_utf8_lossy(std::string_view(reinterpret_cast<const char*>(res), static_cast<size_t>(n)))
                : U32(t);
  std::free(res);
  return out;
}

// ftfy.fix_and_explain for one segment.
U32 fix_segment(U32View segment, bool unescape) {
  U32 text(segment);
  for (int round = 0; round < 16; ++round) {  // ftfy loops until nothing changes; this bounds pathological input
    const U32 orig = text;
    if (unescape) text = ftfy_unescape_html(text);
    text = fix_encoding_impl(text, 0);
    text = fix_c1_controls(text);
    text = fix_latin_ligatures(text);
    text = fix_character_width(text);
    text = uncurl_quotes(text);
    text = fix_line_breaks(text);
    text = remove_terminal_escapes(text);
    text = remove_control_chars(text);
    text = nfc(text);
    if (text == orig) break;
  }
  return text;
}

}  // namespace

U32 ftfy_fix_encoding(U32View text) { return fix_encoding_impl(text, 0); }

U32 ftfy_fix_text(U32View text) {
  constexpr size_t kMaxDecodeLength = 1000000;
  bool unescape = true;  // "auto": switched off for good at the first segment containing '<'
  U32 out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t brk = text.find(U'\n', pos);
    brk = brk == U32View::npos ? text.size() : brk + 1;
    if (brk - pos > kMaxDecodeLength) brk = pos + kMaxDecodeLength;
    const U32View segment = text.substr(pos, brk - pos);
    if (unescape && segment.find(U'<') != U32View::npos) unescape = false;
    out += fix_segment(segment, unescape);
    pos = brk;
  }
  return out;
}

}  // namespace zeroshot::text
