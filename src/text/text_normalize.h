// The text clean-up steps of CLIP's reference tokenizer, each with the exact semantics of the Python function it
// mirrors. Internal to src/text/ (ClipTokenizer::encode is the public entry point). Text is handled as code points.
#pragma once

#include <string>
#include <string_view>

namespace zeroshot::text {

// bytes.decode("utf-8", errors="replace"): every maximal invalid subsequence becomes one U+FFFD.
std::u32string decode_utf8_lossy(std::string_view bytes);
// Strict UTF-8 decoding; false on any invalid sequence. With `variants`, also accepts ftfy's "utf-8-variants"
// (CESU-8 surrogate pairs, and C0 80 for U+0000).
bool decode_utf8_strict(std::string_view bytes, bool variants, std::u32string& out);
void append_utf8(std::string& out, char32_t c);
std::string encode_utf8(std::u32string_view text);

// Python's html.unescape (HTML5 named references, with and without ';', numeric references with the HTML5 fix-ups).
std::u32string html_unescape(std::u32string_view text);
// The value of an html.entities.html5 name ("amp;", "amp"), or null.
const std::u32string* html5_entity(std::string_view name);
// Python's str.lower(): full lower-case mapping (U+0130 -> "i" U+0307) and the Greek final sigma rule.
std::u32string python_lower(std::u32string_view text);
// str.isspace() / re's \s for str patterns; the `regex` module's \s (Unicode White_Space: no U+001C..U+001F).
bool py_isspace(char32_t c);
bool regex_isspace(char32_t c);
// Python re's \w for str patterns.
bool py_isword(char32_t c);
// str.strip() with no arguments.
std::u32string_view py_strip(std::u32string_view text);
// CLIP's whitespace_clean: regex.sub(r"\s+", " ", text).strip().
std::u32string whitespace_clean(std::u32string_view text);

// How the special tokens are spelled in the text: OpenAI's tokenizer (and Hugging Face's) "<|startoftext|>" /
// "<|endoftext|>"; open_clip's own tokenizer "<start_of_text>" / "<end_of_text>" (the same ids, 49406 / 49407).
// A text that spells the other pair is tokenized as plain text, as each reference does.
struct ClipSpecialTokens {
  std::string bos = "<|startoftext|>";
  std::string eos = "<|endoftext|>";
  static ClipSpecialTokens open_clip() { return {"<start_of_text>", "<end_of_text>"}; }
};

// Length of the token the CLIP pattern matches at i of lower-cased text (0: nothing matches there and the character
// is skipped), as the `regex` module matches it with IGNORECASE:
//   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// with `specials`' spellings in place of the first two (defined in clip_tokenizer.cpp).
size_t clip_match_token(std::u32string_view text, size_t i, const ClipSpecialTokens& specials = {});

}  // namespace zeroshot::text
