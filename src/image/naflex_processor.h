// SigLIP 2 NaFlex preprocessing: transformers' Siglip2ImageProcessor (the slow, Pillow one the pipeline runs).
//
// An image is resized, keeping its aspect ratio as far as whole patches allow, to the largest size of at most
// `max_num_patches` patches of patch_size x patch_size (get_image_size_for_max_num_patches: a bisection on the scale
// whose sides are rounded UP to whole patches and never below one patch, so an image smaller than a patch, even
// 1 x 1, is enlarged to one patch: transformers' behaviour, not an error). The resize is Pillow's (bilinear by
// default), then rescale and normalize (mean / std 0.5) as SiglipImageProcessor, then the image is cut into patches
// in row-major grid order, each patch flattened as (y, x, channel): transformers' convert_image_to_patches.
//
// The packed record: the Backend seam and its users (server batcher, Python binding, bench) carry an image as
// 3 x S x S floats; a NaFlex image travels in that many floats as [grid_h, grid_w, grid_h * grid_w patches of
// p * p * 3, zeros], where S (record_side) is the smallest side with room for max_num_patches patches and the two
// header floats. Only the real patches are stored: the processor's padding to max_num_patches (pixel_attention_mask
// 0) is masked out of every attention in the model, so it never changes an embedding.
// Errors: zeroshot::Error naming the file (load) or "preprocess" / "pixel_values" (bad image or record).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "image/image.h"

namespace zeroshot::image {

struct NaflexConfig {
  int patch_size = 16;
  int max_num_patches = 256;
  int resample = 2;  // PIL filter number; Siglip2ImageProcessor's default is BILINEAR
  bool do_resize = true;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  float mean[3] = {0.5f, 0.5f, 0.5f};
  float std[3] = {0.5f, 0.5f, 0.5f};

  // preprocessor_config.json over Siglip2ImageProcessor's defaults; patch_size / max_num_patches default to the
  // given model values when the file lacks them. Throws zeroshot::Error naming the file for a non-positive or
  // non-integer max_num_patches / patch_size, max_num_patches above 16384, an unsupported resample, do_resize false
  // (transformers then patchifies the image as it is, which needs sides divisible by the patch size: not supported).
  static NaflexConfig load(const std::string& preprocessor_config_json, int patch_size, int max_num_patches);
};

// The resized size (height, width) in pixels, both multiples of patch_size, at most max_num_patches patches.
struct NaflexSize {
  int height = 0;
  int width = 0;
};
NaflexSize naflex_target_size(int height, int width, int patch_size, int max_num_patches);

// The floats of one packed record (3 * S * S) and S.
int naflex_record_side(const NaflexConfig& cfg);

// Preprocesses into a packed record of 3 * S * S floats (see above). Throws zeroshot::Error("preprocess: ...")
// for an empty image.
std::vector<float> naflex_preprocess(const RgbImage& img, const NaflexConfig& cfg);
// naflex_preprocess(decode_memory(data, size, name, opt), cfg), byte for byte, and the same errors. A JPEG is decoded
// strip by strip straight into the resize's first pass (RowStreamResampler, any EXIF orientation: the target size
// comes from the header), so neither its full-size pixels nor a rotated copy exist; other formats decode whole.
std::vector<float> naflex_preprocess_encoded(const uint8_t* data, size_t size, const std::string& name,
                                             const DecodeOptions& opt, const NaflexConfig& cfg);
// The same for a file: naflex_preprocess(decode_file(path, opt), cfg).
std::vector<float> naflex_preprocess_file(const std::string& path, const DecodeOptions& opt, const NaflexConfig& cfg);

}  // namespace zeroshot::image
