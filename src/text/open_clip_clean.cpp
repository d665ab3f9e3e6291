#include "text/open_clip_clean.h"

#include "text/ftfy.h"
#include "text/text_normalize.h"

namespace zeroshot::text {

std::string open_clip_canonicalize(std::string_view utf8_text) {
  std::u32string s = html_unescape(html_unescape(ftfy_fix_text(decode_utf8_lossy(utf8_text))));
  s = std::u32string(py_strip(s));
  std::u32string kept;
  kept.reserve(s.size());
  for (char32_t c : s) {
    if (c == U'_') c = U' ';  // replaced before the punctuation (which includes "_") is removed
    // string.punctuation: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~ (the printable ASCII that is neither alphanumeric nor
    // a space).
    const bool punct = c < 0x80 && c > 0x20 && c != 0x7f &&
                       !((c >= U'0' && c <= U'9') || (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z'));
    if (!punct) kept.push_back(c);
  }
  kept = python_lower(kept);
  std::u32string out;
  out.reserve(kept.size());
  bool in_space = false;
  for (char32_t c : kept) {
    if (py_isspace(c)) {
      if (!in_space) out.push_back(U' ');
      in_space = true;
    } else {
      out.push_back(c);
      in_space = false;
    }
  }
  return encode_utf8(py_strip(out));
}

}  // namespace zeroshot::text
