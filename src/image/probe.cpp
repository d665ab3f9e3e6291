#include "image/probe.h"

#include <cstring>

namespace zeroshot::image {

namespace {

uint32_t be16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }
uint32_t be32(const uint8_t* p) { return (be16(p) << 16) | be16(p + 2); }
uint32_t le16(const uint8_t* p) { return uint32_t{p[0]} | (uint32_t{p[1]} << 8); }
uint32_t le24(const uint8_t* p) { return le16(p) | (uint32_t{p[2]} << 16); }
uint32_t le32(const uint8_t* p) { return le24(p) | (uint32_t{p[3]} << 24); }

bool starts_with(const uint8_t* d, size_t n, const char* magic, size_t at = 0) {
  const size_t m = std::strlen(magic);
  return n >= at + m && std::memcmp(d + at, magic, m) == 0;
}

std::optional<Dimensions> jpeg(const uint8_t* d, size_t n) {
  size_t i = 2;  // after SOI
  while (i + 1 < n) {
    if (d[i] != 0xFF) return std::nullopt;
    const uint8_t marker = d[i + 1];
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    i += 2;
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length
    if (i + 2 > n) return std::nullopt;
    const size_t len = be16(d + i);
    if (len < 2) return std::nullopt;
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): precision, height, width.
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
      if (i + 7 > n) return std::nullopt;
      return Dimensions{be16(d + i + 5), be16(d + i + 3)};
    }
    i += len;
  }
  return std::nullopt;
}

std::optional<Dimensions> webp(const uint8_t* d, size_t n) {
  if (starts_with(d, n, "VP8 ", 12)) {
    if (n < 30 || d[23] != 0x9D || d[24] != 0x01 || d[25] != 0x2A) return std::nullopt;
    return Dimensions{le16(d + 26) & 0x3FFF, le16(d + 28) & 0x3FFF};
  }
  if (starts_with(d, n, "VP8L", 12)) {
    if (n < 25 || d[20] != 0x2F) return std::nullopt;
    const uint32_t bits = le32(d + 21);
    return Dimensions{(bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1};
  }
  if (starts_with(d, n, "VP8X", 12)) {
    if (n < 30) return std::nullopt;
    return Dimensions{le24(d + 24) + 1, le24(d + 27) + 1};
  }
  return std::nullopt;
}

std::optional<Dimensions> bmp(const uint8_t* d, size_t n) {
  if (n < 26) return std::nullopt;
  const uint32_t header = le32(d + 14);
  if (header == 12) return Dimensions{le16(d + 18), le16(d + 20)};  // OS/2 BITMAPCOREHEADER
  const auto w = static_cast<int32_t>(le32(d + 18)), h = static_cast<int32_t>(le32(d + 22));
  // Negative height: top-down rows. INT32_MIN has no positive counterpart: not a size the decoder accepts.
  if (w <= 0 || h == INT32_MIN) return std::nullopt;
  return Dimensions{static_cast<uint32_t>(w), static_cast<uint32_t>(h < 0 ? -h : h)};
}

}  // namespace

std::optional<Dimensions> probe_dimensions(const uint8_t* d, size_t n) {
  if (!d) return std::nullopt;
  if (starts_with(d, n, "\x89PNG\r\n\x1a\n")) {
    if (n < 24 || !starts_with(d, n, "IHDR", 12)) return std::nullopt;
    return Dimensions{be32(d + 16), be32(d + 20)};
  }
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return jpeg(d, n);
  if (starts_with(d, n, "GIF87a") || starts_with(d, n, "GIF89a")) {
    if (n < 10) return std::nullopt;
    return Dimensions{le16(d + 6), le16(d + 8)};
  }
  if (starts_with(d, n, "RIFF") && starts_with(d, n, "WEBP", 8)) return webp(d, n);
  if (starts_with(d, n, "BM")) return bmp(d, n);
  return std::nullopt;
}

}  // namespace zeroshot::image
