// The registry of model families: which backend a model folder gets.
//
// A folder is recognized by its files, in this order:
//   1. config.json (transformers) whose model_type a family takes: "clip" -> CLIP, "clap" -> CLAP.
//   2. open_clip_config.json -> CLIP in the OpenCLIP layout, or SigLIP in the OpenCLIP layout when the config has
//      a sigmoid head (init_logit_bias: the timm/ViT-*-SigLIP* repos).
// Where a repo carries both (laion/CLIP-ViT-B-32-laion2B-s34B-b79K has config.json + model.safetensors beside
// open_clip_config.json + open_clip_pytorch_model.bin), the transformers layout wins: zeroshot promises the scores of
// the Hugging Face pipeline, which runs that layout (with CLIPImageProcessor's preprocessing), and it is what the
// hub resolution downloads for such a repo (io/hub.h). A folder with only OpenCLIP files gets open_clip's semantics.
// A family is added by writing its backend and adding one entry to kFamilies below; nothing else branches on it.
#include <filesystem>

#include "api/backend.h"
#include "api/clap_backend.h"
#include "api/clip_backend.h"
#include "api/open_clip_siglip_backend.h"
#include "api/siglip_backend.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/int8_weights.h"
#include "models/open_clip.h"
#include "models/open_clip_siglip.h"

namespace zeroshot::api {

namespace fs = std::filesystem;

namespace {

struct Family {
  const char* model_type;  // transformers config.json model_type; nullptr: recognized by `marker` instead
  const char* marker;      // a file whose presence names the layout (when model_type is nullptr)
  std::unique_ptr<Backend> (*load)(const std::string& dir, const ModelOptions& options, const Int8Capture* capture);
};

std::unique_ptr<Backend> load_clip(const std::string& dir, const ModelOptions& o, const Int8Capture* c) {
  return make_clip_backend(load_hf_clip(dir, o), o, c);
}
std::unique_ptr<Backend> load_open_clip_family(const std::string& dir, const ModelOptions& o, const Int8Capture* c) {
  if (models::is_open_clip_siglip((fs::path(dir) / models::kOpenClipConfigFile).string()))
    return make_open_clip_siglip_backend(dir, o, c);
  return make_clip_backend(load_open_clip(dir, o), o, c);
}

const Family kFamilies[] = {
    {"clip", nullptr, load_clip},
    {"clap", nullptr, make_clap_backend},
    {"siglip", nullptr, make_siglip_backend},
    {"siglip2", nullptr, make_siglip_backend},  // Siglip2Model (NaFlex): the SigLIP backend with its own processor
    {nullptr, models::kOpenClipConfigFile, load_open_clip_family},
};

std::string supported() {
  std::string s;
  for (const Family& f : kFamilies)
    if (f.model_type) s += (s.empty() ? "" : ", ") + std::string(f.model_type);
  return s;
}

// The transformers model_type of config.json ("" when the file has none).
std::string model_type_of(const fs::path& config) {
  const io::Json j = io::load_json(config.string());
  return j.is_object() && j.contains("model_type") && j["model_type"].is_string() ? j["model_type"].get<std::string>()
                                                                                  : "";
}

}  // namespace

std::unique_ptr<Backend> load_backend(const std::string& dir, const ModelOptions& options, const Int8Capture* capture) {
  const fs::path d(dir);
  const fs::path config = d / "config.json";
  const bool has_config = fs::exists(config);
  const std::string type = has_config ? model_type_of(config) : "";
  for (const Family& f : kFamilies)
    if (f.model_type && has_config && type == f.model_type) return f.load(dir, options, capture);
  for (const Family& f : kFamilies)
    if (!f.model_type && fs::exists(d / f.marker)) return f.load(dir, options, capture);
  if (!has_config)
    throw Error(dir, "no config.json or open_clip_config.json (not a Hugging Face or OpenCLIP model folder)");
  throw Error(config.string(),
              (type.empty() ? std::string("no \"model_type\"") : "unsupported model_type \"" + type + "\"") +
                  " (supported: " + supported() + ", or an OpenCLIP folder with open_clip_config.json)");
}

void save_int8_weights(const std::string& dir, const std::string& path, const std::function<void(size_t)>& progress,
                       Precision precision) {
  // The model built at int8 by its own family, with the weight loader capturing every weight it quantizes: the
  // file then holds exactly what an int8 load of this family quantizes, whatever the family.
  std::vector<models::Int8Record> records;
  const Int8Capture capture{&records, progress};
  ModelOptions o;
  o.threads = 1;
  o.precision = precision == Precision::Int4 ? Precision::Int4 : Precision::Int8;
  const std::unique_ptr<Backend> b = load_backend(dir, o, &capture);
  models::write_int8_weights(records, b->weights(), path);
}

}  // namespace zeroshot::api
