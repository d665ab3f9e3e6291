// Small inline images for the HTML report: decode, shrink, encode as JPEG, wrap as a data: URI.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "image/image.h"

namespace zeroshot::eval {

// Shrinks to fit in max_side x max_side (never enlarges) by averaging each output pixel's source area. A
// thumbnail need not match Pillow, so this is a plain box filter rather than the engine's exact resampler.
image::RgbImage shrink_to_fit(const image::RgbImage& img, int max_side);

// Baseline JPEG (libjpeg-turbo) of an RGB image. Throws zeroshot::Error on an encoder failure.
std::vector<uint8_t> encode_jpeg(const image::RgbImage& img, int quality);

// RFC 4648 base64 (written here: no Debian-packaged C++ library the project already links has one).
std::string base64(const uint8_t* data, size_t size);

// "data:image/jpeg;base64,..." of the file shrunk to max_side; "" when the file cannot be decoded.
std::string thumbnail_data_uri(const std::string& path, int max_side, uint64_t max_pixels = 100'000'000);

}  // namespace zeroshot::eval
