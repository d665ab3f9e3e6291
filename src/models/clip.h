// The CLIP model (Hugging Face CLIPModel semantics), f32 compute, built from nn/ kernels.
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
#include <memory>
#include <string>
#include <vector>

namespace zeroshot::io {
class WeightStore;
}

namespace zeroshot::models {

enum class Activation { QuickGelu, Gelu /* exact erf */, GeluTanh };

struct ClipTowerConfig {
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_heads = 0;
  int num_layers = 0;
  float layer_norm_eps = 1e-5f;
  Activation act = Activation::QuickGelu;
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

class ClipModel {
 public:
  // Reads weights from the store, checking every tensor's shape against the config and that no expected tensor
  // is missing and no unexpected float tensor is present (int64 buffers such as position_ids are ignored).
  // F16/BF16 weights are converted to f32. `threads` <= 0: all cores.
  // This form copies every weight: the store may be destroyed afterwards.
  ClipModel(const ClipConfig& cfg, const io::WeightStore& weights, int threads = 0);
  // Same checks, but keeps the store alive and uses its (memory-mapped) F32 tensors in place where they are
  // float-aligned; only F16/BF16 (and unaligned F32) tensors are converted into owned copies.
  ClipModel(const ClipConfig& cfg, std::shared_ptr<const io::WeightStore> weights, int threads = 0);
  ~ClipModel();
  ClipModel(ClipModel&&) noexcept;
  ClipModel& operator=(ClipModel&&) noexcept;

  const ClipConfig& config() const;
  float logit_scale() const;  // the raw parameter; scores use exp(logit_scale)

  // pixel_values: n x [num_channels, image_size, image_size]; out: n x projection_dim.
  // Both encoders may be called concurrently from several threads; each row of out depends only on its input.
  void encode_images(const float* pixel_values, int n, float* out) const;
  // Each sequence already holds bos..eos (<= max_positions ids); any batch size, any lengths
  // (sequences are run at their true length, not padded to 77). out: ids.size() x projection_dim.
  // Throws zeroshot::Error("input_ids[i]: ...") for an empty or too long sequence or an id outside the vocabulary.
  void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zeroshot::models
