// CLIPImageProcessor: resize shortest edge (Pillow-exact BICUBIC), center crop, rescale, normalize.
// Reads preprocessor_config.json in both styles: old ("size": 224, "crop_size": 224) and new
// ("size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "image/image.h"

namespace zeroshot::image {

struct ImageProcessorConfig {
  bool do_resize = true;
  int shortest_edge = 224;
  // "size": {"height": h, "width": w} resizes to exactly h x w (aspect ratio not kept); 0 = shortest_edge mode.
  int resize_height = 0;
  int resize_width = 0;
  // PIL resampling filter: 3 BICUBIC, 2 BILINEAR, 1 LANCZOS, 4 BOX, 5 HAMMING (0 NEAREST is not supported).
  int resample = 3;
  bool do_center_crop = true;
  int crop_height = 224;
  int crop_width = 224;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
  float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
  bool do_convert_rgb = true;

  // Throws zeroshot::Error naming the file on malformed or unsupported settings (including settings whose
  // output size would depend on the image: no center crop with a shortest-edge resize, or no resize and no crop).
  static ImageProcessorConfig load(const std::string& preprocessor_config_json);
};

// Pillow-exact resize (Image.resize with reducing_gap=None; filters as in `resample` above): separable antialiased
// convolution, horizontal pass then vertical pass, each rounded to 8 bits, fixed-point coefficients as in
// Pillow's Resample.c. Same size: a copy. Throws zeroshot::Error for an unsupported filter or a bad size.
RgbImage resize(const RgbImage& src, int width, int height, int resample = 3);

class ImageProcessor {
 public:
  explicit ImageProcessor(ImageProcessorConfig cfg) : cfg_(cfg) {}
  const ImageProcessorConfig& config() const { return cfg_; }
  int out_height() const {
    return cfg_.do_center_crop ? cfg_.crop_height : (cfg_.resize_height > 0 ? cfg_.resize_height : cfg_.shortest_edge);
  }
  int out_width() const {
    return cfg_.do_center_crop ? cfg_.crop_width : (cfg_.resize_width > 0 ? cfg_.resize_width : cfg_.shortest_edge);
  }
  // The DecodeOptions::draft_size that leaves at least twice the resized size (Pillow's thumbnail() drafts with
  // reducing_gap 2.0 for the same reason: the resize that follows still low-passes the image), so a fast decode
  // loses little; 0 (no draft) without a resize. Shortest-edge mode: 2 * shortest_edge; fixed size: twice the
  // larger side (a square request, so the choice does not depend on EXIF orientation).
  int draft_size() const {
    if (!cfg_.do_resize) return 0;
    return 2 * (cfg_.resize_height > 0 ? std::max(cfg_.resize_height, cfg_.resize_width) : cfg_.shortest_edge);
  }
  // Writes pixel_values, layout [3, out_height, out_width] (CHW), into `out`.
  // Resize: short edge -> shortest_edge, long edge -> int(shortest_edge * long / short).
  // Crop: top = (h - crop_h) // 2, left = (w - crop_w) // 2 (zero padding if the image is smaller, as HF does).
  // Then (x * rescale_factor in double, cast to float - mean) / std in float, as HF's rescale + normalize.
  // Only the pixels inside the crop are resampled (same values as resizing the whole image, then cropping).
  // Throws zeroshot::Error("preprocess: ...") for an empty image or an output size other than out_height x
  // out_width (possible only with a config built by hand that load() would refuse).
  void preprocess(const RgbImage& img, float* out) const;
  std::vector<float> preprocess(const RgbImage& img) const;
  // The same for the displayed image of a stored one (decode_file_stored): preprocess(exif_transpose(img)), byte for
  // byte, without the rotated full-size copy.
  void preprocess(const StoredRgbImage& img, float* out) const;
  std::vector<float> preprocess(const StoredRgbImage& img) const;
  // preprocess(decode_memory_stored(data, size, name, opt)), byte for byte, and the same errors. A JPEG is decoded
  // strip by strip straight into the resize's first pass (RowStreamResampler, any EXIF orientation), so its
  // full-size pixels never exist (36 MB for 12 MP: page faults and cache misses that cost more than the resize);
  // other formats are decoded whole first.
  std::vector<float> preprocess_encoded(const uint8_t* data, size_t size, const std::string& name,
                                        const DecodeOptions& opt) const;
  // The same for a file: preprocess(decode_file_stored(path, opt)).
  std::vector<float> preprocess_file(const std::string& path, const DecodeOptions& opt) const;

 private:
  // Where the crop falls in the resized image of a displayed width x height image.
  struct Layout {
    int rw, rh;     // size after the resize
    int top, left;  // of the crop in the resized image (negative: zero padding)
    int x0, y0;     // the part of the resized image inside the crop
    int ww, wh;
  };
  Layout layout(int width, int height) const;
  // The normalized CHW output from the resampled window (ww x wh RGB).
  void write_pixels(const Layout& l, const uint8_t* window, float* out) const;
  // `s` as stored, shown with EXIF `orientation` (1: as it is).
  void run(const RgbImage& s, int orientation, float* out) const;
  // The streamed JPEG path of preprocess_encoded; false when it does not apply (then nothing was written).
  bool run_streamed(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt,
                    float* out) const;

  ImageProcessorConfig cfg_;
};

}  // namespace zeroshot::image
