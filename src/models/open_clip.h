// OpenCLIP checkpoints (open_clip_config.json + open_clip_model.safetensors / open_clip_pytorch_model.bin) as a
// ClipModel: the config mapped onto ClipConfig, the tensors renamed to the Hugging Face CLIPModel names ClipModel
// reads. The forward pass is the same computation (open_clip 2.24 model.py / transformer.py):
//   vision: conv1 (no bias) -> [class_embedding; patches] + positional_embedding -> ln_pre -> pre-LN resblocks
//           (ln_1, MultiheadAttention with stacked in_proj q|k|v and biases, ln_2, c_fc, act, c_proj) -> ln_post on
//           the class token ("tok" pooling) -> @ proj [width, embed_dim];
//   text:   token_embedding + positional_embedding -> causal resblocks -> ln_final -> the row at argmax(ids)
//           (the end-of-text token, the highest id) -> @ text_projection [width, embed_dim].
// LayerNorm eps is torch's default 1e-5; activation QuickGELU when quick_gelu, else exact (erf) GELU;
// mlp width int(width * mlp_ratio) (truncated, as Python's int()); vision heads width // head_width.
//
// Only the ViT CLIP towers are built. Every other architecture or option that changes the computation (timm,
// ResNet and Hugging Face towers, CoCa, layer scale, attentional pooling, other pool types, custom blocks,
// logit_bias heads, ...) and every key this reader does not know is refused with a one-line
// zeroshot::Error("<config file>: ...") naming it; options that only matter for training (patch_dropout,
// output_tokens, the timm_* / hf_* keys of an absent tower, ...) are accepted and ignored.
//
// Thread safety: plain functions over immutable inputs.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "models/clip.h"

namespace zeroshot::io {
class WeightStore;
struct TensorView;
}  // namespace zeroshot::io

namespace zeroshot::models {

enum class OpenClipInterpolation { Bicubic, Bilinear };
enum class OpenClipResizeMode { Shortest, Longest, Squash };

// open_clip's eval transform (transform.py image_transform, is_train=False) as data. Its steps on a PIL image:
//   Shortest: Resize(size) (shortest edge) then CenterCrop(size);
//   Longest:  ResizeKeepRatio(size, longest=1) then CenterCropOrPad(size, fill=fill_color);
//   Squash:   Resize((size, size));
// then convert("RGB") (after resizing), ToTensor, Normalize(mean, std) in float32.
struct OpenClipPreprocess {
  // open_clip's create_model replaces preprocess_cfg.size with the vision tower's image_size, so this is
  // vision_cfg.image_size whatever preprocess_cfg says.
  int size = 224;
  std::array<float, 3> mean = {0.48145466f, 0.4578275f, 0.40821073f};  // OPENAI_DATASET_MEAN
  std::array<float, 3> std = {0.26862954f, 0.26130258f, 0.27577711f};  // OPENAI_DATASET_STD
  // "random" (a training option) is bicubic at inference, as in open_clip.
  OpenClipInterpolation interpolation = OpenClipInterpolation::Bicubic;
  OpenClipResizeMode resize_mode = OpenClipResizeMode::Shortest;
  int fill_color = 0;  // Longest only: the padding value (0..255, every channel)
};

struct OpenClipConfig {
  // text.eos_token_id is 2, ClipModel's argmax-of-ids pooling rule, which is open_clip's text_global_pool
  // "argmax" (the same position as the first 49407 for any ids a CLIP tokenizer makes).
  // text.max_positions == context_length.
  ClipConfig clip;
  OpenClipPreprocess preprocess;
  int context_length = 77;  // the tokenizer truncates to this many ids (bos .. eot), as open_clip's tokenizer
};

inline constexpr const char* kOpenClipConfigFile = "open_clip_config.json";

// The preprocess_cfg of an open_clip_config.json at `image_size` (the vision tower's), as load_open_clip_config
// reads it; open_clip's defaults where absent. Throws zeroshot::Error naming the file.
OpenClipPreprocess load_open_clip_preprocess(const std::string& open_clip_config_json, int image_size);

// Reads an open_clip_config.json ({"model_cfg": {...}, "preprocess_cfg": {...}}, or a bare model config as
// open_clip's own model_configs/*.json). Throws zeroshot::Error naming the file for invalid JSON, a refused
// architecture or option (see the top of this file), or invalid sizes.
OpenClipConfig load_open_clip_config(const std::string& open_clip_config_json);

// The tensors of an OpenCLIP state dict under the names ClipModel reads (see clip.cpp): q/k/v are zero-copy row
// slices of in_proj_weight / in_proj_bias, everything else is the source tensor itself, except visual.proj and
// text_projection, which are transposed into owned copies of the same dtype. Accepts the CustomTextCLIP layout
// ("text." before the text tower's names) and DataParallel's "module." prefix. Checks every tensor's shape
// against `cfg` and that none is missing; a tensor that is not part of the model is an error naming it, except
// non-float buffers and the attn_mask buffer older open_clip versions saved. Errors cite the source's file and
// the open_clip tensor name. The result keeps `src` alive.
std::shared_ptr<const io::WeightStore> open_clip_to_hf(std::shared_ptr<const io::WeightStore> src,
                                                       const ClipConfig& cfg);

// An open_clip state dict as the converters (open_clip_to_hf, open_clip_siglip_to_hf) read it: DataParallel's
// "module." prefix dropped when every name has it (as open_clip does), each tensor taken checked, and the names
// taken recorded so that check_all_used can refuse the rest. Holds a reference to `s`; not thread-safe.
class OpenClipStateDict {
 public:
  explicit OpenClipStateDict(const io::WeightStore& s);
  bool has(const std::string& name) const;  // `name` without the prefix, as for the rest
  // The tensor `name`: a zeroshot::Error naming its file and the tensor when it is missing, not F32 / F16 / BF16,
  // or not of `shape` (the one open_clip_config.json implies).
  const io::TensorView& get(const std::string& name, const std::vector<int64_t>& shape);
  // The tensor as it is (a scalar whose form the model checks); missing is an error.
  const io::TensorView& take(const std::string& name);
  // Throws zeroshot::Error("<file>", "unexpected tensor NAME (not part of `what` with this
  // open_clip_config.json)") for the first float tensor not taken, unless `skip` (given the name without the
  // prefix) says so. Integer buffers are never parameters.
  void check_all_used(const std::string& what, const std::function<bool(const std::string&)>& skip = {}) const;

 private:
  const io::WeightStore& s_;
  std::vector<std::string> names_;
  std::string prefix_;
  std::set<std::string> used_;
};

// How the converters put the tensors they take from `s` into `out` under Hugging Face names: in place (a view of
// the source's bytes; `out` keeps `src` alive) wherever the layout allows. Each call takes its tensors in the order
// it lists them, so a bad checkpoint is reported on the same tensor whichever converter reads it.
struct OpenClipRenaming {
  OpenClipStateDict& s;
  std::shared_ptr<const io::WeightStore> src;
  std::shared_ptr<io::WeightStore> out;

  // `from` of `shape` as `to`, reshaped to `to_shape` when given (the same bytes, e.g. a leading 1 dropped).
  void alias(const std::string& from, const std::vector<int64_t>& shape, const std::string& to,
             const std::vector<int64_t>& to_shape = {});
  // LayerNorm: from.weight and from.bias, each [d].
  void norm(const std::string& from, int64_t d, const std::string& to);
  // Linear: from.weight [out, in] and from.bias [out].
  void linear(const std::string& from, int64_t out_dim, int64_t in_dim, const std::string& to);
  // q|k|v stacked along the rows (torch's in_proj, timm's qkv): weight [3d, d] and bias [3d] as
  // to{q,k,v}_proj.{weight,bias}, row slices in place.
  void qkv(const std::string& weight, const std::string& bias, int64_t d, const std::string& to);
  // A projection open_clip multiplies by ([in, out]: x @ proj) as the Linear weight [out, in] HF stores (a copy).
  void transposed(const std::string& from, int64_t in_dim, int64_t out_dim, const std::string& to);
  // open_clip's Transformer (from.resblocks.<i>: ln_1, attn.in_proj, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj)
  // as the HF encoder layers to.encoder.layers.<i> of a tower of t's geometry.
  void resblocks(const std::string& from, const ClipTowerConfig& t, const std::string& to);
};

}  // namespace zeroshot::models
