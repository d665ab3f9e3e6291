// BMP, parsed here: none of the image libraries we may use (libjpeg, libpng, giflib, libwebp) reads BMP, and the
// uncompressed format is a header plus rows, so a small careful parser is simpler than another dependency. It
// follows Pillow's BmpImagePlugin: headers of 12 (OS/2), 40, 64, 108 and 124 bytes; 1/4/8-bit palette images,
// 16-bit (5-5-5, or 5-6-5 with bitfields), 24-bit and 32-bit; the bitfield layouts Pillow accepts; bottom-up rows
// unless the height is negative; Pillow's modes (P, or 1 / L for a gray-ramp palette; RGBA for bitfields with
// alpha; else RGB); pixel data at the offset the file header gives (Pillow's adjustment when that
// offset points at the palette included). RLE-compressed files are refused. Every read is bounds-checked.
#include <algorithm>
#include <cstring>

#include "image/decode_internal.h"

namespace zeroshot::image::detail {

namespace {

uint32_t u16(const uint8_t* p) { return p[0] | (p[1] << 8); }
uint32_t u32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }

// How 4 bytes (or 2, 3) of a pixel become RGB; named after Pillow's rawmodes.
enum class Layout { Palette, BGR15, BGR16, BGR, BGRX, XBGR, ABGR, RGBA, BGRA };

}  // namespace

Decoded decode_bmp(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt) {
  auto need = [&](size_t end) {
    if (end > size) throw Error(name, "BMP: file is truncated");
  };
  need(18);
  const uint32_t offset_field = u32(data + 10);
  const uint32_t header_size = u32(data + 14);
  if (header_size != 12 && header_size != 40 && header_size != 64 && header_size != 108 && header_size != 124)
    throw Error(name, "BMP: unsupported header type (" + std::to_string(header_size) + ")");
  need(14 + static_cast<size_t>(header_size));
  const uint8_t* h = data + 18;  // header after its size field
  size_t pos = 14 + header_size;

  int64_t width = 0, height = 0;
  uint32_t bits = 0, compression = 0, colors = 0, padding = 4;
  bool top_down = false;
  uint32_t masks[4] = {0, 0, 0, 0};
  if (header_size == 12) {
    width = u16(h);
    height = u16(h + 2);
    bits = u16(h + 6);
    padding = 3;
  } else {
    width = u32(h);
    top_down = h[7] == 0xFF;
    height = top_down ? (int64_t{1} << 32) - u32(h + 4) : u32(h + 4);
    bits = u16(h + 10);
    compression = u32(h + 12);
    colors = u32(h + 28);
    if (compression == 3) {  // BI_BITFIELDS
      if (header_size - 4 >= 52) {
        for (int i = 0; i < 4; ++i) masks[i] = u32(h + 36 + 4 * i);
      } else {
        need(pos + 12);
        for (int i = 0; i < 3; ++i) masks[i] = u32(data + pos + 4 * i);
        pos += 12;
      }
    }
  }
  if (colors == 0 && bits < 32) colors = 1u << bits;
  size_t offset = offset_field;
  if (offset == 14 + header_size && bits <= 8) offset += 4 * static_cast<size_t>(colors);

  Layout layout;
  switch (bits) {
    case 1:
    case 4:
    case 8: layout = Layout::Palette; break;
    case 16: layout = Layout::BGR15; break;
    case 24: layout = Layout::BGR; break;
    case 32: layout = Layout::BGRX; break;
    default: throw Error(name, "BMP: unsupported pixel depth (" + std::to_string(bits) + ")");
  }
  if (compression == 3) {
    const uint32_t r = masks[0], g = masks[1], b = masks[2], a = masks[3];
    auto is = [&](uint32_t R, uint32_t G, uint32_t B, uint32_t A) { return r == R && g == G && b == B && a == A; };
    auto is3 = [&](uint32_t R, uint32_t G, uint32_t B) { return r == R && g == G && b == B; };
    if (bits == 32 && is(0xFF0000, 0xFF00, 0xFF, 0)) layout = Layout::BGRX;
    else if (bits == 32 && is(0xFF000000, 0xFF0000, 0xFF00, 0)) layout = Layout::XBGR;
    else if (bits == 32 && is(0xFF000000, 0xFF0000, 0xFF00, 0xFF)) layout = Layout::ABGR;
    else if (bits == 32 && is(0xFF, 0xFF00, 0xFF0000, 0xFF000000)) layout = Layout::RGBA;
    else if (bits == 32 && (is(0xFF0000, 0xFF00, 0xFF, 0xFF000000) || is(0, 0, 0, 0))) layout = Layout::BGRA;
    else if (bits == 24 && is3(0xFF0000, 0xFF00, 0xFF)) layout = Layout::BGR;
    else if (bits == 16 && is3(0xF800, 0x7E0, 0x1F)) layout = Layout::BGR16;
    else if (bits == 16 && is3(0x7C00, 0x3E0, 0x1F)) layout = Layout::BGR15;
    else throw Error(name, "BMP: unsupported bitfields layout");
  } else if (compression == 1 || compression == 2) {
    throw Error(name, "BMP: RLE-compressed files are not supported");
  } else if (compression != 0) {
    throw Error(name, "BMP: unsupported compression (" + std::to_string(compression) + ")");
  }

  check_size(width, height, name, opt);

  uint8_t palette[256][3];
  for (int i = 0; i < 256; ++i) palette[i][0] = palette[i][1] = palette[i][2] = static_cast<uint8_t>(i);
  bool gray_ramp = false;
  if (layout == Layout::Palette) {
    if (colors == 0 || colors > 65536)
      throw Error(name, "BMP: unsupported palette size (" + std::to_string(colors) + ")");
    // Entries are BGR(X); a palette cut short by the end of the file keeps the default entries (as Pillow).
    const size_t avail = pos < size ? (size - pos) / padding : 0;
    const size_t n = std::min<size_t>({colors, 256, avail});
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* e = data + pos + i * padding;
      palette[i][0] = e[2], palette[i][1] = e[1], palette[i][2] = e[0];
    }
    // Pillow compares the palette bytes it read with its gray ramp; a short palette is never the ramp.
    gray_ramp = avail >= colors;
    for (uint32_t i = 0; gray_ramp && i < colors; ++i) {
      const uint8_t* e = data + pos + static_cast<size_t>(i) * padding;
      const uint32_t v = colors == 2 ? i * 255 : i;
      if (e[0] != v || e[1] != v || e[2] != v) gray_ramp = false;
    }
    pos += std::min<size_t>(static_cast<size_t>(colors) * padding, size - std::min(pos, size));
  }
  if (offset == 0) offset = pos;

  const size_t stride = ((static_cast<size_t>(width) * bits + 31) >> 3) & ~size_t{3};
  need(offset + stride * static_cast<size_t>(height));  // no overflow: width * height is capped by check_size

  // Pillow's mode: P, unless the palette is its gray ramp ((0,0,0), (255,255,255) for 2 colors; (i,i,i) otherwise),
  // which makes the image "1" or "L"; RGBA for the bitfield layouts with alpha; else RGB.
  PilMode mode = PilMode::RGB;
  if (layout == Layout::Palette) {
    mode = gray_ramp ? (colors == 2 ? PilMode::k1 : PilMode::L) : PilMode::P;
  } else if (layout == Layout::ABGR || layout == Layout::RGBA || layout == Layout::BGRA) {
    mode = PilMode::RGBA;
  }
  if (bits == 32 && compression != 3) mode = PilMode::RGB;
  const int bpp = bytes_per_pixel(mode);

  Decoded out;
  allocate(out.image, static_cast<int>(width), static_cast<int>(height), mode);
  if (mode == PilMode::P) {
    out.image.palette.resize(768);
    for (int i = 0; i < 256; ++i) std::memcpy(&out.image.palette[3 * i], palette[i], 3);
  }
  for (int64_t y = 0; y < height; ++y) {
    const uint8_t* row = data + offset + stride * static_cast<size_t>(top_down ? y : height - 1 - y);
    uint8_t* dst = out.image.pixels.data() + static_cast<size_t>(y) * width * bpp;
    for (int64_t x = 0; x < width; ++x, dst += bpp) {
      const uint8_t* p;
      uint32_t v;
      switch (layout) {
        case Layout::Palette: {
          unsigned idx;
          if (bits == 8) idx = row[x];
          else if (bits == 4) idx = (row[x >> 1] >> ((x & 1) ? 0 : 4)) & 15;
          else idx = (row[x >> 3] >> (7 - (x & 7))) & 1;
          if (mode == PilMode::P) dst[0] = static_cast<uint8_t>(idx);
          else if (mode == PilMode::k1) dst[0] = idx ? 255 : 0;
          else dst[0] = palette[idx][0];  // gray ramp: the value
          break;
        }
        case Layout::BGR15:
          v = u16(row + 2 * x);
          dst[0] = static_cast<uint8_t>(((v >> 10) & 31) * 255 / 31);
          dst[1] = static_cast<uint8_t>(((v >> 5) & 31) * 255 / 31);
          dst[2] = static_cast<uint8_t>((v & 31) * 255 / 31);
          break;
        case Layout::BGR16:
          v = u16(row + 2 * x);
          dst[0] = static_cast<uint8_t>(((v >> 11) & 31) * 255 / 31);
          dst[1] = static_cast<uint8_t>(((v >> 5) & 63) * 255 / 63);
          dst[2] = static_cast<uint8_t>((v & 31) * 255 / 31);
          break;
        case Layout::BGR:
          p = row + 3 * x;
          dst[0] = p[2], dst[1] = p[1], dst[2] = p[0];
          break;
        case Layout::BGRX:
        case Layout::BGRA:
          p = row + 4 * x;
          dst[0] = p[2], dst[1] = p[1], dst[2] = p[0];
          if (bpp == 4) dst[3] = p[3];
          break;
        case Layout::XBGR:
        case Layout::ABGR:
          p = row + 4 * x;
          dst[0] = p[3], dst[1] = p[2], dst[2] = p[1];
          if (bpp == 4) dst[3] = p[0];
          break;
        case Layout::RGBA:
          p = row + 4 * x;
          dst[0] = p[0], dst[1] = p[1], dst[2] = p[2];
          if (bpp == 4) dst[3] = p[3];
          break;
      }
    }
  }
  return out;
}

}  // namespace zeroshot::image::detail
