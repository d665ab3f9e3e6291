// Image decoding (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC, AVIF, EXIF) from memory, then CLIP preprocessing of whatever
// decoded, with the two fixture models' preprocessor configs (224 px bicubic, 96 px).
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "image/image.h"
#include "image/image_processor.h"
#include "zeroshot/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zeroshot;
  static const image::ImageProcessor procs[2] = {
      image::ImageProcessor(
          image::ImageProcessorConfig::load(fuzz::fixtures() + "/clip/clip-tiny-quickgelu/preprocessor_config.json")),
      image::ImageProcessor(
          image::ImageProcessorConfig::load(fuzz::fixtures() + "/clip/clip-tiny-gelu-f16/preprocessor_config.json")),
  };
  image::DecodeOptions opt;
  opt.max_pixels = 1u << 22;  // 4 Mpx: large enough for every seed, small enough that one input stays fast
  try {
    const image::RgbImage img = image::decode_memory(data, size, "fuzz", opt);
    procs[size & 1].preprocess(img);
  } catch (const Error&) {
  }
  return 0;
}
