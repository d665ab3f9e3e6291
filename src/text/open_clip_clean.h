// open_clip's text cleaning for SigLIP models (tokenizer.py, clean="canonicalize": _clean_canonicalize), which
// HFTokenizer applies before the Hugging Face tokenizer runs:
//   basic_clean:       ftfy.fix_text (text/ftfy.h), html.unescape twice, str.strip();
//   canonicalize_text: big_vision's: "_" -> " ", every character of string.punctuation (ASCII) removed,
//                      str.lower(), re.sub(r"\s+", " "), str.strip().
// Invalid UTF-8 is first decoded as Python's errors="replace" would (U+FFFD). Thread-safe (a pure function).
#pragma once

#include <string>
#include <string_view>

namespace zeroshot::text {

std::string open_clip_canonicalize(std::string_view utf8_text);

}  // namespace zeroshot::text
