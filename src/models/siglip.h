// The SigLIP model (transformers 4.44 SiglipModel semantics), built from nn/
// kernels over models::WeightLoader: f32 compute by default; the encoder layers
// (and the patch embedding) can run in bf16 or int8 as CLIP's do.
//
// Vision: Conv2d patch embedding WITH bias (no class token) + learned positions
// -> encoder (pre-LN blocks: LN,
//         MHA with q/k/v/out biases, residual, LN, fc1, act, fc2, residual; no
//         pre-layernorm) -> post_layernorm
//         -> the multi-head attention pooling head: a learned probe token
//         attends over all tokens (torch nn.MultiheadAttention: in_proj_weight
//         = q|k|v stacked, out_proj), then x + mlp(layernorm(x)) -> that one
//         row (pooler_output = get_image_features).
// Text:   token + position embeddings -> encoder WITHOUT causal mask ->
// final_layer_norm -> the LAST position
//         -> head Linear (pooler_output = get_text_features).
//         The zero-shot pipeline pads every text to max_position_embeddings
//         (64) with the pad id and passes the attention mask, so the pooled row
//         is a pad token's (unless the text fills all 64) that attends over the
//         text's tokens only. encode_texts() computes exactly that: the real
//         tokens at their length, plus the one pad row at the last position
//         (the pad rows in between influence nothing). Without a mask (a
//         tokenizer whose model_input_names lack it) the caller passes the
//         ids already padded to 64: then every position attends to all.
// Scores: logits = exp(logit_scale) * cos + logit_bias, then a sigmoid per
// label.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/clip.h"
#include "models/int8_weights.h"
#include "nn/linear.h"

namespace zeroshot::io {
class WeightStore;
class SafeTensorsFile;
}  // namespace zeroshot::io

namespace zeroshot::models {

struct SiglipConfig {
  ClipTowerConfig text;  // max_positions: the padded length; eos_token_id unused
                         // (the last position pools)
  ClipTowerConfig vision;
  // Throws zeroshot::Error naming the file: model_type other than "siglip",
  // invalid sizes, an activation other than gelu_pytorch_tanh / gelu_new / gelu
  // / quick_gelu, vision_use_head false (no pooling head: SiglipModel cannot
  // give image features), text and vision widths that differ (no shared
  // embedding space).
  // model_type "siglip2" (transformers' Siglip2Model, NaFlex) is read too: vision_config.num_patches (default
  // 256, a perfect square: the positional grid) instead of image_size, which then stays 0.
  static SiglipConfig load(const std::string& config_json);
  int embedding_dim() const { return vision.hidden_size; }
  // NaFlex (Siglip2Model): the positional grid's patch count; 0 for the fixed-resolution SiglipModel.
  int num_patches = 0;
};

class SiglipModel {
 public:
  // Reads and checks every tensor (shapes from the config; missing or
  // unexpected float tensors refused). Keeps the store alive and reads F32
  // tensors in place where it can. Options as ClipModel's (precision, int8
  // file).
  SiglipModel(const SiglipConfig& cfg, std::shared_ptr<const io::WeightStore> weights, const ClipOptions& options);
  ~SiglipModel();
  SiglipModel(SiglipModel&&) noexcept;
  SiglipModel& operator=(SiglipModel&&) noexcept;

  const SiglipConfig& config() const;
  float logit_scale() const;  // raw parameters: scores use exp(logit_scale) * cos + logit_bias
  float logit_bias() const;
  bool int8_from_file() const;
  const std::vector<std::string>& weights_in_place() const;

  // pixel_values: n x [3, image_size, image_size]; out: n x embedding_dim.
  // Thread-safe.
  void encode_images(const float* pixel_values, int n, float* out) const;
  // NaFlex models (num_patches > 0): n packed records of `record_floats` floats each (image/naflex_processor.h:
  // grid_h, grid_w, then grid_h * grid_w patches of p * p * 3). Each image attends over its own patches only, as
  // Siglip2Model under its pixel_attention_mask. Throws zeroshot::Error("pixel_values", ...) for a record whose grid
  // is not whole patch counts or holds more patches than fit in the record. Thread-safe.
  void encode_naflex(const float* records, int n, size_t record_floats, float* out) const;
  // Each sequence: the tokenizer's ids (eos included), unpadded, 1..padded_length long; the model runs them as
  // padded to padded_length (the tokenizer's model_max_length; 0: max_positions) with `pad_id` under the attention
  // mask (see above), so the pooled row is position padded_length - 1. out: ids.size() x embedding_dim.
  // Throws zeroshot::Error("input_ids[i]: ...") for an empty or too long sequence or an id outside the vocabulary,
  // and for a padded_length above max_positions.
  // pad_left (a tokenizer whose padding_side is "left"): the pad tokens come first, so the text's tokens sit at
  // positions padded_length - n .. padded_length - 1 and the pooled row is its own last token (the masked pad rows
  // influence nothing).
  void encode_texts(const std::vector<std::vector<int32_t>>& ids, int32_t pad_id, float* out, int padded_length = 0,
                    bool pad_left = false) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zeroshot::models
