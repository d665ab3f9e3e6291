// OpenCLIP-format SigLIP checkpoints (the timm/ViT-*-SigLIP* hub repos: open_clip_config.json +
// open_clip_model.safetensors / open_clip_pytorch_model.bin) as a SiglipModel: the config mapped onto SiglipConfig,
// the tensors renamed to the transformers SiglipModel names SiglipModel reads. The computation is open_clip 2.24's
// CustomTextCLIP with timm 1.0's VisionTransformer trunk, which is SiglipModel's:
//   vision: timm vit_*_siglip_* (patch embedding with bias, no class token, learned positions, pre-LN blocks with a
//           stacked qkv, LayerNorm eps 1e-6, final norm) -> the MAP head (AttentionPoolLatent: a latent query over
//           all tokens, q and kv projections, proj, then x + mlp(norm(x))); timm_proj "none": no projection.
//           The trunk's geometry and activation are timm's definition of its name (a table here: the config
//           names the trunk only); exact GELU, or tanh GELU for the trunks timm defines with act_layer gelu_tanh.
//           An image size that is not a multiple of the patch size (vit_so400m_patch14_siglip_384) gives
//           floor(size / patch) patches a side: the convolution never reads the last pixels, nor does SiglipModel.
//   text:   open_clip's TextTransformer with no_causal_mask, pool_type "last" (after ln_final), a projection with
//           bias (text_projection Linear); GELU exact (QuickGELU with quick_gelu; tanh with act_kwargs
//           {"approximate": "tanh"}); LayerNorm eps from norm_kwargs (torch's 1e-5 without). open_clip pads every
//           text to context_length and runs it without an attention mask: every position attends to the padding.
//   scores: sigmoid(exp(logit_scale) * cos + logit_bias).
// Only that architecture is built; any other option value that changes the computation, an unknown timm trunk and
// an unknown key are refused with a one-line zeroshot::Error("<config file>: ...").
//
// Thread safety: plain functions over immutable inputs.
#pragma once

#include <memory>
#include <string>

#include "models/open_clip.h"
#include "models/siglip.h"

namespace zeroshot::models {

struct OpenClipSiglipConfig {
  SiglipConfig siglip;  // text.max_positions == context_length
  OpenClipPreprocess preprocess;
  int context_length = 64;  // every text is truncated and padded to this many ids, as open_clip's HFTokenizer
  std::string trunk;        // vision_cfg.timm_model_name
};

// Whether an open_clip_config.json describes a SigLIP model (a non-null init_logit_bias: open_clip builds the
// sigmoid head's logit_bias exactly then). Throws zeroshot::Error naming the file for invalid JSON.
bool is_open_clip_siglip(const std::string& open_clip_config_json);

// Reads the config (nested under model_cfg, or bare). Throws zeroshot::Error naming the file (see the top).
OpenClipSiglipConfig load_open_clip_siglip_config(const std::string& open_clip_config_json);

// The tensors of an OpenCLIP SigLIP state dict under SiglipModel's names: aliases of the source tensors, except
// the pooling head's in_proj_weight / in_proj_bias (q and kv concatenated into owned copies of the same dtype).
// Accepts DataParallel's "module." prefix. Checks every shape against `cfg`, that none is missing and that no float
// tensor is left over; errors cite the source's file and the open_clip tensor name. The result keeps `src` alive.
std::shared_ptr<const io::WeightStore> open_clip_siglip_to_hf(std::shared_ptr<const io::WeightStore> src,
                                                              const SiglipConfig& cfg);

}  // namespace zeroshot::models
