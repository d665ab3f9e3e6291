// Image decoding the way the Hugging Face pipeline loads a file with Pillow:
// JPEG (libjpeg-turbo, Pillow's settings), PNG (libpng), WebP (libwebp), GIF (giflib, first frame), BMP, TIFF
// (libtiff, first page, as Pillow), HEIC/HEIF (libheif, as the pillow-heif plugin) and AVIF (libavif, as the
// pillow-avif-plugin); EXIF orientation applied (JPEG/PNG/WebP/TIFF; HEIF/AVIF apply their irot/imir boxes); then
// converted to RGB exactly as Pillow's Image.convert("RGB") (L -> replicate, LA/RGBA -> drop alpha, P -> palette RGB, P
// with transparency -> palette RGB, 16-bit -> Pillow's 8-bit rule, CMYK -> Pillow's conversion (Adobe inverted CMYK as
// Pillow reads it).
//
// Dimensions are read from the header and checked against `max_pixels` BEFORE any pixel buffer is allocated.
// Every failure throws zeroshot::Error("<name>: <problem>") naming the file; nothing ever crashes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace zeroshot::image {

// Interleaved 8-bit RGB, row-major, no padding: pixels.size() == width * height * 3.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;
};

struct DecodeOptions {
  uint64_t max_pixels = 100'000'000;  // refuse larger images before decoding
  // JPEG only, 0 = off (exact): decode at the smallest DCT scale 1/s (s in 8, 4, 2) that keeps both sides of the
  // stored image >= draft_size, i.e. s = the largest of 8, 4, 2, 1 with s <= min(width // draft_size,
  // height // draft_size): Pillow's Image.draft("RGB", (draft_size, draft_size)), which libjpeg-turbo does in the
  // IDCT at a fraction of the full decode's cost. The pixels differ from a full decode followed by a resize
  // (another low-pass filter), so this is an opt-in approximation for callers that resize far down anyway.
  int draft_size = 0;
};

RgbImage decode_file(const std::string& path, const DecodeOptions& opt = {});
// `name` is used in error messages.
RgbImage decode_memory(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt = {});

// The same decode without ImageOps.exif_transpose: the pixels as the file stores them, and the orientation (2..8;
// 1 = none) that decode_file would have applied. For callers that resample anyway
// (ImageProcessor::preprocess(const StoredRgbImage&)), which read the stored pixels in displayed order instead of
// rotating a full-size photo first.
struct StoredRgbImage {
  RgbImage image;
  int orientation = 1;
};
StoredRgbImage decode_file_stored(const std::string& path, const DecodeOptions& opt = {});
StoredRgbImage decode_memory_stored(const uint8_t* data, size_t size, const std::string& name,
                                    const DecodeOptions& opt = {});

// True if the file name has an image extension we decode (.jpg .jpeg .png .webp .gif .bmp .tif .tiff .heic .heif
// .avif, any case).
bool has_image_extension(const std::string& path);

}  // namespace zeroshot::image
