// Pillow's resampling (libImaging/Resample.c), shared by ImageProcessor (RGB) and the per-mode resize of PilImage.
// Not part of the public API.
//
// resample_window_u8: Image.resize of an interleaved 8-bit image with 1..4 bands (each band independently, as
// Pillow's 8bpc path does), reducing_gap None: horizontal pass then vertical pass, each rounded to 8 bits with
// Pillow's fixed-point coefficients. resample_window_i32: the same for a 32-bit integer image (mode "I"), with
// Pillow's double coefficients and ROUND_UP. Both compute only the window [x0, x0 + ww) x [y0, y0 + wh) of the
// width x height result (packed into `out`): each output pixel depends only on its own coefficients, so the window
// holds the same values as the full resize. Filters: 1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING.
// A pass with a large image's worth of work is split by rows across threads (same bytes: rows are independent).
// Callers check sizes and the filter (valid_filter) first; nothing here throws except std::bad_alloc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace zeroshot::image::detail {

bool valid_filter(int resample);

// Tests only: the widest SIMD the 8-bit passes may use: 2 AVX-512 (the default; each level only where the CPU has
// it), 1 AVX2, 0 the scalar code. Every level must give the same bytes; ZEROSHOT_KERNELS=generic is 0 for a whole
// process.
void limit_resample_simd(int level);

void resample_window_u8(const uint8_t* src, int src_w, int src_h, int channels, int width, int height, int resample,
                        int x0, int y0, int ww, int wh, uint8_t* out);

// resample_window_u8 of the image ImageOps.exif_transpose would make of `src` (src_w x src_h as stored) with EXIF
// `orientation` (2..8 flip / rotate; any other value: as stored): width, height and the window are in displayed
// coordinates. The same bytes as rotating first (Pillow's order), without the full-size rotated copy: each pass
// reads the stored pixels in displayed order (a transposing orientation turns Pillow's horizontal pass into a
// vertical one over the stored rows, done first, so the rounding order is Pillow's).
void resample_window_u8_oriented(const uint8_t* src, int src_w, int src_h, int channels, int orientation, int width,
                                 int height, int resample, int x0, int y0, int ww, int wh, uint8_t* out);

// resample_window_u8_oriented fed row by row: the stored rows arrive in strips, top to bottom (push), and only what
// the passes need of them is kept, so the full-size image never has to exist (a JPEG decoded strip by strip).
// Orientations 1-4: each strip is horizontally resampled as it comes, keeping rows of ww pixels; finish() runs the
// vertical pass. Orientations 5-8 (Pillow's horizontal pass runs down the stored columns): the stored rows (the
// crop's columns of them) are held only until the first pass's outputs that read them are done, a few dozen rows
// at a time; finish() runs the second pass. The same coefficients, passes and rounding as
// resample_window_u8_oriented, so the same bytes. Arguments as there; the window must be non-empty.
class RowStreamResampler {
 public:
  RowStreamResampler(int src_w, int src_h, int channels, int orientation, int width, int height, int resample, int x0,
                     int y0, int ww, int wh);
  ~RowStreamResampler();
  RowStreamResampler(const RowStreamResampler&) = delete;
  RowStreamResampler& operator=(const RowStreamResampler&) = delete;
  // Stored rows [y, y + n), row y + i at rows + i * stride (src_w * channels bytes each). Strips come in order, each
  // row once (y is the number of rows pushed before).
  void push(const uint8_t* rows, size_t stride, int y, int n);
  // After all src_h rows: the window, ww x wh pixels of `channels` bytes, packed.
  void finish(uint8_t* out);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

void resample_window_i32(const int32_t* src, int src_w, int src_h, int width, int height, int resample, int x0, int y0,
                         int ww, int wh, int32_t* out);

}  // namespace zeroshot::image::detail
