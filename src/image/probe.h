// The dimensions an image file declares in its header, read without decoding anything: for admission control
// (src/server/admission.h), which must know how many pixels a decode will allocate before it starts.
//
// Reads PNG (IHDR), JPEG (the first SOF marker), GIF (the logical screen), WebP (VP8, VP8L, VP8X) and BMP headers.
// Returns nothing for other formats and for headers it cannot read; never throws, never reads past `size`. The
// sizes are the ones the decoders check against DecodeOptions::max_pixels (image.h) before they allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace zeroshot::image {

struct Dimensions {
  uint32_t width = 0;
  uint32_t height = 0;
};

std::optional<Dimensions> probe_dimensions(const uint8_t* data, size_t size);

}  // namespace zeroshot::image
