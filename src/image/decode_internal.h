// Internals shared by the per-format decoders (decode_*.cpp) and image.cpp. Not part of the public API.
//
// Each decoder turns a complete in-memory file into the image in Pillow's own mode, as Image.open(...) holds
// it (before EXIF orientation; pil_image.h lists the modes), and hands back the metadata Pillow's getexif()
// would read, so that image.cpp can apply ImageOps.exif_transpose. Decoders check the header dimensions with
// check_size() before any pixel memory is allocated, and throw zeroshot::Error("<name>: <problem>") on any failure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "image/image.h"
#include "image/pil_image.h"
#include "zeroshot/error.h"

namespace zeroshot::image::detail {

struct Decoded {
  PilImage image;
  std::vector<uint8_t> exif;  // EXIF block as Pillow keeps it in info["exif"] (TIFF data, maybe "Exif\0\0" first)
  std::string xmp;            // PNG "XML:com.adobe.xmp" text: Pillow's fallback source for the orientation
  int orientation = -1;       // the orientation tag when the format holds it directly (TIFF's IFD 0), else -1
};

Decoded decode_jpeg(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt);
// decode_jpeg handed out strip by strip, for a caller that consumes rows as they come (ImageProcessor's streamed
// preprocess): no full-size buffer exists. After the header, start(width, height, mode, orientation) is called
// once with the decoded size, the mode decode_jpeg would give (L, RGB or CMYK) and the EXIF orientation
// find_orientation reads (2..8, else 1); if it returns false nothing more is decoded and decode_jpeg_rows returns
// false. Otherwise rows(data, stride, y, n) gets every row once, top to bottom, in strips: row y + i at
// data + i * stride, in decode_jpeg's bytes (CMYK inverted as it stores it); the strip is reused after the call.
// Every row is decoded even if the caller needs only some (a file damaged further on fails as Pillow's load does).
// Returns true when all rows were delivered. Errors as decode_jpeg (thrown, possibly after some strips: the
// caller must drop what it made of them); an exception from the sink passes through.
struct JpegRowSink {
  std::function<bool(int width, int height, PilMode mode, int orientation)> start;
  std::function<void(const uint8_t* data, size_t stride, int y, int n)> rows;
};
bool decode_jpeg_rows(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt,
                      const JpegRowSink& sink);

// Where a streamed resize (RowStreamResampler) writes: the resized size, and the window of it that is kept.
struct StreamWindow {
  int width, height;  // after the resize
  int x0, y0, ww, wh;
};
// A JPEG decoded strip by strip into a 3-band RowStreamResampler (`resample` is Pillow's filter), L and CMYK strips
// converted to RGB first as Image.convert("RGB") does (per pixel, so strip by strip is exact); the kept window, ww x
// wh RGB, into `window`. plan(width, height) gets the displayed size (the stored one with EXIF orientations 5-8
// transposed) and gives the window, or nullopt (or throws zeroshot::Error) when streaming does not apply. False when
// it does not apply (not a JPEG, a filter Pillow does not have, no plan): then nothing was written and the caller
// decodes in full, which reports any error in its own order. Decode errors as decode_jpeg_rows (thrown).
// Defined in image_processor.cpp; the fixed-size and NaFlex processors share it.
bool stream_jpeg_rgb(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt, int resample,
                     const std::function<std::optional<StreamWindow>(int width, int height)>& plan,
                     std::vector<uint8_t>& window);

// The whole file in memory; Error(path, ...) when it cannot be read.
std::vector<uint8_t> read_file(const std::string& path);

Decoded decode_png(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt);
Decoded decode_gif(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt);
Decoded decode_webp(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt);
Decoded decode_bmp(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt);
Decoded decode_tiff(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt);
Decoded decode_heif(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt);
Decoded decode_avif(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt);

// Refuses zero or negative sizes and width * height > opt.max_pixels. Call before allocating pixels.
void check_size(int64_t width, int64_t height, const std::string& name, const DecodeOptions& opt);

// Sizes `pixels` to n zeroed bytes, asking for transparent huge pages when the block is large (page faults are a
// large part of decoding a 12 MP photo otherwise). Every decoder's full-size buffer goes through it.
void size_pixels(std::vector<uint8_t>& pixels, size_t n);

// Allocates img.pixels for width x height in `mode` (after check_size), with size_pixels.
void allocate(PilImage& img, int width, int height, PilMode mode);

// Pillow's default palette (i, i, i) for i in 0..255, as 768 bytes: entries a file does not define keep these.
std::vector<uint8_t> gray_palette();

// EXIF orientation the way Pillow's Image.getexif() finds it: d.orientation when set, else tag 0x0112 of IFD0 of
// d.exif (parsed with libexif), else the
// first `tiff:Orientation="N"` / `tiff:Orientation>N` in the XMP text. Returns 0 when absent or unreadable.
int find_orientation(const Decoded& d);

// ImageOps.exif_transpose: orientations 2..8 flip/rotate; any other value leaves the image as it is.
PilImage apply_orientation(PilImage img, int orientation);

}  // namespace zeroshot::image::detail
