// JPEG through libjpeg-turbo with Pillow's settings (JpegDecode.c): library defaults (ISLOW DCT, fancy upsampling),
// out_color_space GRAYSCALE / RGB / CMYK by component count, 4-component data read as inverted ("CMYK;I": Pillow
// assumes Adobe conventions for every CMYK JPEG) and converted with Pillow's cmyk2rgb. Like Pillow without
// LOAD_TRUNCATED_IMAGES, running out of data before the last scanline is an error; other libjpeg warnings (corrupt
// data it can recover from) are ignored, and a missing EOI after the last scanline is accepted.
//
// libjpeg reports fatal errors through error_exit, which must not return: it longjmps back to jpeg_core(). All
// state that outlives the jump lives in JpegState (reached through a pointer, never in registers), so nothing
// C++ is skipped by the jump; the Error is thrown only after control is back in C++.
#include <csetjmp>
#include <cstdio>
#include <cstring>
// clang-format off
#include <jpeglib.h>
#include <jerror.h>
// clang-format on

#include "image/decode_internal.h"

namespace zeroshot::image::detail {

namespace {

constexpr int kMaxScans = 1000;  // progressive files with absurd scan counts take forever: refuse them

struct JpegState {
  jpeg_decompress_struct cinfo{};
  jpeg_error_mgr err{};
  jpeg_progress_mgr progress{};
  std::jmp_buf jump{};
  char message[JMSG_LENGTH_MAX]{};
  bool created = false;
  std::vector<uint8_t> row;         // one decoded scanline (gray, CMYK)
  std::vector<JSAMPROW> rows;       // output rows (RGB)
  ~JpegState() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

JpegState* state_of(j_common_ptr cinfo) { return static_cast<JpegState*>(cinfo->client_data); }

[[noreturn]] void fail(j_common_ptr cinfo) {
  JpegState* s = state_of(cinfo);
  cinfo->err->format_message(cinfo, s->message);
  std::longjmp(s->jump, 1);
}

void on_error_exit(j_common_ptr cinfo) { fail(cinfo); }

void on_emit_message(j_common_ptr cinfo, int level) {
  // level -1 is a warning; premature end of data is the one Pillow refuses (as a truncated file).
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) fail(cinfo);
}

void on_output_message(j_common_ptr) {}

void on_progress(j_common_ptr cinfo) {
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxScans) {
    std::snprintf(state_of(cinfo)->message, JMSG_LENGTH_MAX, "more than %d scans in a progressive JPEG", kMaxScans);
    std::longjmp(state_of(cinfo)->jump, 1);
  }
}

// Pillow's MULDIV255 / cmyk2rgb on inverted ("CMYK;I") samples.
inline uint8_t cmyk_channel(int c, int nk) {
  const int tmp = c * nk + 128;
  const int v = nk - (((tmp >> 8) + tmp) >> 8);
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Returns false after a libjpeg error (message in s->message). Throws Error for the size limit (no C frame is
// active at that point). Locals here are not relied on after a longjmp.
bool jpeg_core(JpegState* s, const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt,
               Decoded* out) {
  if (setjmp(s->jump)) return false;

  s->cinfo.err = jpeg_std_error(&s->err);
  s->err.error_exit = on_error_exit;
  s->err.emit_message = on_emit_message;
  s->err.output_message = on_output_message;
  s->cinfo.client_data = s;
  jpeg_create_decompress(&s->cinfo);
  s->created = true;
  s->progress.progress_monitor = on_progress;
  s->cinfo.progress = &s->progress;
  jpeg_mem_src(&s->cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(&s->cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&s->cinfo, TRUE);

  check_size(s->cinfo.image_width, s->cinfo.image_height, name, opt);
  switch (s->cinfo.num_components) {
    case 1: s->cinfo.out_color_space = JCS_GRAYSCALE; break;
    case 3: s->cinfo.out_color_space = JCS_RGB; break;
    case 4: s->cinfo.out_color_space = JCS_CMYK; break;
    default:
      std::snprintf(s->message, JMSG_LENGTH_MAX, "cannot handle %d-layer images", s->cinfo.num_components);
      return false;
  }

  // Pillow keeps the first APP1 that starts with "Exif\0" as info["exif"].
  for (jpeg_saved_marker_ptr m = s->cinfo.marker_list; m; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length >= 5 && std::memcmp(m->data, "Exif\0", 5) == 0) {
      out->exif.assign(m->data, m->data + m->data_length);
      break;
    }
  }

  jpeg_start_decompress(&s->cinfo);
  const int w = static_cast<int>(s->cinfo.output_width), h = static_cast<int>(s->cinfo.output_height);
  const int comps = s->cinfo.output_components;
  check_size(w, h, name, opt);
  allocate(out->image, w, h);
  if (comps == 3) {  // RGB rows go straight into the image, several at a time
    s->rows.resize(h);
    for (int y = 0; y < h; ++y) s->rows[y] = out->image.pixels.data() + static_cast<size_t>(y) * w * 3;
    while (s->cinfo.output_scanline < s->cinfo.output_height) {
      const JDIMENSION y = s->cinfo.output_scanline;
      if (jpeg_read_scanlines(&s->cinfo, &s->rows[y], s->cinfo.output_height - y) == 0) {
        std::snprintf(s->message, JMSG_LENGTH_MAX, "image data ends early");
        return false;
      }
    }
    return true;
  }
  s->row.resize(static_cast<size_t>(w) * comps);
  while (s->cinfo.output_scanline < s->cinfo.output_height) {
    const size_t y = s->cinfo.output_scanline;
    JSAMPROW rows[1] = {s->row.data()};
    if (jpeg_read_scanlines(&s->cinfo, rows, 1) != 1) {
      std::snprintf(s->message, JMSG_LENGTH_MAX, "image data ends early");
      return false;
    }
    const uint8_t* in = s->row.data();
    uint8_t* dst = out->image.pixels.data() + y * w * 3;
    if (comps == 1) {
      for (int x = 0; x < w; ++x) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = in[x];
    } else {
      for (int x = 0; x < w; ++x, in += 4, dst += 3) {
        const int nk = in[3];  // 255 - (255 - K): K inverted once by "CMYK;I", once by cmyk2rgb
        dst[0] = cmyk_channel(255 - in[0], nk);
        dst[1] = cmyk_channel(255 - in[1], nk);
        dst[2] = cmyk_channel(255 - in[2], nk);
      }
    }
  }
  // No jpeg_finish_decompress: like Pillow, what follows the last scanline (normally EOI) is not required.
  return true;
}

}  // namespace

Decoded decode_jpeg(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt) {
  JpegState state;
  Decoded out;
  if (!jpeg_core(&state, data, size, name, opt, &out)) throw Error(name, std::string("JPEG: ") + state.message);
  return out;
}

}  // namespace zeroshot::image::detail
