// The SigLIP family (model_type "siglip", transformers' SiglipModel layout)
// behind the Backend seam. Semantics are the zero-shot-image-classification
// pipeline's for SigLIP: SiglipTokenizer over spiece.model with the texts
// padded to 64 (text/siglip_tokenizer.h, models/siglip.h), SiglipImageProcessor
// (resize to exactly size.height x size.width with the configured resample, no
// crop, rescale, normalize with mean / std 0.5 unless the file says otherwise)
// on images loaded as the pipeline loads them (EXIF orientation, RGB), and the
// score head sigmoid(exp(logit_scale) * cos + logit_bias) per label.
// model_type "siglip2" (Siglip2Model, NaFlex) takes the same backend with Siglip2ImageProcessor instead
// (image/naflex_processor.h): its pixel_values are packed records and image_size() is the record's side.
#pragma once

#include <memory>
#include <string>

#include "api/backend.h"

namespace zeroshot::api {

// `dir` holds config.json (model_type "siglip"), model.safetensors (or another
// layout io::WeightStore reads), spiece.model (checked now, parsed on first
// use) and preprocessor_config.json (SiglipImageProcessor's defaults at the
// vision tower's size when absent). Throws zeroshot::Error naming the file.
std::unique_ptr<Backend> make_siglip_backend(const std::string& dir, const ModelOptions& options,
                                             const Int8Capture* capture = nullptr);

}  // namespace zeroshot::api
