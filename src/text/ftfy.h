// A C++ rendering of ftfy.fix_text() with its default configuration (ftfy 6.3), which CLIP's reference tokenizer
// applies first. Mirrored step by step, in ftfy's order, until the text stops changing:
//   unescape_html ("auto": off from the first line that contains '<'), fix_encoding (mojibake: re-encode with one of
//   ftfy's ten single-byte code pages and decode as UTF-8 / "utf-8-variants", restore_byte_a0,
//   replace_lossy_sequences, decode_inconsistent_utf8, Latin-1 read as Windows-1252, C1 controls), fix_c1_controls,
//   fix_latin_ligatures, fix_character_width, uncurl_quotes, fix_line_breaks, remove_terminal_escapes,
//   remove_control_chars, NFC. Lines are fixed one at a time, as ftfy does.
// Not mirrored: fix_surrogates (a UTF-8 decoded string has no surrogates); the Unicode version is utf8proc's.
// Internal to src/text/.
#pragma once

#include <string>
#include <string_view>

namespace zeroshot::text {

std::u32string ftfy_fix_text(std::u32string_view text);

// Exposed for tests: ftfy.badness.is_bad and ftfy.fix_encoding.
bool ftfy_is_bad(std::u32string_view text);
std::u32string ftfy_fix_encoding(std::u32string_view text);

}  // namespace zeroshot::text
