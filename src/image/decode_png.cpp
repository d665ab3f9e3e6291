// PNG through libpng, converted to RGB the way Pillow's PngImagePlugin modes + convert("RGB") do it:
//   gray 1/2/4/8 bit -> "1"/"L;2"/"L;4"/"L" (scaled by 255/85/17/1, what png_set_expand_gray_1_2_4_to_8 does),
//   gray 16 bit -> "I" -> RGB clips to 0..255 (values >= 255 become 255; Pillow 9.4's i2rgb),
//   gray+alpha, RGB, RGBA: 16-bit samples keep their high byte ("*;16B" rawmodes), alpha is dropped,
//   palette: index -> PLTE entry (tRNS ignored, as convert("RGB") does); indices past the PLTE get Pillow's
//   default palette entry (i, i, i).
// No gamma, sBIT or ICC handling: Pillow applies none. EXIF comes from eXIf or a "Raw profile type exif" text
// chunk, XMP from "XML:com.adobe.xmp" (both read before and after the image data, as Pillow's getexif() does).
// CRC errors in critical chunks and in ancillary chunks before the image data are fatal (Pillow checks those too);
// problems after the last row (trailing chunks) are ignored since the pixels are complete.
//
// libpng reports errors by longjmp to png_jmpbuf: the jump targets live in png_core() / png_tail(), and all state
// that must survive a jump is in PngState, reached through a pointer.
#include <png.h>

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
  std::vector<uint8_t> buffer;       // decoded rows before conversion (when not decoding straight into RGB)
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

  // Transformations to 1 byte per sample, channels as in the file (palette stays indices).
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(s->png);
  if (color == PNG_COLOR_TYPE_PALETTE && depth < 8) png_set_packing(s->png);
  if (depth == 16 && color != PNG_COLOR_TYPE_GRAY) png_set_strip_16(s->png);  // high byte, not rounded
  if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(s->png);
  png_set_interlace_handling(s->png);
  png_read_update_info(s->png, s->info);

  const size_t rowbytes = png_get_rowbytes(s->png, s->info);
  allocate(out->image, static_cast<int>(w), static_cast<int>(h));
  uint8_t* rgb = out->image.pixels.data();
  const bool direct = color == PNG_COLOR_TYPE_RGB || color == PNG_COLOR_TYPE_RGB_ALPHA;  // rows are RGB already
  if (direct && rowbytes != static_cast<size_t>(w) * 3) {
    std::snprintf(s->message, sizeof s->message, "unexpected row size");
    return false;
  }
  s->rows.resize(h);
  if (direct) {
    for (png_uint_32 y = 0; y < h; ++y) s->rows[y] = rgb + static_cast<size_t>(y) * w * 3;
  } else {
    s->buffer.resize(rowbytes * h);
    for (png_uint_32 y = 0; y < h; ++y) s->rows[y] = s->buffer.data() + y * rowbytes;
  }
  png_read_image(s->png, s->rows.data());

  if (!direct) {
    uint8_t palette[256][3];
    if (color == PNG_COLOR_TYPE_PALETTE) {
      for (int i = 0; i < 256; ++i) palette[i][0] = palette[i][1] = palette[i][2] = static_cast<uint8_t>(i);
      png_colorp plte = nullptr;
      int n = 0;
      if (png_get_PLTE(s->png, s->info, &plte, &n) && plte) {
        for (int i = 0; i < n && i < 256; ++i) {
          palette[i][0] = plte[i].red;
          palette[i][1] = plte[i].green;
          palette[i][2] = plte[i].blue;
        }
      }
    }
    for (png_uint_32 y = 0; y < h; ++y) {
      const uint8_t* in = s->rows[y];
      uint8_t* dst = rgb + static_cast<size_t>(y) * w * 3;
      for (png_uint_32 x = 0; x < w; ++x, dst += 3) {
        uint8_t v0, v1, v2;
        if (color == PNG_COLOR_TYPE_PALETTE) {
          const uint8_t* p = palette[in[x]];
          v0 = p[0], v1 = p[1], v2 = p[2];
        } else if (color == PNG_COLOR_TYPE_GRAY && depth == 16) {  // "I" mode, clipped to 0..255
          const int v = (in[2 * x] << 8) | in[2 * x + 1];
          v0 = v1 = v2 = static_cast<uint8_t>(v > 255 ? 255 : v);
        } else {  // gray, gray+alpha (alpha stripped)
          v0 = v1 = v2 = in[x];
        }
        dst[0] = v0, dst[1] = v1, dst[2] = v2;
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

}  // namespace

Decoded decode_png(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt) {
  PngState state;
  state.data = data;
  state.size = size;
  Decoded out;
  if (!png_core(&state, name, opt, &out)) throw Error(name, std::string("PNG: ") + state.message);
  png_tail(&state);
  collect_metadata(&state, &out);
  return out;
}

}  // namespace zeroshot::image::detail
