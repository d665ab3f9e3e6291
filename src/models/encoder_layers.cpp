#include "models/encoder_layers.h"

#include <cstdint>

namespace zeroshot::models {

namespace {

// The tensor prefixes of layer i; load and check both read them here so that they cannot drift apart.
struct LayerNames {
  std::string ln1, ln2;
  std::vector<std::string> qkv;
  std::string out, fc1, fc2;
};

LayerNames layer_names(const std::string& prefix, int i) {
  const std::string p = prefix + ".encoder.layers." + std::to_string(i);
  const std::string a = p + ".self_attn.";
  return {p + ".layer_norm1", p + ".layer_norm2", {a + "q_proj", a + "k_proj", a + "v_proj"},
          a + "out_proj",     p + ".mlp.fc1",     p + ".mlp.fc2"};
}

}  // namespace

std::vector<EncoderLayer> load_encoder_layers(WeightLoader& w, const std::string& prefix, const ClipTowerConfig& t,
                                              nn::Precision prec) {
  std::vector<EncoderLayer> layers;
  const int64_t d = t.hidden_size, inter = t.intermediate_size;
  for (int i = 0; i < t.num_layers; ++i) {
    const LayerNames n = layer_names(prefix, i);
    EncoderLayer l;
    l.ln1 = w.norm(n.ln1, d);
    l.qkv = w.linear(n.qkv, d, d, true, prec);
    l.out = w.linear({n.out}, d, d, true, prec);
    l.ln2 = w.norm(n.ln2, d);
    l.fc1 = w.linear({n.fc1}, inter, d, true, prec);
    l.fc2 = w.linear({n.fc2}, d, inter, true, prec);
    layers.push_back(std::move(l));
  }
  return layers;
}

void check_encoder_layers(WeightLoader& w, const std::string& prefix, const ClipTowerConfig& t) {
  const int64_t d = t.hidden_size, inter = t.intermediate_size;
  for (int i = 0; i < t.num_layers; ++i) {
    const LayerNames n = layer_names(prefix, i);
    w.norm(n.ln1, d);
    w.check_linear(n.qkv, d, d, true);
    w.check_linear({n.out}, d, d, true);
    w.norm(n.ln2, d);
    w.check_linear({n.fc1}, inter, d, true);
    w.check_linear({n.fc2}, d, inter, true);
  }
}

}  // namespace zeroshot::models
