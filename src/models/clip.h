// The CLIP model (Hugging Face CLIPModel semantics), built from nn/ kernels: f32 compute by default; the linear
// layers of the encoders can run in bf16 or int8 instead (nn/linear.h says exactly what each precision does).
//
// Vision: conv patch embedding (no bias) -> [class; patches] + positions -> pre_layrnorm -> encoder
//         (pre-LN blocks: LN, MHA with q/k/v/out biases, residual, LN, fc1, act, fc2, residual)
//         -> post_layernorm on the class token -> visual_projection (no bias).
// Text:   token + position embeddings -> encoder with causal mask -> final_layer_norm -> pooled row
//         (eos_token_id == 2, the legacy rule: argmax of the ids; otherwise the first position holding
//         eos_token_id) -> text_projection (no bias).
// Outputs are the projected, un-normalized embeddings (get_image_features / get_text_features).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/int8_weights.h"
#include "models/packed_weights.h"
#include "nn/linear.h"

namespace zeroshot::io {
class WeightStore;
class SafeTensorsFile;
}  // namespace zeroshot::io

namespace zeroshot::models {

struct ClipTowerConfig {
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_heads = 0;
  int num_layers = 0;
  float layer_norm_eps = 1e-5f;
  nn::Act act = nn::Act::QuickGelu;
  // vision only
  int image_size = 0;
  int patch_size = 0;
  int num_channels = 3;
  // text only
  int vocab_size = 0;
  int max_positions = 0;
  int eos_token_id = 0;
};

struct ClipConfig {
  ClipTowerConfig text;
  ClipTowerConfig vision;
  int projection_dim = 0;
  // Throws zeroshot::Error naming the file: unknown model_type, missing/invalid sizes, unknown hidden_act,
  // hidden_size not divisible by heads, ...
  static ClipConfig load(const std::string& config_json);
};

using Precision = nn::Precision;

struct ClipOptions {
  int threads = 0;  // <= 0: all cores
  // F32 (exact), BF16 or Int8 for the q|k|v / out / fc1 / fc2 layers of both towers (and the patch embedding for
  // BF16); everything else (embeddings, layer norms, attention, projections) is always f32.
  Precision precision = Precision::F32;
  // Int8 only: weights quantized beforehand (save_int8_weights' file). Used when its source fingerprint matches
  // the weights being loaded; otherwise ignored and the weights are quantized at load (same bytes either way).
  std::shared_ptr<const io::SafeTensorsFile> int8_weights;
  // Int8 only: every weight quantized at load is also appended here (save_int8_weights), with a callback.
  std::vector<Int8Record>* int8_capture = nullptr;
  std::function<void(size_t)> on_quantized;
  // F32 / BF16 / Int8 on AVX-512: the layers' panels from a packed weights file (packed_weights.h) made from these
  // weights at this precision, mapped instead of packed (bit-identical outputs). Layers it lacks are packed at load.
  std::shared_ptr<const PackedWeightsFile> packed;
  // When set, both towers are built at load (none deferred) and every layer packed at load is listed here, to be
  // written with write_packed_weights while the model lives.
  std::vector<PackedRecord>* packed_capture = nullptr;
};

// Quantizes the layers that run in int8 and writes them to `path` as an int8 weights file (int8_weights.h),
// atomically. Throws zeroshot::Error. `progress(done, total)`, when given, is called after each quantized weight.
// The mapped pages of each f32 weight are released once quantized, so memory stays near the int8 size.
void save_int8_weights(const ClipConfig& cfg, const io::WeightStore& weights, const std::string& path,
                       const std::function<void(size_t done, size_t total)>& progress = {});

class ClipModel {
 public:
  // Reads weights from the store, checking every tensor's shape against the config and that no expected tensor
  // is missing and no unexpected float tensor is present (int64 buffers such as position_ids are ignored).
  // F16/BF16 weights are converted to f32. `threads` <= 0: all cores.
  // This form copies every weight: the store may be destroyed afterwards.
  ClipModel(const ClipConfig& cfg, const io::WeightStore& weights, int threads = 0);
  // Same checks, but keeps the store alive and uses its (memory-mapped) F32 tensors in place where they are
  // float-aligned; only F16/BF16 (and unaligned F32) tensors are converted into owned copies. The text tower's
  // linear layers are packed by the first encode_texts (checked here all the same): a caller that only encodes
  // images (a cached label set) never pays for them.
  ClipModel(const ClipConfig& cfg, std::shared_ptr<const io::WeightStore> weights, int threads = 0);
  // Either form with options (precision, int8 weights file). Weights that are converted for the kernels (every
  // linear layer on the AVX-512 path, any precision other than F32) are not used in place: their pages of the
  // mapped file are released after conversion, so the packed copy is not held twice.
  ClipModel(const ClipConfig& cfg, const io::WeightStore& weights, const ClipOptions& options);
  ClipModel(const ClipConfig& cfg, std::shared_ptr<const io::WeightStore> weights, const ClipOptions& options);
  ~ClipModel();
  ClipModel(ClipModel&&) noexcept;
  ClipModel& operator=(ClipModel&&) noexcept;

  const ClipConfig& config() const;
  float logit_scale() const;  // the raw parameter; scores use exp(logit_scale)
  Precision precision() const;
  bool int8_from_file() const;  // Int8 weights came from ClipOptions::int8_weights
  // Names of the tensors read in place from the store (their pages stay mapped; a prefetch may map them), as of
  // the load: the layers of a text tower packed on first use are not listed.
  const std::vector<std::string>& weights_in_place() const;

  // pixel_values: n x [num_channels, image_size, image_size]; out: n x projection_dim.
  // Both encoders may be called concurrently from several threads; each row of out depends only on its input.
  // Each calling thread keeps its largest activation workspace between calls (at most one chunk of 2048 rows:
  // ~40 MB for ViT-B), so repeated calls do not page-fault fresh buffers in.
  void encode_images(const float* pixel_values, int n, float* out) const;
  // Explanation maps: one image [num_channels, image_size, image_size] -> out [(1 + grid * grid), projection_dim]:
  // row 0 the image embedding (the class token, exactly as encode_images), rows 1.. the patch tokens in row-major
  // grid order, from the value-value path of CLIP Surgery (Li et al. 2023, arXiv:2304.05653, its reference code's
  // dual-path blocks): over the last `vv_blocks` encoder layers a second residual stream starts from the first of
  // them's input and adds each layer's out_proj(softmax(v v^T * scale) v) (v, scale, out_proj of that layer, v
  // from the original stream's ln1) and no MLP, while the original stream runs unchanged; the patch tokens of that
  // stream go through post_layernorm and visual_projection like the class token. CLIP Surgery uses the last 6 of
  // ViT-B's 12; 1 is the last block alone. Throws zeroshot::Error for vv_blocks outside 1..num_layers.
  void encode_image_tokens(const float* pixel_values, int vv_blocks, float* out) const;
  // Each sequence already holds bos..eos (<= max_positions ids); any batch size, any lengths
  // (sequences are run at their true length, not padded to 77). out: ids.size() x projection_dim.
  // Throws zeroshot::Error("input_ids[i]: ...") for an empty or too long sequence or an id outside the vocabulary.
  void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zeroshot::models
