// Internals shared by the per-format decoders (decode_*.cpp) and image.cpp. Not part of the public API.
//
// Each decoder turns a complete in-memory file into the image in Pillow's own mode, as Image.open(...) holds
// it (before EXIF orientation; pil_image.h lists the modes), and hands back the metadata Pillow's getexif()
// would read, so that image.cpp can apply ImageOps.exif_transpose. Decoders check the header dimensions with
// check_size() before any pixel memory is allocated, and throw zeroshot::Error("<name>: <problem>") on any failure.
#pragma once

#include <cstddef>
#include <cstdint>
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
