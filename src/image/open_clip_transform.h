// OpenCLIP's inference preprocessing: what open_clip.transform.image_transform(image_size, is_train=False, mean, std,
// resize_mode, interpolation, fill_color) does to a PIL image, exactly (open_clip 2.24 with torchvision 0.14 and
// Pillow 9.4):
//   resize_mode "shortest", square size S: torchvision Resize(S): short edge -> S, long edge -> int(S * long / short);
//             non-square (h, w): open_clip's ResizeKeepRatio(size) (scale = min(h / th, w / tw), each edge
//             round(edge / scale), Python's round-half-even); then torchvision CenterCrop((h, w)).
//   resize_mode "longest": ResizeKeepRatio(size, longest=1) (scale = max of the ratios), then CenterCropOrPad with
//             fill_color.
//   resize_mode "squash": Resize((h, w)), no crop.
// The resize is Image.resize in the image's OWN mode (pil_image.h: P and 1 nearest, RGBA / LA premultiplied, ...),
// the crop pads with `fill` (CenterCrop: 0) given per band in that mode, as torchvision's pad does (a palette image is
// padded with palette index `fill`, a CMYK one with (fill, fill, fill, fill)), the crop offset is
// int(round((H - h) / 2.0)) after the padding; only then convert("RGB"), ToTensor (uint8 / 255 in float32) and
// Normalize ((x - mean) / std in float32). Output: float32 CHW [3, height, width]. Only the pixels the crop keeps are
// resampled (identical values).
//
// Version notes: open_clip 2.24's non-square "shortest" passes no interpolation to ResizeKeepRatio, so it is always
// bicubic there (`nonsquare_shortest_always_bicubic`, default true); newer open_clip passes the configured one
// (set it false). interpolation "random" only changes training transforms (open_clip then uses bicubic at
// inference), and is refused here as a config error as the project decided.
//
// Errors: zeroshot::Error("open_clip transform: <problem>") for a config it cannot honour (check() says which) and for
// an image whose resized edge would be 0 pixels (Pillow refuses those too). Thread-safe; no state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "image/pil_image.h"

namespace zeroshot::image {

struct OpenClipTransformConfig {
  int height = 224;  // image_size: an int n means n x n; [h, w] otherwise
  int width = 224;
  float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};  // OPENAI_DATASET_MEAN
  float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};  // OPENAI_DATASET_STD
  std::string interpolation = "bicubic";                   // "bicubic" | "bilinear"
  std::string resize_mode = "shortest";                    // "shortest" | "longest" | "squash"
  int fill_color = 0;                                      // 0..255, padding of "longest"
  bool nonsquare_shortest_always_bicubic = true;           // open_clip 2.24 behaviour (see above)

  // Throws zeroshot::Error("open_clip transform: ...") naming the setting it cannot honour.
  void check() const;
};

// Writes [3, cfg.height, cfg.width] floats into `out`. Checks the config first.
void open_clip_transform(const PilImage& img, const OpenClipTransformConfig& cfg, float* out);
std::vector<float> open_clip_transform(const PilImage& img, const OpenClipTransformConfig& cfg);

// open_clip_transform(decode_native_memory(data, size, name, opt), cfg), byte for byte, and the same errors. A JPEG
// (L, RGB or CMYK) is decoded strip by strip straight into the resize's first pass in its own mode
// (RowStreamResampler, any EXIF orientation), so neither its full-size pixels nor a rotated copy ever exist; other
// formats, and an image the resize would leave at its size, are decoded whole first.
std::vector<float> open_clip_transform_encoded(const uint8_t* data, size_t size, const std::string& name,
                                               const DecodeOptions& opt, const OpenClipTransformConfig& cfg);
// The same for a file: open_clip_transform(decode_native_file(path, opt), cfg).
std::vector<float> open_clip_transform_file(const std::string& path, const DecodeOptions& opt,
                                            const OpenClipTransformConfig& cfg);

}  // namespace zeroshot::image
