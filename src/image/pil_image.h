// Images in Pillow's own modes: what ImageOps.exif_transpose(Image.open(path)) holds (Pillow 9.4, Debian's
// python3-pil), the conversion Image.convert("RGB"), and Image.resize with Pillow's per-mode rules. OpenCLIP's
// preprocessing resizes and crops in the image's own mode and converts to RGB only afterwards
// (open_clip_transform.h), so a palette, CMYK or transparent image gives other pixels than convert-then-resize.
//
// Modes per format (as Pillow 9.4 opens them):
//   JPEG: L, RGB, CMYK (4-component data stored as Pillow stores "CMYK;I": every sample inverted)
//   PNG:  1 (1-bit gray), L (2/4/8-bit gray), I (16-bit gray, as int32), LA, RGB, RGBA (16-bit: high byte), P
//         (tRNS kept by Pillow as info["transparency"]; convert("RGB") and resize ignore it, so it is not kept here)
//   GIF:  P (first frame, composed as decode_file does), L when there is no color table or it is the identity gray
//   WebP: RGBA when the file says it has alpha, else RGB
//   BMP:  P, or 1 / L when the palette is Pillow's gray ramp; RGBA for 32-bit bitfields with alpha; else RGB
// Current Pillow (>= 10.3) opens 16-bit gray PNG as "I;16" instead of "I": same values after convert("RGB") for
// unresized images; resized ones may differ by rounding (Pillow's 16bpc path), which this file does not follow.
//
// Errors: as image.h (zeroshot::Error("<name>: <problem>"), the size limit checked before pixels are allocated).
// Plain data; functions are thread-safe (no shared state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "image/image.h"

namespace zeroshot::image {

enum class PilMode { k1, L, LA, I, P, RGB, RGBA, CMYK };

const char* mode_name(PilMode mode);  // Pillow's name: "1", "L", "LA", "I", "P", "RGB", "RGBA", "CMYK"
int bytes_per_pixel(PilMode mode);    // 1, 1, 2, 4, 1, 3, 4, 4

struct PilImage {
  int width = 0;
  int height = 0;
  PilMode mode = PilMode::RGB;
  // Interleaved bands, row-major, no padding: width * height * bytes_per_pixel(mode) bytes. Mode "1" holds 0 or 255
  // per pixel (Pillow's in-memory form); mode "I" holds one native-endian int32 per pixel.
  std::vector<uint8_t> pixels;
  // Mode P only: 256 RGB triples; entries past the file's palette are Pillow's defaults (i, i, i).
  std::vector<uint8_t> palette;
};

PilImage decode_native_file(const std::string& path, const DecodeOptions& opt = {});
// `name` is used in error messages.
PilImage decode_native_memory(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt = {});

// Image.convert("RGB"): 1/L/LA replicate (alpha dropped), I clipped to 0..255, P through the palette, RGBA drops
// alpha, CMYK by Pillow's cmyk2rgb. decode_file(p) == to_rgb(decode_native_file(p)).
RgbImage to_rgb(const PilImage& img);
RgbImage to_rgb(PilImage&& img);  // reuses the buffer: RGB is moved, RGBA and CMYK are converted in place

// Image.resize((width, height), resample) with reducing_gap None, as Pillow does it per mode: same size -> a copy;
// P and 1 -> NEAREST whatever `resample` says; NEAREST (0) -> Pillow's affine nearest-neighbour sampling;
// RGBA / LA -> premultiplied (RGBa / La) resampling, then un-premultiplied with Pillow's rounding; I -> Pillow's
// 32-bit path; every other mode band by band as the 8-bit path. resample: 0 NEAREST, 1 LANCZOS, 2 BILINEAR,
// 3 BICUBIC, 4 BOX, 5 HAMMING. Throws zeroshot::Error("resize: ...") on a bad filter, size or image.
PilImage resize(const PilImage& img, int width, int height, int resample);

// The window [x0, x0 + ww) x [y0, y0 + wh) of resize(img, width, height, resample), computed without resampling
// the rest (identical values). The window must lie inside width x height and be non-empty.
PilImage resize_window(const PilImage& img, int width, int height, int resample, int x0, int y0, int ww, int wh);

}  // namespace zeroshot::image
