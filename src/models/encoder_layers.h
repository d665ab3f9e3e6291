// The weights of the pre-LN transformer encoder layers of Hugging Face's CLIPEncoder and SiglipEncoder (and the
// OpenCLIP layouts translated onto their names): layer i of a tower is
//   <prefix>.encoder.layers.<i>.{layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1, mlp.fc2}
// with hidden size d and MLP width `intermediate` from the tower's config. Loading goes through the one weight
// loader (shapes checked, names recorded for check_unused); q|k|v are stacked into one layer (one GEMM).
// Only the weights are shared: each model runs its own layer forward (CLIP's explanation path, SigLIP's probe rows).
#pragma once

#include <string>
#include <vector>

#include "models/clip.h"
#include "models/weight_loader.h"
#include "nn/linear.h"

namespace zeroshot::models {

struct EncoderLayer {
  NormWeights ln1, ln2;
  nn::PackedLinear qkv;  // q_proj | k_proj | v_proj stacked: one GEMM with 3 x hidden outputs
  nn::PackedLinear out, fc1, fc2;
};

// The t.num_layers layers under `prefix` ("vision_model", "text_model"), their linear layers at `prec`.
std::vector<EncoderLayer> load_encoder_layers(WeightLoader& w, const std::string& prefix, const ClipTowerConfig& t,
                                              nn::Precision prec);
// The shape checks of load_encoder_layers without building the layers: for a tower built later, by another loader
// over the same store, so that a bad checkpoint is still refused at load.
void check_encoder_layers(WeightLoader& w, const std::string& prefix, const ClipTowerConfig& t);

}  // namespace zeroshot::models
