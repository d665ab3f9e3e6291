#include "models/open_clip_siglip.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "models/hf_config.h"
#include "models/open_clip_json.h"
#include "zeroshot/error.h"

namespace zeroshot::models {

namespace {

using io::Json;

// timm 1.0's definitions of its SigLIP trunks (models/vision_transformer.py vit_*_siglip_*: class_token False,
// global_pool "map"; mlp = int(width * mlp_ratio); image size = the pretrained config's input size, the name's
// suffix). A config names only the trunk, so its geometry can come from nowhere else.
struct Trunk {
  const char* name;
  int width, depth, heads, mlp, patch, image;
  nn::Act act;
};
constexpr nn::Act kGelu = nn::Act::Gelu, kTanh = nn::Act::GeluTanh;
constexpr Trunk kTrunks[] = {
    {"vit_base_patch16_siglip_224", 768, 12, 12, 3072, 16, 224, kGelu},
    {"vit_base_patch16_siglip_256", 768, 12, 12, 3072, 16, 256, kGelu},
    {"vit_base_patch16_siglip_384", 768, 12, 12, 3072, 16, 384, kGelu},
    {"vit_base_patch16_siglip_512", 768, 12, 12, 3072, 16, 512, kGelu},
    {"vit_base_patch32_siglip_256", 768, 12, 12, 3072, 32, 256, kTanh},
    {"vit_large_patch16_siglip_256", 1024, 24, 16, 4096, 16, 256, kGelu},
    {"vit_large_patch16_siglip_384", 1024, 24, 16, 4096, 16, 384, kGelu},
    {"vit_large_patch16_siglip_512", 1024, 24, 16, 4096, 16, 512, kTanh},
    {"vit_so400m_patch14_siglip_224", 1152, 27, 16, 4304, 14, 224, kGelu},  // mlp_ratio 3.7362
    {"vit_so400m_patch14_siglip_378", 1152, 27, 16, 4304, 14, 378, kGelu},
    {"vit_so400m_patch14_siglip_384", 1152, 27, 16, 4304, 14, 384, kGelu},  // 27 x 27 patches: 6 px dropped
    {"vit_so400m_patch16_siglip_256", 1152, 27, 16, 4304, 16, 256, kTanh},
    {"vit_so400m_patch16_siglip_384", 1152, 27, 16, 4304, 16, 384, kTanh},
    {"vit_so400m_patch16_siglip_512", 1152, 27, 16, 4304, 16, 512, kTanh},
    {"vit_giantopt_patch16_siglip_256", 1536, 40, 16, 6144, 16, 256, kTanh},
    {"vit_giantopt_patch16_siglip_384", 1536, 40, 16, 6144, 16, 384, kTanh},
    // The tiny trunks tests/reference/make_open_clip_siglip.py registers with timm (timm has none this small).
    {"vit_test_patch16_siglip_64", 48, 2, 3, 96, 16, 64, kGelu},
    {"vit_testtanh_patch8_siglip_40", 48, 1, 4, 120, 8, 40, kTanh},
    {"vit_testrem_patch16_siglip_72", 48, 1, 2, 179, 16, 72, kGelu},
};

// What the reader does with a key: read, ignored (no effect on inference), or allowed only at the listed values.
struct Rule {
  bool read = false;
  std::vector<Json> allowed = {};  // empty and !read: ignored
};
using Rules = std::vector<std::pair<const char*, Rule>>;
const Rule kRead{true};
const Rule kIgnored{};
Rule only(std::initializer_list<Json> values) { return {false, values}; }

const Rules& model_rules() {
  static const Rules r = {
      {"embed_dim", kRead},
      {"vision_cfg", kRead},
      {"text_cfg", kRead},
      {"quick_gelu", kRead},
      {"custom_text", kIgnored},      // the text tower's names are detected from the weights
      {"init_logit_bias", kIgnored},  // present (not null) is what makes this a SigLIP model; the value is trained
      {"init_logit_scale", kIgnored},
      {"nonscalar_logit_scale", kIgnored},
      {"cast_dtype", kIgnored},
      {"output_dict", kIgnored},
  };
  return r;
}

const Rules& vision_rules() {
  // With timm_model_name, open_clip builds the trunk from the name alone: layers, width, patch_size, ... are unused.
  static const Rules r = {
      {"timm_model_name", kRead},
      {"image_size", kRead},
      {"timm_pool", only({"map"})},
      {"timm_proj", only({"none"})},
      {"timm_model_pretrained", kIgnored},
      {"timm_proj_bias", kIgnored},  // no projection: no bias
      {"timm_drop", kIgnored},
      {"timm_drop_path", kIgnored},
      {"patch_dropout", kIgnored},
      {"output_tokens", kIgnored},
      {"layers", kIgnored},
      {"width", kIgnored},
      {"head_width", kIgnored},
      {"mlp_ratio", kIgnored},
      {"patch_size", kIgnored},
      {"ls_init_value", kIgnored},
  };
  return r;
}

const Rules& text_rules() {
  static const Rules r = {
      {"context_length", kRead},
      {"vocab_size", kRead},
      {"width", kRead},
      {"heads", kRead},
      {"layers", kRead},
      {"mlp_ratio", kRead},
      {"act_kwargs", kRead},
      {"norm_kwargs", kRead},
      {"hf_tokenizer_name", kIgnored},  // the folder's own tokenizer files are read (the hub repos carry them)
      {"tokenizer_kwargs", only({Json{{"clean", "canonicalize"}}})},
      {"no_causal_mask", only({true})},
      {"pool_type", only({"last"})},
      {"proj_bias", only({true})},
      {"proj_type", only({nullptr, "linear"})},
      {"embed_cls", only({nullptr, false})},
      {"final_ln_after_pool", only({nullptr, false})},
      {"ls_init_value", only({nullptr})},
      {"text_arch", only({nullptr, "clip"})},
      {"pad_id", kIgnored},  // only used with embed_cls
      {"output_tokens", kIgnored},
      {"zero_init_residual", kIgnored},
      {"hf_model_pretrained", kIgnored},
  };
  return r;
}

void check_rules(const Json& obj, const Rules& rules, const std::string& prefix, const std::string& file) {
  for (const auto& item : obj.items()) {
    const std::string& key = item.key();  // not a structured binding: the lambda below captures it
    const Json& value = item.value();
    const auto it = std::find_if(rules.begin(), rules.end(), [&](const auto& r) { return key == r.first; });
    if (it == rules.end())
      throw Error(file, prefix + key + ": unknown option (not part of the OpenCLIP SigLIP models this engine builds)");
    const auto& ok = it->second.allowed;
    if (!ok.empty() && std::find(ok.begin(), ok.end(), value) == ok.end())
      throw Error(file,
                  prefix + key + " " + value.dump() + " is not supported (only " + ok.back().dump() + " is built)");
  }
}

// Python's int(width * mlp_ratio).
int mlp_width(const hf::Fields& f, int width) {
  double ratio = 4.0;
  if (f.has("mlp_ratio") && !f.obj["mlp_ratio"].is_null()) {
    const Json& v = f.obj["mlp_ratio"];
    if (!v.is_number() || !(v.get<double>() > 0.0) || !std::isfinite(v.get<double>()))
      f.fail("mlp_ratio must be a positive number, got " + v.dump());
    ratio = v.get<double>();
  }
  const double w = static_cast<double>(width) * ratio;
  if (!(w >= 1.0) || w > static_cast<double>(hf::kMaxSize))
    f.fail("mlp_ratio gives an MLP width of " + std::to_string(w));
  return static_cast<int>(w);
}

}  // namespace

bool is_open_clip_siglip(const std::string& path) {
  const Json j = io::load_json(path);
  if (!j.is_object()) throw Error(path, "not a JSON object");
  const Json& m = j.contains("model_cfg") && j["model_cfg"].is_object() ? j["model_cfg"] : j;
  return m.contains("init_logit_bias") && !m["init_logit_bias"].is_null();
}

OpenClipSiglipConfig load_open_clip_siglip_config(const std::string& path) {
  const OpenClipJson o = read_open_clip_json(path);
  const Json &m = o.model(), &v = o.vision(), &t = o.text();
  const std::string &mp = o.model_prefix, &vp = o.vision_prefix, &tp = o.text_prefix;
  if (!v.contains("timm_model_name") || !v["timm_model_name"].is_string())
    throw Error(path, vp + "timm_model_name is missing: only OpenCLIP SigLIP models with a timm trunk are supported");
  if (t.contains("hf_model_name") && !t["hf_model_name"].is_null())
    throw Error(path, tp + "hf_model_name " + t["hf_model_name"].dump() +
                          ": Hugging Face text towers are not supported (only the open_clip text transformer)");
  check_rules(m, model_rules(), mp, path);
  check_rules(v, vision_rules(), vp, path);
  check_rules(t, text_rules(), tp, path);
  // Absent keys that must be present to mean what SigLIP means (open_clip's defaults are CLIP's).
  for (const char* key : {"no_causal_mask", "pool_type", "proj_bias"})
    if (!t.contains(key)) throw Error(path, tp + key + " is missing (open_clip's default is CLIP's, not SigLIP's)");
  for (const char* key : {"timm_pool", "timm_proj"})
    if (!v.contains(key)) throw Error(path, vp + key + " is missing (open_clip's default is not SigLIP's)");

  OpenClipSiglipConfig c;
  c.trunk = v["timm_model_name"].get<std::string>();
  const Trunk* tr = nullptr;
  for (const Trunk& k : kTrunks)
    if (c.trunk == k.name) tr = &k;
  if (!tr) {
    std::string known;
    for (const Trunk& k : kTrunks) known += (known.empty() ? "" : ", ") + std::string(k.name);
    throw Error(
        path, vp + "timm_model_name \"" + c.trunk + "\" is not a timm SigLIP trunk this engine knows (" + known + ")");
  }
  const hf::Fields mf{m, path, mp}, vf{v, path, vp}, tf{t, path, tp};
  const int embed_dim = mf.size("embed_dim", 0);
  const int image_size = vf.square("image_size", 224);
  if (image_size != tr->image)
    vf.fail("image_size " + std::to_string(image_size) + " differs from " + c.trunk + "'s " +
            std::to_string(tr->image));
  if (embed_dim != tr->width)
    mf.fail("embed_dim " + std::to_string(embed_dim) + " differs from the width " + std::to_string(tr->width) + " of " +
            c.trunk + " (timm_proj \"none\": the trunk's pooled output is the image embedding)");

  ClipTowerConfig& vt = c.siglip.vision;
  vt.hidden_size = tr->width;
  vt.num_layers = tr->depth;
  vt.num_heads = tr->heads;
  vt.intermediate_size = tr->mlp;
  vt.patch_size = tr->patch;
  vt.image_size = tr->image;
  vt.num_channels = 3;
  vt.act = tr->act;
  vt.layer_norm_eps = 1e-6f;  // timm's ViT: partial(nn.LayerNorm, eps=1e-6)

  ClipTowerConfig& tt = c.siglip.text;
  tt.hidden_size = tf.size("width", 512);
  tt.num_heads = tf.size("heads", 8);
  tt.num_layers = tf.size("layers", 12);
  if (tt.hidden_size % tt.num_heads != 0)
    tf.fail("width " + std::to_string(tt.hidden_size) + " is not divisible by heads " + std::to_string(tt.num_heads));
  if (tt.hidden_size != embed_dim)
    tf.fail("width " + std::to_string(tt.hidden_size) + " differs from embed_dim " + std::to_string(embed_dim) +
            " (not built: SigLIP's text head is square)");
  tt.intermediate_size = mlp_width(tf, tt.hidden_size);
  tt.vocab_size = tf.size("vocab_size", 49408);
  c.context_length = tf.size("context_length", 77);
  tt.max_positions = c.context_length;
  const bool quick = mf.flag("quick_gelu", false);
  tt.act = quick ? nn::Act::QuickGelu : nn::Act::Gelu;
  if (t.contains("act_kwargs") && !t["act_kwargs"].is_null() && t["act_kwargs"] != Json::object()) {
    if (quick || t["act_kwargs"] != Json{{"approximate", "tanh"}})
      tf.fail("act_kwargs " + t["act_kwargs"].dump() + " is not supported (only {\"approximate\": \"tanh\"} on GELU)");
    tt.act = nn::Act::GeluTanh;
  }
  tt.layer_norm_eps = 1e-5f;  // torch's LayerNorm default
  if (t.contains("norm_kwargs") && !t["norm_kwargs"].is_null()) {
    const Json& n = t["norm_kwargs"];
    for (const auto& [key, value] : n.items())
      if (key != "eps") tf.fail("norm_kwargs." + key + " is not supported (only eps)");
    if (n.contains("eps")) {
      const hf::Fields nf{n, path, tp + "norm_kwargs."};
      tt.layer_norm_eps = nf.non_negative("eps", 1e-5f);
    }
  }
  c.preprocess = load_open_clip_preprocess(path, vt.image_size);
  return c;
}

std::shared_ptr<const io::WeightStore> open_clip_siglip_to_hf(std::shared_ptr<const io::WeightStore> src,
                                                              const SiglipConfig& cfg) {
  OpenClipStateDict s(*src);  // open_clip.h: the "module." prefix, checked tensors, the names taken
  auto out = std::make_shared<io::WeightStore>();
  out->set_origin(src->origin());
  OpenClipRenaming r{s, src, out};

  const ClipTowerConfig& v = cfg.vision;
  const ClipTowerConfig& t = cfg.text;
  const int64_t vd = v.hidden_size, grid = v.image_size / v.patch_size, vi = v.intermediate_size;
  const std::string tr = "visual.trunk.";
  r.alias(tr + "patch_embed.proj.weight", {vd, v.num_channels, v.patch_size, v.patch_size},
          "vision_model.embeddings.patch_embedding.weight");
  r.alias(tr + "patch_embed.proj.bias", {vd}, "vision_model.embeddings.patch_embedding.bias");
  r.alias(tr + "pos_embed", {1, grid * grid, vd}, "vision_model.embeddings.position_embedding.weight",
          {grid * grid, vd});
  for (int i = 0; i < v.num_layers; ++i) {
    const std::string f = tr + "blocks." + std::to_string(i) + ".",
                      h = "vision_model.encoder.layers." + std::to_string(i) + ".";
    r.norm(f + "norm1", vd, h + "layer_norm1");
    r.qkv(f + "attn.qkv.weight", f + "attn.qkv.bias", vd, h + "self_attn.");
    r.linear(f + "attn.proj", vd, vd, h + "self_attn.out_proj");
    r.norm(f + "norm2", vd, h + "layer_norm2");
    r.linear(f + "mlp.fc1", vi, vd, h + "mlp.fc1");
    r.linear(f + "mlp.fc2", vd, vi, h + "mlp.fc2");
  }
  r.norm(tr + "norm", vd, "vision_model.post_layernorm");
  const std::string ap = tr + "attn_pool.", hd = "vision_model.head.";
  r.alias(ap + "latent", {1, 1, vd}, hd + "probe");
  {  // nn.MultiheadAttention's in_proj (what SiglipModel reads) = timm's q stacked over kv: owned copies
    for (const char* kind : {"weight", "bias"}) {
      const bool w = std::strcmp(kind, "weight") == 0;
      const io::TensorView& q = s.get(ap + "q." + kind, w ? std::vector<int64_t>{vd, vd} : std::vector<int64_t>{vd});
      const io::TensorView& kv =
          s.get(ap + "kv." + kind, w ? std::vector<int64_t>{2 * vd, vd} : std::vector<int64_t>{2 * vd});
      if (q.dtype != kv.dtype)
        throw Error(kv.file, "tensor " + kv.name + " has dtype " + io::dtype_name(kv.dtype) + ", " + q.name + " has " +
                                 io::dtype_name(q.dtype) + " (expected one dtype)");
      std::vector<uint8_t> bytes(q.nbytes + kv.nbytes);
      std::memcpy(bytes.data(), q.data, q.nbytes);
      std::memcpy(bytes.data() + q.nbytes, kv.data, kv.nbytes);
      out->add_owned(hd + "attention.in_proj_" + kind, q.dtype,
                     w ? std::vector<int64_t>{3 * vd, vd} : std::vector<int64_t>{3 * vd}, std::move(bytes), q.file);
    }
  }
  r.linear(ap + "proj", vd, vd, hd + "attention.out_proj");
  r.norm(ap + "norm", vd, hd + "layernorm");
  r.linear(ap + "mlp.fc1", vi, vd, hd + "mlp.fc1");
  r.linear(ap + "mlp.fc2", vd, vi, hd + "mlp.fc2");

  // CustomTextCLIP keeps the text tower under "text." (every SigLIP config sets custom_text); CLIP at the top.
  const std::string tp = s.has("text.token_embedding.weight") ? "text." : "";
  const int64_t td = t.hidden_size;
  r.alias(tp + "token_embedding.weight", {t.vocab_size, td}, "text_model.embeddings.token_embedding.weight");
  r.alias(tp + "positional_embedding", {t.max_positions, td}, "text_model.embeddings.position_embedding.weight");
  r.resblocks(tp + "transformer", t, "text_model");
  r.norm(tp + "ln_final", td, "text_model.final_layer_norm");
  r.linear(tp + "text_projection", td, td, "text_model.head");  // nn.Linear (proj_bias): [out, in] as transformers'

  for (const char* scalar : {"logit_scale", "logit_bias"}) {  // [] or [1]; SiglipModel checks which
    io::TensorView view = s.take(scalar);
    view.name = scalar;
    out->add(std::move(view), src);
  }

  s.check_all_used("an OpenCLIP SigLIP model");
  return out;
}

}  // namespace zeroshot::models
