// The CLIP families: one backend over models::ClipModel for every checkpoint layout of the CLIP architecture.
// A layout supplies its config, its weights under the transformers names ClipModel reads, and its image
// preprocessing; the tokenizer (CLIP BPE, lazily parsed), the encoders and the softmax head are shared.
//   - transformers (config.json model_type "clip"): CLIPImageProcessor from preprocessor_config.json, images
//     converted to RGB before resizing (the Hugging Face pipeline's load_image).
//   - OpenCLIP (open_clip_config.json + open_clip's weight files): the state dict renamed onto the transformers
//     names (models/open_clip.h), open_clip's eval transform on the image in its own Pillow mode, converted to
//     RGB after resizing (image/open_clip_transform.h), the tokenizer's context length from the config.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "api/backend.h"
#include "models/clip.h"
#include "models/open_clip.h"
#include "text/text_normalize.h"

namespace zeroshot::api {

// The image side of a CLIP layout: a file, encoded bytes or decoded RGB pixels -> pixel_values [3, S, S].
struct ImagePreprocess {
  std::function<std::vector<float>(const std::string& path)> file;
  std::function<std::vector<float>(const uint8_t* data, size_t size, const std::string& name)> bytes;
  std::function<std::vector<float>(const uint8_t* rgb, int width, int height, const std::string& name)> rgb;
};

// What a layout hands to the shared backend.
struct ClipCheckpoint {
  std::string dir;
  std::string model_type;                          // "clip", "open_clip"
  models::ClipConfig cfg;                          // text.max_positions is the tokenizer's context length
  std::shared_ptr<const io::WeightStore> weights;  // transformers CLIPModel names
  std::vector<std::string> definition_files;       // config, preprocessing and tokenizer files (fingerprint)
  text::ClipSpecialTokens specials;                // how the tokenizer's reference spells bos / eos in texts
  ImagePreprocess preprocess;
};

// Throws zeroshot::Error naming the file at fault.
std::unique_ptr<Backend> make_clip_backend(ClipCheckpoint ck, const ModelOptions& options,
                                           const Int8Capture* capture = nullptr);
// The transformers layout in `dir` (config.json with model_type "clip").
ClipCheckpoint load_hf_clip(const std::string& dir, const ModelOptions& options);
// The OpenCLIP layout in `dir` (open_clip_config.json; weights: the first of io::open_clip_weight_files()).
ClipCheckpoint load_open_clip(const std::string& dir, const ModelOptions& options);
// open_clip's eval transform (image/open_clip_transform.h) of `p`, on images in their own Pillow mode.
ImagePreprocess open_clip_image_preprocess(const models::OpenClipPreprocess& p, const ModelOptions& options);
// The weights file of an OpenCLIP folder: the first of io::open_clip_weight_files() there; none: Error naming `dir`.
std::string open_clip_weights(const std::string& dir);
// The CLIP tokenizer files of `dir`: vocab.json + merges.txt, or tokenizer.json. Throws (the tokenizer's own
// error) when neither is there.
std::vector<std::string> clip_tokenizer_files(const std::string& dir);

}  // namespace zeroshot::api
