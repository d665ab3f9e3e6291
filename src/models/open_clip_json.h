// Internal to src/models: the model part of an OpenCLIP config, found the same way by both OpenCLIP readers
// (open_clip.h: ViT CLIP towers; open_clip_siglip.h: SigLIP with a timm trunk). open_clip_config.json nests the
// model under "model_cfg" beside "preprocess_cfg"; open_clip's own model_configs/*.json are the bare model.
// Errors name a key by its path in the file ("model_cfg.vision_cfg.width"), which the prefixes below spell.
#pragma once

#include <string>

#include "io/json.h"

namespace zeroshot::models {

struct OpenClipJson {
  io::Json root;              // the whole file
  std::string model_prefix;   // "model_cfg." or "" (bare)
  std::string vision_prefix;  // model_prefix + "vision_cfg."
  std::string text_prefix;    // model_prefix + "text_cfg."
  const io::Json& model() const { return model_prefix.empty() ? root : root["model_cfg"]; }
  const io::Json& vision() const { return model()["vision_cfg"]; }
  const io::Json& text() const { return model()["text_cfg"]; }
};

// Reads `path` and finds its model, vision_cfg and text_cfg objects. CoCa (multimodal_cfg) is refused by name
// before the towers are looked at: neither reader builds a captioning decoder. Throws zeroshot::Error naming the
// file for invalid JSON, a root or model_cfg that is not an object, or a vision_cfg / text_cfg that is missing or
// not an object.
OpenClipJson read_open_clip_json(const std::string& path);

}  // namespace zeroshot::models
