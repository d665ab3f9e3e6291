// The CLAP model (Hugging Face ClapModel semantics): HTSAT audio encoder + RoBERTa text encoder; f32 compute, or
// the encoder layers' GEMMs in bf16 / int8 (ClapModel's precision).
//
// Audio (input_features [n, channels, frames, mels], the ClapFeatureExtractor's output):
//   BatchNorm2d over the mel bins (running stats) -> time resized to spec_size * freq_ratio frames (bicubic,
//   align_corners) -> folded into a spec_size x spec_size image (reshape_mel2img) -> patch embedding
//   (Conv2d, stride = kernel; fused models with is_longer: channels 1..3 through mel_conv2d and attentional
//   feature fusion with channel 0) -> LayerNorm -> Swin stages (window attention with relative position bias,
//   shifted windows with the -100 mask on odd blocks of stages larger than one window, pre-LN, MLP; patch
//   merging between stages) -> LayerNorm -> mean over tokens (pooled) -> audio_projection (Linear, act, Linear).
// Text (RoBERTa, post-LN): word + token type 0 + position embeddings (positions cumsum(ids != pad) + pad for
//   non-pad tokens, pad for pad tokens) -> LayerNorm -> encoder -> pooler tanh(dense(h[0])) -> text_projection.
// Outputs are the projected, un-normalized embeddings (audio_embeds / text_embeds); HF's get_*_features are
// these L2-normalized. Scores: exp(logit_scale_a) * cos for logits_per_audio, exp(logit_scale_t) for per_text.
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

struct ClapAudioConfig {
  int num_mel_bins = 64;
  int spec_size = 256;
  int window_size = 8;
  int patch_size = 4;  // kernel = stride (HF patch_stride must equal it)
  int patch_embeds_hidden_size = 96;
  int hidden_size = 768;  // = patch_embeds_hidden_size * 2^(stages - 1)
  std::vector<int> depths = {2, 2, 6, 2};
  std::vector<int> num_heads = {4, 8, 16, 32};
  float mlp_ratio = 4.0f;
  bool qkv_bias = true;
  bool enable_fusion = false;
  bool enable_patch_layer_norm = true;
  int aff_block_r = 4;
  float layer_norm_eps = 1e-5f;  // the Swin blocks' LayerNorms (HF gives the other HTSAT LayerNorms torch's 1e-5)
  nn::Act act = nn::Act::Gelu;
  // Time frames of input_features. Not in config.json: the feature extractor's max_samples / hop + 1
  // (1001 in every CLAP checkpoint); any value in [1, spec_size * freq_ratio] is accepted.
  int input_frames = 1001;

  int freq_ratio() const { return spec_size / num_mel_bins; }
  int grid() const { return spec_size / patch_size; }  // tokens per side after the patch embedding
  int stage_dim(int i) const { return patch_embeds_hidden_size << i; }
  int mlp_dim(int i) const { return static_cast<int>(mlp_ratio * static_cast<float>(stage_dim(i))); }
};

struct ClapTextConfig {
  int vocab_size = 50265;
  int hidden_size = 768;
  int num_layers = 12;
  int num_heads = 12;
  int intermediate_size = 3072;
  int max_positions = 514;
  int type_vocab_size = 1;
  int pad_token_id = 1;
  float layer_norm_eps = 1e-12f;
  nn::Act act = nn::Act::Gelu;
};

struct ClapConfig {
  ClapAudioConfig audio;
  ClapTextConfig text;
  int projection_dim = 512;  // top level wins over the towers' own (as in HF's ClapConfig)
  nn::Act projection_act = nn::Act::Relu;
  // Throws zeroshot::Error naming the file: unknown model_type, invalid sizes, unsupported activations or
  // geometry (fusion_type "channel_map", patch_stride != patch_size, stages not a multiple of the window, ...).
  static ClapConfig load(const std::string& config_json);
};

// Intermediate tensors, for tests and debugging: (name, data, rows, cols) in forward order.
// Audio: "mel2img" [channels * spec_size, spec_size], "patch_embeds" [grid^2, D], "stage0".."stageN-1"
// (each stage's output, after patch merging), "final_norm" [tokens, 8D]. Text: "embeddings", "last_hidden_state".
using ClapTap = std::function<void(const std::string& name, const float* data, int64_t rows, int64_t cols)>;

struct ClapOptions {
  int threads = 0;  // <= 0: all cores
  // Of the GEMMs of the Swin blocks, the patch merging and the RoBERTa layers (nn/linear.h); the patch embedding,
  // fusion, pooler and projections always run in f32.
  nn::Precision precision = nn::Precision::F32;
  // Int8 only: weights quantized beforehand (int8_weights.h), used when made from these weights, else ignored.
  std::shared_ptr<const io::SafeTensorsFile> int8_weights;
  // Int8 only: every weight quantized at load is also appended here (to write an int8 weights file).
  std::vector<Int8Record>* int8_capture = nullptr;
  std::function<void(size_t)> on_quantized;
  // F32 / BF16 / Int8 on AVX-512: the layers' panels from a packed weights file (packed_weights.h) made from these
  // weights at this precision, mapped instead of packed (bit-identical outputs); the model keeps the file open. Layers
  // it lacks (at another precision: the f32 projections of a bf16 model) are packed at load.
  std::shared_ptr<const PackedWeightsFile> packed;
  // When set, every layer packed at load is listed here, to be written with write_packed_weights while the model
  // lives (api/backend.h's PackedWeightsPlan).
  std::vector<PackedRecord>* packed_capture = nullptr;
};

class ClapModel {
 public:
  // Reads weights from the store, checking every tensor's shape against the config and that no expected tensor
  // is missing and no unexpected float tensor is present (int64 buffers such as position_ids,
  // relative_position_index, num_batches_tracked are ignored). Keeps the store alive and uses its F32 tensors in
  // place; F16/BF16 ones are converted to f32 copies. `threads` <= 0: all cores. `precision`: that of the GEMMs
  // of the Swin blocks, the patch merging and the RoBERTa layers (nn/linear.h); the patch embedding, fusion,
  // pooler and projections always run in f32.
  ClapModel(const ClapConfig& cfg, std::shared_ptr<const io::WeightStore> weights, int threads = 0,
            nn::Precision precision = nn::Precision::F32);
  ClapModel(const ClapConfig& cfg, std::shared_ptr<const io::WeightStore> weights, const ClapOptions& options);
  ~ClapModel();
  ClapModel(ClapModel&&) noexcept;
  ClapModel& operator=(ClapModel&&) noexcept;

  const ClapConfig& config() const;
  float logit_scale_a() const;  // raw parameters: scores use exp()
  float logit_scale_t() const;
  nn::Precision precision() const;
  bool int8_from_file() const;  // Int8 weights came from ClapOptions::int8_weights
  // Names of the tensors read in place from the store (their pages stay mapped; a prefetch may map them).
  const std::vector<std::string>& weights_in_place() const;

  // input_features: n x [channels, audio.input_frames, audio.num_mel_bins]; channels must be 1 for an unfused
  // model and 4 for a fused one. is_longer: n flags (only fused models read it; null = all false).
  // out_embeds: n x projection_dim (audio_embeds); out_pooled (optional): n x audio.hidden_size.
  // Thread-safe; each row depends only on its own input.
  void encode_audio(const float* input_features, int n, int channels, const bool* is_longer, float* out_embeds,
                    float* out_pooled = nullptr) const;
  // Each sequence already holds <s> .. </s>; any batch size and lengths (run at their true lengths, no padding).
  // out_embeds: ids.size() x projection_dim (text_embeds); out_pooled (optional): ids.size() x text.hidden_size.
  // Throws zeroshot::Error("input_ids[i]: ...") for an empty sequence, an id outside the vocabulary, or more
  // tokens than the position table holds.
  void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out_embeds, float* out_pooled = nullptr) const;

  // One clip / one sequence through the encoder, reporting the intermediates to `tap`.
  void debug_audio(const float* input_features, int channels, bool is_longer, const ClapTap& tap) const;
  void debug_text(const std::vector<int32_t>& ids, const ClapTap& tap) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zeroshot::models
