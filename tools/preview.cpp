#include "preview.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

#include "eval/thumbnail.h"
#include "image/image.h"

namespace zeroshot::cli {

namespace {

bool starts_with(const char* s, const char* prefix) {
  return s != nullptr && std::strncmp(s, prefix, std::strlen(prefix)) == 0;
}
bool contains(const char* s, const char* part) { return s != nullptr && std::strstr(s, part) != nullptr; }
bool equals(const char* s, const char* v) { return s != nullptr && std::strcmp(s, v) == 0; }

// tmux forwards an escape sequence to the terminal only inside "ESC P tmux; ... ESC \", with each ESC doubled.
std::string tmux_wrap(const std::string& seq) {
  std::string out = "\033Ptmux;";
  for (char c : seq) {
    if (c == '\033') out += '\033';
    out += c;
  }
  return out + "\033\\";
}

// kitty graphics protocol: raw 24-bit RGB (f=24), base64 in chunks of at most 4096 bytes (m=1: more follow), q=2
// so that the terminal sends no reply into the shell.
std::string kitty(const image::RgbImage& img, bool tmux) {
  const std::string b64 = eval::base64(img.pixels.data(), img.pixels.size());
  std::string out;
  for (size_t off = 0; off < b64.size(); off += 4096) {
    const bool more = off + 4096 < b64.size();
    char head[96];
    if (off == 0) std::snprintf(head, sizeof head, "a=T,f=24,s=%d,v=%d,q=2,m=%d", img.width, img.height, more ? 1 : 0);
    else std::snprintf(head, sizeof head, "m=%d", more ? 1 : 0);
    const std::string seq = "\033_G" + std::string(head) + ";" + b64.substr(off, 4096) + "\033\\";
    out += tmux ? tmux_wrap(seq) : seq;
  }
  return out;
}

// iTerm2's inline images (OSC 1337 File=), which WezTerm, Konsole and mintty also read: a JPEG of the shrunk image.
std::string iterm2(const image::RgbImage& img, bool tmux) {
  const std::vector<uint8_t> jpeg = eval::encode_jpeg(img, 85);
  const std::string seq = "\033]1337;File=inline=1;size=" + std::to_string(jpeg.size()) +
                          ";preserveAspectRatio=1:" + eval::base64(jpeg.data(), jpeg.size()) + "\a";
  return tmux ? tmux_wrap(seq) : seq;
}

// DEC sixel: the 6x6x6 colour cube as palette (registers 0-215), six pixel rows per band, runs of 4 or more
// written as "!<count><char>".
std::string sixel(const image::RgbImage& img, bool tmux) {
  const int w = img.width, h = img.height;
  auto level = [](uint8_t v) { return (v * 5 + 127) / 255; };
  std::vector<uint8_t> idx(static_cast<size_t>(w) * h);
  for (size_t i = 0; i < idx.size(); ++i) {
    const uint8_t* p = img.pixels.data() + i * 3;
    idx[i] = static_cast<uint8_t>(level(p[0]) * 36 + level(p[1]) * 6 + level(p[2]));
  }
  std::string out = "\033Pq\"1;1;" + std::to_string(w) + ";" + std::to_string(h);
  for (int c = 0; c < 216; ++c)
    out += "#" + std::to_string(c) + ";2;" + std::to_string(c / 36 * 20) + ";" + std::to_string(c / 6 % 6 * 20) + ";" +
           std::to_string(c % 6 * 20);
  std::vector<char> row(static_cast<size_t>(w));
  for (int y0 = 0; y0 < h; y0 += 6) {
    std::array<bool, 216> used{};
    for (int y = y0; y < std::min(h, y0 + 6); ++y)
      for (int x = 0; x < w; ++x) used[idx[static_cast<size_t>(y) * w + x]] = true;
    bool first = true;
    for (int c = 0; c < 216; ++c) {
      if (!used[static_cast<size_t>(c)]) continue;
      for (int x = 0; x < w; ++x) {
        int bits = 0;
        for (int dy = 0; dy < 6 && y0 + dy < h; ++dy)
          if (idx[static_cast<size_t>(y0 + dy) * w + x] == c) bits |= 1 << dy;
        row[static_cast<size_t>(x)] = static_cast<char>('?' + bits);
      }
      out += (first ? "#" : "$#") + std::to_string(c);
      first = false;
      for (size_t x = 0; x < row.size();) {
        size_t n = 1;
        while (x + n < row.size() && row[x + n] == row[x]) ++n;
        if (n >= 4) out += "!" + std::to_string(n) + row[x];
        else out.append(n, row[x]);
        x += n;
      }
    }
    out += "-";
  }
  out += "\033\\";
  return tmux ? tmux_wrap(out) : out;
}

}  // namespace

PreviewProtocol preview_protocol(const std::function<const char*(const char*)>& getenv, const std::string& forced) {
  if (forced == "kitty") return PreviewProtocol::Kitty;
  if (forced == "iterm2") return PreviewProtocol::Iterm2;
  if (forced == "sixel") return PreviewProtocol::Sixel;
  const char* term = getenv("TERM");
  const char* program = getenv("TERM_PROGRAM");
  // kitty first: a terminal that sets several of these speaks kitty's protocol where it sets kitty's own variable.
  if (getenv("KITTY_WINDOW_ID") != nullptr || starts_with(term, "xterm-kitty") || equals(program, "ghostty") ||
      contains(term, "ghostty"))
    return PreviewProtocol::Kitty;
  if (equals(program, "iTerm.app") || equals(program, "WezTerm") || equals(program, "mintty") ||
      equals(getenv("LC_TERMINAL"), "iTerm2") || getenv("KONSOLE_VERSION") != nullptr)
    return PreviewProtocol::Iterm2;
  if (starts_with(term, "foot") || starts_with(term, "mlterm") || contains(term, "sixel"))
    return PreviewProtocol::Sixel;
  return PreviewProtocol::None;
}

bool preview_in_tmux(const std::function<const char*(const char*)>& getenv) {
  const char* term = getenv("TERM");
  return getenv("TMUX") != nullptr || starts_with(term, "tmux") || starts_with(term, "screen");
}

std::string preview_escape(const std::string& path, PreviewProtocol protocol, int height_px, bool tmux,
                           uint64_t max_pixels) {
  image::DecodeOptions o;
  o.max_pixels = max_pixels;
  image::RgbImage img = image::decode_file(path, o);
  if (img.height > height_px) {
    // shrink_to_fit bounds the longer side: the bound that makes the height height_px.
    const int side = static_cast<int>(static_cast<int64_t>(height_px) * std::max(img.width, img.height) / img.height);
    img = eval::shrink_to_fit(img, std::max(1, side));
  }
  switch (protocol) {
    case PreviewProtocol::Kitty: return kitty(img, tmux) + "\n";
    case PreviewProtocol::Iterm2: return iterm2(img, tmux) + "\n";
    case PreviewProtocol::Sixel: return sixel(img, tmux) + "\n";
    case PreviewProtocol::None: break;
  }
  return "";
}

}  // namespace zeroshot::cli
