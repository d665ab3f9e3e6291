// Images drawn in the terminal for `zeroshot search --preview` (rclip's -p): the kitty graphics protocol, iTerm2's
// inline images or sixel, chosen from the variables terminals set for their children. Not thread-safe-relevant:
// plain functions of their arguments. Errors: zeroshot::Error naming the file when it cannot be decoded.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace zeroshot::cli {

enum class PreviewProtocol { None, Kitty, Iterm2, Sixel };

// `forced`: "kitty", "iterm2", "sixel", or "auto": kitty for kitty (KITTY_WINDOW_ID, TERM=xterm-kitty) and
// Ghostty; iTerm2's for iTerm2, WezTerm, Konsole and mintty (TERM_PROGRAM, LC_TERMINAL, KONSOLE_VERSION); sixel for
// foot, mlterm and TERM names with "sixel"; None for the rest. `getenv` reads a variable (nullptr: unset).
PreviewProtocol preview_protocol(const std::function<const char*(const char*)>& getenv, const std::string& forced);

// tmux (TMUX set, or TERM tmux* / screen*) passes an image through only inside its passthrough escape.
bool preview_in_tmux(const std::function<const char*(const char*)>& getenv);

// The bytes that draw the image at `path` at most height_px pixels tall (never enlarged), then a newline. Images
// over max_pixels are refused before decoding, as everywhere else.
std::string preview_escape(const std::string& path, PreviewProtocol protocol, int height_px, bool tmux,
                           uint64_t max_pixels);

}  // namespace zeroshot::cli
