// libjpeg reports fatal errors through error_exit, which must not return: it longjmps back to compress(), whose
// state that outlives the jump lives in a plain struct reached through a pointer; the Error is thrown only after
// control is back in C++ (the pattern of src/image/decode_jpeg.cpp).
#include "eval/thumbnail.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
// clang-format off
#include <jpeglib.h>
// clang-format on

#include "zeroshot/error.h"

namespace zeroshot::eval {

namespace {

struct EncoderState {
  jpeg_error_mgr err;  // first member: libjpeg hands back a pointer to it
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {};
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
};

[[noreturn]] void on_error_exit(j_common_ptr cinfo) {
  auto* s = reinterpret_cast<EncoderState*>(cinfo->err);
  cinfo->err->format_message(cinfo, s->message);
  std::longjmp(s->jump, 1);
}

void on_output_message(j_common_ptr) {}

// Returns false after a libjpeg error (message in s->message). No C++ object with a destructor lives here.
bool compress(EncoderState* s, jpeg_compress_struct* c, const image::RgbImage* img, int quality) {
  if (setjmp(s->jump)) {
    jpeg_destroy_compress(c);
    return false;
  }
  jpeg_create_compress(c);
  jpeg_mem_dest(c, &s->out, &s->out_size);
  c->image_width = static_cast<JDIMENSION>(img->width);
  c->image_height = static_cast<JDIMENSION>(img->height);
  c->input_components = 3;
  c->in_color_space = JCS_RGB;
  jpeg_set_defaults(c);
  jpeg_set_quality(c, quality, TRUE);
  jpeg_start_compress(c, TRUE);
  while (c->next_scanline < c->image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(img->pixels.data() + static_cast<size_t>(c->next_scanline) * img->width * 3);
    jpeg_write_scanlines(c, &row, 1);
  }
  jpeg_finish_compress(c);
  jpeg_destroy_compress(c);
  return true;
}

}  // namespace

image::RgbImage shrink_to_fit(const image::RgbImage& img, int max_side) {
  const int w = img.width, h = img.height;
  if (w <= 0 || h <= 0 || max_side <= 0) return img;
  if (w <= max_side && h <= max_side) return img;
  const double scale = static_cast<double>(max_side) / std::max(w, h);
  image::RgbImage out;
  out.width = std::max(1, static_cast<int>(w * scale + 0.5));
  out.height = std::max(1, static_cast<int>(h * scale + 0.5));
  out.pixels.resize(static_cast<size_t>(out.width) * out.height * 3);
  for (int oy = 0; oy < out.height; ++oy) {
    const int y0 = static_cast<int>(static_cast<int64_t>(oy) * h / out.height);
    const int y1 = std::max(y0 + 1, static_cast<int>(static_cast<int64_t>(oy + 1) * h / out.height));
    for (int ox = 0; ox < out.width; ++ox) {
      const int x0 = static_cast<int>(static_cast<int64_t>(ox) * w / out.width);
      const int x1 = std::max(x0 + 1, static_cast<int>(static_cast<int64_t>(ox + 1) * w / out.width));
      uint64_t sum[3] = {0, 0, 0};
      for (int y = y0; y < y1; ++y) {
        const uint8_t* p = img.pixels.data() + (static_cast<size_t>(y) * w + x0) * 3;
        for (int x = x0; x < x1; ++x, p += 3)
          for (int c = 0; c < 3; ++c) sum[c] += p[c];
      }
      const uint64_t area = static_cast<uint64_t>(y1 - y0) * (x1 - x0);
      uint8_t* q = out.pixels.data() + (static_cast<size_t>(oy) * out.width + ox) * 3;
      for (int c = 0; c < 3; ++c) q[c] = static_cast<uint8_t>((sum[c] + area / 2) / area);
    }
  }
  return out;
}

std::vector<uint8_t> encode_jpeg(const image::RgbImage& img, int quality) {
  if (img.width <= 0 || img.height <= 0 || img.pixels.size() != static_cast<size_t>(img.width) * img.height * 3)
    throw Error("jpeg encoder", "not an RGB image");
  EncoderState s;
  jpeg_compress_struct c{};
  c.err = jpeg_std_error(&s.err);
  s.err.error_exit = on_error_exit;
  s.err.output_message = on_output_message;
  const bool ok = compress(&s, &c, &img, std::clamp(quality, 1, 100));
  std::vector<uint8_t> out;
  if (ok && s.out) out.assign(s.out, s.out + s.out_size);
  std::free(s.out);  // jpeg_mem_dest's buffer is malloc'ed and left to the caller
  if (!ok) throw Error("jpeg encoder", s.message);
  return out;
}

std::string base64(const uint8_t* data, size_t size) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i < size) {
    const uint32_t v = (uint32_t{data[i]} << 16) | (i + 1 < size ? uint32_t{data[i + 1]} << 8 : 0);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < size ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string thumbnail_data_uri(const std::string& path, int max_side, uint64_t max_pixels) {
  try {
    image::DecodeOptions o;
    o.max_pixels = max_pixels;
    const auto jpeg = encode_jpeg(shrink_to_fit(image::decode_file(path, o), max_side), 82);
    return "data:image/jpeg;base64," + base64(jpeg.data(), jpeg.size());
  } catch (const Error&) {
    return "";
  }
}

}  // namespace zeroshot::eval
