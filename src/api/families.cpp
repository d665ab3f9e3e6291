// The registry of model families: which backend a model folder gets.
//
// A folder is recognized by its files, in this order:
//   1. config.json (transformers): model_type "clip" -> CLIP, "clap" -> CLAP; any other model_type is refused
//      with the list of supported ones.
//   2. (more layouts plug in here)
// A family is added by writing its backend and adding one entry to kFamilies below; nothing else branches on it.
#include <filesystem>

#include "api/backend.h"
#include "api/clap_backend.h"
#include "api/clip_backend.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/int8_weights.h"

namespace zeroshot::api {

namespace fs = std::filesystem;

namespace {

struct Family {
  const char* model_type;  // transformers config.json model_type
  std::unique_ptr<Backend> (*load)(const std::string& dir, const ModelOptions& options, const Int8Capture* capture);
};

std::unique_ptr<Backend> load_clip(const std::string& dir, const ModelOptions& o, const Int8Capture* c) {
  return make_clip_backend(load_hf_clip(dir, o), o, c);
}

const Family kFamilies[] = {
    {"clip", load_clip},
    {"clap", make_clap_backend},
};

std::string supported() {
  std::string s;
  for (const Family& f : kFamilies) s += (s.empty() ? "" : ", ") + std::string(f.model_type);
  return s;
}

// The transformers model_type of config.json ("" when the file has none).
std::string model_type_of(const fs::path& config) {
  const io::Json j = io::load_json(config.string());
  return j.is_object() && j.contains("model_type") && j["model_type"].is_string() ? j["model_type"].get<std::string>() : "";
}

}  // namespace

std::unique_ptr<Backend> load_backend(const std::string& dir, const ModelOptions& options, const Int8Capture* capture) {
  const fs::path d(dir);
  const fs::path config = d / "config.json";
  if (!fs::exists(config)) throw Error(dir, "no config.json (not a Hugging Face model folder)");
  const std::string type = model_type_of(config);
  for (const Family& f : kFamilies)
    if (type == f.model_type) return f.load(dir, options, capture);
  throw Error(config.string(), type.empty() ? "no \"model_type\"" : "unsupported model_type \"" + type + "\" (supported: " + supported() + ")");
}

void save_int8_weights(const std::string& dir, const std::string& path, const std::function<void(size_t)>& progress) {
  // The model built at int8 by its own family, with the weight loader capturing every weight it quantizes: the
  // file then holds exactly what an int8 load of this family quantizes, whatever the family.
  std::vector<models::Int8Record> records;
  const Int8Capture capture{&records, progress};
  ModelOptions o;
  o.threads = 1;
  o.precision = Precision::Int8;
  const std::unique_ptr<Backend> b = load_backend(dir, o, &capture);
  models::write_int8_weights(records, b->weights(), path);
}

}  // namespace zeroshot::api
