// JPEG through libjpeg-turbo with Pillow's settings (JpegDecode.c): library defaults (ISLOW DCT, fancy upsampling),
// out_color_space GRAYSCALE / RGB / CMYK by component count, giving modes L / RGB / CMYK; 4-component data is read
// as inverted ("CMYK;I": Pillow assumes Adobe conventions for every CMYK JPEG). Like Pillow without
// LOAD_TRUNCATED_IMAGES, running out of data before the last scanline is an error; other libjpeg warnings (corrupt
// data it can recover from) are ignored, and a missing EOI after the last scanline is accepted. With
// DecodeOptions::draft_size the IDCT scales by 1/2, 1/4 or 1/8 as Pillow's Image.draft asks it to (same settings
// otherwise), so the pixels are those of Pillow's draft + load. decode_jpeg_rows is the same decode handed out in
// strips of rows as libjpeg produces them, for a caller that resamples them at once (no full-size buffer).
//
// libjpeg reports fatal errors through error_exit, which must not return: it longjmps back to the step that called
// setjmp (jpeg_start, jpeg_read_all, jpeg_read_strips). All state that outlives the jump lives in JpegState (reached
// through a pointer, never in registers), so nothing C++ is skipped by the jump; the Error is thrown only after
// control is back in C++. decode_jpeg_rows' sink runs between libjpeg calls, never inside one, so it may throw.
#include <algorithm>
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
  std::vector<JSAMPROW> rows;  // output rows
  std::vector<uint8_t> strip;  // decode_jpeg_rows: the rows of one strip
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

// Returns false after a libjpeg error (message in s->message). Throws Error for the size limit (no C frame is
// active at that point). Locals here are not relied on after a longjmp. Reads the header and sets Pillow's
// decoder settings (and the draft scale), up to jpeg_start_decompress; the EXIF block goes to out->exif.
bool jpeg_start(JpegState* s, const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt,
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

  if (opt.draft_size > 0) {  // Pillow's JpegImageFile.draft: the scale in the IDCT, decoder settings unchanged
    const JDIMENSION fit =
        std::min(s->cinfo.image_width, s->cinfo.image_height) / static_cast<JDIMENSION>(opt.draft_size);
    for (const JDIMENSION denom : {8U, 4U, 2U}) {
      if (fit >= denom) {
        s->cinfo.scale_num = 1;
        s->cinfo.scale_denom = denom;
        break;
      }
    }
  }
  jpeg_start_decompress(&s->cinfo);
  const int w = static_cast<int>(s->cinfo.output_width), h = static_cast<int>(s->cinfo.output_height);
  check_size(w, h, name, opt);
  const int comps = s->cinfo.output_components;
  if (comps != s->cinfo.num_components) {
    std::snprintf(s->message, JMSG_LENGTH_MAX, "unexpected number of output components (%d)", comps);
    return false;
  }
  return true;
}

PilMode mode_of(const JpegState& s) {
  return s.cinfo.output_components == 1 ? PilMode::L : (s.cinfo.output_components == 3 ? PilMode::RGB : PilMode::CMYK);
}

// Every row into out->image (allocated here). False after a libjpeg error, as jpeg_start.
bool jpeg_read_all(JpegState* s, Decoded* out) {
  if (setjmp(s->jump)) return false;
  const int w = static_cast<int>(s->cinfo.output_width), h = static_cast<int>(s->cinfo.output_height);
  const int comps = s->cinfo.output_components;
  allocate(out->image, w, h, mode_of(*s));
  // Rows go straight into the image, several at a time.
  const size_t stride = static_cast<size_t>(w) * comps;
  s->rows.resize(h);
  for (int y = 0; y < h; ++y) s->rows[y] = out->image.pixels.data() + static_cast<size_t>(y) * stride;
  while (s->cinfo.output_scanline < s->cinfo.output_height) {
    const JDIMENSION y = s->cinfo.output_scanline;
    if (jpeg_read_scanlines(&s->cinfo, &s->rows[y], s->cinfo.output_height - y) == 0) {
      std::snprintf(s->message, JMSG_LENGTH_MAX, "image data ends early");
      return false;
    }
  }
  if (comps == 4) {  // rawmode "CMYK;I": Pillow stores 255 - sample
    for (uint8_t& v : out->image.pixels) v = static_cast<uint8_t>(255 - v);
  }
  // No jpeg_finish_decompress: like Pillow, what follows the last scanline (normally EOI) is not required.
  return true;
}

// Every row, kStrip at a time, to sink.rows. False after a libjpeg error, as jpeg_start. An exception from the
// sink passes through (no libjpeg frame is active while it runs).
bool jpeg_read_strips(JpegState* s, const JpegRowSink& sink) {
  constexpr int kStrip = 16;  // an iMCU row of a 4:2:0 file: ~190 KB of a 12 MP photo's RGB rows, in L2
  if (setjmp(s->jump)) return false;
  const int w = static_cast<int>(s->cinfo.output_width), h = static_cast<int>(s->cinfo.output_height);
  const int comps = s->cinfo.output_components;
  const size_t stride = static_cast<size_t>(w) * comps;
  s->strip.resize(stride * kStrip);
  s->rows.resize(kStrip);
  for (int i = 0; i < kStrip; ++i) s->rows[i] = s->strip.data() + static_cast<size_t>(i) * stride;
  while (s->cinfo.output_scanline < s->cinfo.output_height) {
    const int y0 = static_cast<int>(s->cinfo.output_scanline);
    const int n = std::min(kStrip, h - y0);
    for (int got = 0; got < n;) {
      const JDIMENSION r = jpeg_read_scanlines(&s->cinfo, &s->rows[got], static_cast<JDIMENSION>(n - got));
      if (r == 0) {
        std::snprintf(s->message, JMSG_LENGTH_MAX, "image data ends early");
        return false;
      }
      got += static_cast<int>(r);
    }
    if (comps == 4) {  // rawmode "CMYK;I", as jpeg_read_all
      for (size_t i = 0; i < stride * n; ++i) s->strip[i] = static_cast<uint8_t>(255 - s->strip[i]);
    }
    sink.rows(s->strip.data(), stride, y0, n);
  }
  return true;
}

}  // namespace

Decoded decode_jpeg(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt) {
  JpegState state;
  Decoded out;
  if (!jpeg_start(&state, data, size, name, opt, &out) || !jpeg_read_all(&state, &out))
    throw Error(name, std::string("JPEG: ") + state.message);
  return out;
}

bool decode_jpeg_rows(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt,
                      const JpegRowSink& sink) {
  JpegState state;
  Decoded head;
  if (!jpeg_start(&state, data, size, name, opt, &head)) throw Error(name, std::string("JPEG: ") + state.message);
  const int o = find_orientation(head);
  if (!sink.start(static_cast<int>(state.cinfo.output_width), static_cast<int>(state.cinfo.output_height),
                  mode_of(state), o >= 2 && o <= 8 ? o : 1))
    return false;
  if (!jpeg_read_strips(&state, sink)) throw Error(name, std::string("JPEG: ") + state.message);
  return true;
}

}  // namespace zeroshot::image::detail
