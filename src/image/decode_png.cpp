// PNG through libpng, in the modes of Pillow's PngImagePlugin:
//   gray 1 bit -> "1"; 2/4/8 bit -> "L" ("L;2"/"L;4" scaled by 85/17, what png_set_expand_gray_1_2_4_to_8 does),
//   gray 16 bit -> "I" (Pillow 9.4; to_rgb clips to 0..255),
//   gray+alpha, RGB, RGBA -> LA, RGB, RGBA; 16-bit samples keep their high byte ("*;16B" rawmodes),
//   palette -> P with the PLTE entries (tRNS ignored, as convert("RGB") and resize do); indices past the PLTE get
//   Pillow's default palette entry (i, i, i).
// No gamma, sBIT or ICC handling: Pillow applies none. EXIF comes from eXIf or a "Raw profile type exif" text
// chunk, XMP from "XML:com.adobe.xmp" (both read before and after the image data, as Pillow's getexif() does).
// CRC errors in critical chunks and in ancillary chunks before the image data are fatal (Pillow checks those too);
// problems after the last row (trailing chunks) are ignored since the pixels are complete.
//
// libpng reports errors by longjmp to png_jmpbuf: the jump targets live in png_core() / png_tail(), and all state
// that must survive a jump is in PngState, reached through a pointer.
#include <png.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "image/decode_internal.h"

namespace zeroshot::image::detail {

namespace {

struct PngState {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t pos = 0;
  char message[256] = {0};
  std::vector<uint8_t> buffer;  // 16-bit gray rows before conversion to int32
  std::vector<png_bytep> rows;
  ~PngState() {
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  }
};

void on_error(png_structp png, png_const_charp msg) {
  auto* s = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(s->message, sizeof s->message, "%s", msg ? msg : "error");
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}

void on_read(png_structp png, png_bytep out, png_size_t n) {
  auto* s = static_cast<PngState*>(png_get_io_ptr(png));
  if (n > s->size - s->pos) png_error(png, "file is truncated");
  std::memcpy(out, s->data + s->pos, n);
  s->pos += n;
}

// "Raw profile type exif" text (ImageMagick): Pillow drops the first 3 lines and hex-decodes the rest.
std::vector<uint8_t> raw_profile_exif(const char* text, size_t len) {
  std::vector<uint8_t> out;
  size_t i = 0;
  for (int newlines = 0; i < len && newlines < 3; ++i)
    if (text[i] == '\n') ++newlines;
  int hi = -1;
  for (; i < len; ++i) {
    const char c = text[i];
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') continue;
    else return {};  // bytes.fromhex would raise: no EXIF
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<uint8_t>(hi * 16 + v));
      hi = -1;
    }
  }
  if (hi >= 0) return {};
  return out;
}

void collect_metadata(PngState* s, Decoded* out) {
  png_bytep exif = nullptr;
  png_uint_32 exif_len = 0;
  if (png_get_eXIf_1(s->png, s->info, &exif_len, &exif) && exif && exif_len > 0) {
    static const uint8_t kHeader[6] = {'E', 'x', 'i', 'f', 0, 0};  // Pillow: info["exif"] = b"Exif\0\0" + data
    out->exif.assign(kHeader, kHeader + 6);
    out->exif.insert(out->exif.end(), exif, exif + exif_len);
  }
  png_textp text = nullptr;
  int n = 0;
  if (png_get_text(s->png, s->info, &text, &n) > 0) {
    for (int i = 0; i < n; ++i) {
      if (!text[i].key || !text[i].text) continue;
      const size_t len = std::strlen(text[i].text);
      if (std::strcmp(text[i].key, "XML:com.adobe.xmp") == 0) {
        out->xmp.assign(text[i].text, len);  // the last one wins, as in Pillow's info dict
      } else if (std::strcmp(text[i].key, "Raw profile type exif") == 0 && exif_len == 0) {
        out->exif = raw_profile_exif(text[i].text, len);
      }
    }
  }
}

// Decodes the image; returns false with s->message set on a libpng error; throws Error for the size limit.
bool png_core(PngState* s, const std::string& name, const DecodeOptions& opt, Decoded* out) {
  s->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, s, on_error, on_warning);
  if (!s->png) {
    std::snprintf(s->message, sizeof s->message, "cannot create the PNG reader");
    return false;
  }
  s->info = png_create_info_struct(s->png);
  if (!s->info) {
    std::snprintf(s->message, sizeof s->message, "cannot create the PNG reader");
    return false;
  }
  if (setjmp(png_jmpbuf(s->png))) return false;

  png_set_read_fn(s->png, s, on_read);
  png_set_crc_action(s->png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
  png_set_user_limits(s->png, 0x7fffffff, 0x7fffffff);  // our own pixel limit applies (check_size)
  png_read_info(s->png, s->info);

  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0, interlace = 0;
  png_get_IHDR(s->png, s->info, &w, &h, &depth, &color, &interlace, nullptr, nullptr);
  check_size(w, h, name, opt);

  // Transformations to Pillow's in-memory layout: 1 byte per sample (16-bit gray aside), channels as in the file,
  // palette images as indices.
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(s->png);
  if (color == PNG_COLOR_TYPE_PALETTE && depth < 8) png_set_packing(s->png);
  const bool gray16 = depth == 16 && color == PNG_COLOR_TYPE_GRAY;
  if (depth == 16 && !gray16) png_set_strip_16(s->png);  // high byte, not rounded
  png_set_interlace_handling(s->png);
  png_read_update_info(s->png, s->info);

  PilMode mode;
  switch (color) {
    case PNG_COLOR_TYPE_GRAY: mode = gray16 ? PilMode::I : (depth == 1 ? PilMode::k1 : PilMode::L); break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: mode = PilMode::LA; break;
    case PNG_COLOR_TYPE_PALETTE: mode = PilMode::P; break;
    case PNG_COLOR_TYPE_RGB: mode = PilMode::RGB; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: mode = PilMode::RGBA; break;
    default: std::snprintf(s->message, sizeof s->message, "unsupported color type %d", color); return false;
  }
  const size_t rowbytes = png_get_rowbytes(s->png, s->info);
  allocate(out->image, static_cast<int>(w), static_cast<int>(h), mode);
  const size_t stride = static_cast<size_t>(w) * (gray16 ? 2 : bytes_per_pixel(mode));
  if (rowbytes != stride) {
    std::snprintf(s->message, sizeof s->message, "unexpected row size");
    return false;
  }
  uint8_t* dst = out->image.pixels.data();
  s->rows.resize(h);
  if (gray16) {
    s->buffer.resize(rowbytes * h);
    for (png_uint_32 y = 0; y < h; ++y) s->rows[y] = s->buffer.data() + y * rowbytes;
  } else {
    for (png_uint_32 y = 0; y < h; ++y) s->rows[y] = dst + y * stride;
  }
  png_read_image(s->png, s->rows.data());

  if (gray16) {  // "I;16B" -> "I": big-endian samples to int32
    const size_t n = static_cast<size_t>(w) * h;
    for (size_t i = 0; i < n; ++i) {
      const int32_t v = (s->buffer[2 * i] << 8) | s->buffer[2 * i + 1];
      std::memcpy(dst + 4 * i, &v, 4);
    }
  }
  if (mode == PilMode::P) {
    out->image.palette = gray_palette();
    png_colorp plte = nullptr;
    int n = 0;
    if (png_get_PLTE(s->png, s->info, &plte, &n) && plte) {
      for (int i = 0; i < n && i < 256; ++i) {
        out->image.palette[3 * i] = plte[i].red;
        out->image.palette[3 * i + 1] = plte[i].green;
        out->image.palette[3 * i + 2] = plte[i].blue;
      }
    }
  }
  return true;
}

// Reads the chunks after the image data (eXIf, text may sit there); errors here are ignored.
void png_tail(PngState* s) {
  if (setjmp(png_jmpbuf(s->png))) return;
  png_read_end(s->png, s->info);
}

// How much of the file libpng may be given: all of it, or up to the first chunk other than IDAT that declares more
// bytes than the file holds after it. libpng 1.6.39 allocates such a chunk's whole declared length before reading
// it (png_set_chunk_malloc_max does not bound text chunks here): a 222-byte file declaring a 1.5 GB tEXt took 1.5 GB
// of RSS (found by image_fuzz). The chunk cannot be read whole, so libpng fails on it anyway ("file is truncated":
// refused before the image data, ignored after it); ending the data where it starts gives the same outcome without
// the allocation. IDAT is read in small pieces, never whole, so a cut-short IDAT is left to libpng as before.
size_t png_readable_size(const uint8_t* data, size_t size) {
  const auto be32 = [](const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
  };
  size_t pos = 8;  // the signature
  while (pos <= size && size - pos >= 8) {
    const uint32_t length = be32(data + pos);
    if (length > 0x7fffffffu) return size;  // libpng refuses the header itself, allocating nothing
    const uint64_t chunk = uint64_t{length} + 12;
    if (chunk > size - pos) return std::memcmp(data + pos + 4, "IDAT", 4) == 0 ? size : pos;
    pos += static_cast<size_t>(chunk);
  }
  return size;
}

}  // namespace

Decoded decode_png(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt) {
  PngState state;
  state.data = data;
  state.size = png_readable_size(data, size);
  Decoded out;
  if (!png_core(&state, name, opt, &out)) throw Error(name, std::string("PNG: ") + state.message);
  png_tail(&state);
  collect_metadata(&state, &out);
  return out;
}

}  // namespace zeroshot::image::detail
