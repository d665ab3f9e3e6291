// The model-family seam: zeroshot::Model holds one Backend and forwards to it; no Model method asks which family
// it holds. A family (CLIP in the transformers layout, CLIP in the OpenCLIP layout, CLAP, ...) is one Backend
// implementation plus one entry in the registry (families.cpp) that recognizes its checkpoint folder.
//
// A backend owns everything family-specific: the config reader, the weights (io::WeightStore, through
// models::WeightLoader), the tokenizer, the non-text input's decoding and preprocessing, the encoders and the
// score head. Model adds what is common: the batching pipeline over files (decode the next batch on worker
// threads while one is encoded), the fingerprint, the weight prefetch, argument checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "image/image.h"
#include "models/packed_weights.h"
#include "models/weight_loader.h"
#include "zeroshot/zeroshot.h"

namespace zeroshot::io {
class WeightStore;
class SafeTensorsFile;
}  // namespace zeroshot::io

namespace zeroshot::api {

// How a family turns cosines into scores (the public zeroshot::ScoreHead).
using ScoreHead = zeroshot::ScoreHead;

// One preprocessed item of the non-text tower: pixel_values [3, S, S] for images, input_features
// [channels, frames, mels] for audio (is_longer: the fused CLAP flag).
struct Input {
  std::vector<float> values;
  bool is_longer = false;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual const char* model_type() const = 0;  // "clip", "clap", ...
  virtual Modality modality() const = 0;
  virtual size_t embedding_dim() const = 0;
  virtual int image_size() const = 0;  // square side of the vision input; 0 for audio
  virtual ScoreHead score_head() const = 0;
  virtual const char* default_template() const = 0;

  // The weights the encoders read (for the fingerprint and the prefetch).
  virtual const io::WeightStore& weights() const = 0;
  // The small files that define what the model computes besides its weights (config, preprocessing,
  // tokenizer), in a fixed order; files that do not exist are skipped by the fingerprint.
  virtual std::vector<std::string> definition_files() const = 0;
  // The non-text tower's tensors that are read in place (worth mapping ahead of the first call).
  virtual std::vector<std::string> prefetch_weights() const = 0;

  // Text: ids with the family's special tokens, then projected, un-normalized embeddings (n x embedding_dim).
  virtual std::vector<int32_t> tokenize(const std::string& text) const = 0;
  virtual void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) const = 0;

  // The non-text input, decoded and preprocessed (thread-safe; throws zeroshot::Error naming the input).
  virtual Input load_file(const std::string& path) const = 0;
  virtual Input load_memory(const uint8_t* data, size_t size, const std::string& name) const = 0;
  // Interleaved 8-bit RGB already decoded by the caller (image families).
  virtual Input load_rgb(const uint8_t* rgb, int width, int height, const std::string& name) const = 0;
  // n inputs (all of one shape) -> n x embedding_dim projected, un-normalized embeddings. Thread-safe.
  virtual void encode(const Input* const* inputs, size_t n, float* out) const = 0;
  // Image families: n preprocessed images back to back, without copying them into Inputs.
  virtual void encode_pixel_values(const float* pixel_values, size_t n, float* out) const = 0;

  // Explanation maps (Model::embed_patch_tokens): the side of the square patch grid, 0 for a family without patch
  // tokens (the default); one image -> (1 + grid * grid) x embedding_dim (models::ClipModel::encode_image_tokens).
  virtual int patch_grid() const { return 0; }
  virtual void encode_image_tokens(const float* /*pixel_values*/, int /*vv_blocks*/, float* /*out*/) const {
    throw Error(model_type(), "this model has no patch tokens to explain with (explanation maps need a CLIP ViT)");
  }

  // Whether int8 layers came from the model folder's int8 weights file.
  virtual bool int8_from_file() const = 0;
};

// Set when a backend is built only to write its int8 weights file: the weight loader hands over every weight it
// quantizes (and the model folder's own int8 file is not read).
struct Int8Capture {
  std::vector<models::Int8Record>* records = nullptr;
  std::function<void(size_t)> progress;  // after each weight: the count so far
};

// What every backend needs from the same rules (backend.cpp):
// The encoders' arithmetic for the public precision.
nn::Precision to_nn_precision(Precision p);
// The model folder's int8 weights file, for an int8 load that is not capturing: null when there is none (or the
// load is not int8, or it captures), else the file; a file that is not valid safetensors is refused (it was meant to
// be used): "<file>: damaged int8 weights file (...); delete it or run `zeroshot quantize` again".
std::shared_ptr<const io::SafeTensorsFile> int8_weights_file(const std::string& dir, Precision p,
                                                             const Int8Capture* capture);
// The build options every model takes (threads, precision, the folder's int8 file, the int8 capture), set the
// same way for every family: `O` is models::ClipOptions, ClapOptions, ... (each has these five members).
template <class O>
O model_build_options(const std::string& dir, const ModelOptions& opt, const Int8Capture* capture) {
  O o;
  o.threads = opt.threads;
  o.precision = to_nn_precision(opt.precision);
  o.int8_weights = int8_weights_file(dir, opt.precision, capture);
  if (capture) {
    o.int8_capture = capture->records;
    o.on_quantized = capture->progress;
  }
  return o;
}
// The packed weights file of a load (models/packed_weights.h; the CLIP, SigLIP and CLAP backends): an F32,
// BF16 or Int8 load on the AVX-512 kernels maps the panels of its linear layers from
// $XDG_CACHE_HOME/zeroshot/packed-weights/<fingerprint>-<paths hash>-<precision>.bin (classify::resolve_cache_dir's
// folder; models::packed_weights_cache_name) when
// that file was made from these weights, by this layout; otherwise it packs at load, both towers at once, and then
// writes that file (save_packed_weights) for the next load. Never in the model folder: it may be shared, read-only
// or a hub snapshot. A stale or damaged file is rebuilt silently (ZEROSHOT_TRACE=1 notes why): it is a cache the
// engine writes itself and can always remake, so a damaged one must not make the model unusable.
// ModelOptions::weights_cache false or ZEROSHOT_PACKED_WEIGHTS=0 in the environment turns it off (no read, no
// write); so does an int8 capture (`zeroshot quantize`), and there is nothing to do at int4 or on the generic
// kernels. At int8 the file holds the quantized, packed layers whether they came from the f32 weights or from an int8
// weights file (the same values), and is used before that file.
struct PackedWeightsPlan {
  std::shared_ptr<const models::PackedWeightsFile> file;  // a valid file: the layers map it
  std::string write_to;                                   // else, when set: write what the load packs here
  std::string identity;                                   // what the file must have been made from
  std::vector<std::string> sources;                       // the weight files (absolute paths), recorded in the file
  nn::Precision precision = nn::Precision::F32;
  std::vector<models::PackedRecord> records;  // the layers packed at load (to write)
};
PackedWeightsPlan packed_weights_plan(const io::WeightStore& ws, const ModelOptions& opt, const Int8Capture* capture);
// Sets `o.packed` / `o.packed_capture` (models::ClipOptions, ...) from the plan.
template <class O>
void use_packed_weights(O& o, PackedWeightsPlan& plan) {
  o.packed = plan.file;
  if (!plan.write_to.empty()) o.packed_capture = &plan.records;
}
// After the build: writes the captured layers (while the model holds them) when the plan says so, then removes the
// files made from an older version of the same weight files (models::remove_superseded_packed_weights; each one
// noted in the trace). Best effort: a failure (a full disk, a read-only cache) only costs the next load its
// speed-up, and is noted in the trace.
void save_packed_weights(PackedWeightsPlan& plan);
// n inputs of one size back to back (pixel_values for the image encoders); throws for mixed sizes.
std::vector<float> concat_inputs(const Input* const* inputs, size_t n);
// Interleaved 8-bit RGB of a caller's decoder as an image (load_rgb); throws for a non-positive size.
image::RgbImage rgb_image(const uint8_t* rgb, int width, int height, const std::string& name);

// The names among `names` that start with one of `prefixes`: a tower's tensors, for prefetch_weights.
std::vector<std::string> names_with_prefix(const std::vector<std::string>& names,
                                           const std::vector<std::string>& prefixes);

// The registry: builds the backend of the family that `dir` (a local model folder) holds, recognized by its files
// (transformers config.json model_type, or open_clip_config.json). Throws zeroshot::Error naming the file for a
// folder no family takes, with the families that exist.
std::unique_ptr<Backend> load_backend(const std::string& dir, const ModelOptions& options,
                                      const Int8Capture* capture = nullptr);

// Writes the int8 (precision Int8) or int4 (Int4) weights file of the model in `dir` (the layers a load at that
// precision quantizes, under their tensor names) to `path`. progress(done) after each weight. Throws zeroshot::Error.
void save_int8_weights(const std::string& dir, const std::string& path,
                       const std::function<void(size_t)>& progress = {}, Precision precision = Precision::Int8);

}  // namespace zeroshot::api
