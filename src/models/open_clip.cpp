#include "models/open_clip.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "models/open_clip_json.h"
#include "zeroshot/error.h"

namespace zeroshot::models {

namespace {

using io::Json;

// Sizes above this are not a CLIP model (and would overflow the shape arithmetic); as ClipConfig::load.
constexpr int64_t kMaxSize = 1 << 20;

// What this reader does with a config key. The table of every key open_clip knows (2.24 and the newest) is the
// point: an option we do not build must never be dropped silently, because the model would load and compute
// something else.
enum class Rule {
  Read,     // read by the code below
  Ignored,  // no effect on inference (training-only, or a setting of a tower that is not there)
  Default,  // accepted only at open_clip's default value (or null), refused otherwise
  Refused,  // a different architecture: refused with its own message (checked before anything else)
};
struct Option {
  Rule rule;
  std::vector<Json> defaults = {};  // Default: the values that mean "off"
};
using Options = std::map<std::string, Option>;

const Json kNull = Json();

Option dflt(std::initializer_list<Json> values) { return {Rule::Default, values}; }

const Options& model_options() {
  static const Options o = {
      {"embed_dim", {Rule::Read}},
      {"quick_gelu", {Rule::Read}},
      {"vision_cfg", {Rule::Read}},
      {"text_cfg", {Rule::Read}},
      {"custom_text", {Rule::Read}},
      {"init_logit_scale", {Rule::Ignored}},       // the trained value is in the weights
      {"nonscalar_logit_scale", {Rule::Ignored}},  // logit_scale stored as [1]: read either way
      {"cast_dtype", {Rule::Ignored}},
      {"output_dict", {Rule::Ignored}},
      {"init_logit_bias", dflt({kNull})},  // a sigmoid (SigLIP) head
      {"multimodal_cfg", {Rule::Refused}},
  };
  return o;
}

const Options& vision_options() {
  static const Options o = {
      {"layers", {Rule::Read}},
      {"width", {Rule::Read}},
      {"head_width", {Rule::Read}},
      {"mlp_ratio", {Rule::Read}},
      {"patch_size", {Rule::Read}},
      {"image_size", {Rule::Read}},
      {"patch_dropout", {Rule::Ignored}},  // training only (PatchDropout is the identity in eval)
      {"output_tokens", {Rule::Ignored}},
      {"attn_pooler_queries", {Rule::Ignored}},  // only with attentional_pool
      {"attn_pooler_heads", {Rule::Ignored}},
      {"timm_model_name", {Rule::Refused}},
      {"timm_model_pretrained", {Rule::Ignored}},  // timm_* only matter with timm_model_name
      {"timm_pool", {Rule::Ignored}},
      {"timm_proj", {Rule::Ignored}},
      {"timm_proj_bias", {Rule::Ignored}},
      {"timm_drop", {Rule::Ignored}},
      {"timm_drop_path", {Rule::Ignored}},
      {"timm_model_kwargs", {Rule::Ignored}},
      {"ls_init_value", dflt({kNull})},
      {"attentional_pool", dflt({kNull, false})},
      {"no_ln_pre", dflt({kNull, false})},
      {"pos_embed_type", dflt({kNull, "learnable"})},
      {"final_ln_after_pool", dflt({kNull, false})},
      {"pool_type", dflt({kNull, "tok"})},
      {"act_kwargs", dflt({kNull, Json::object()})},
      {"norm_kwargs", dflt({kNull, Json::object()})},
      {"image_seq_len", dflt({kNull})},
      {"block_type", dflt({kNull, "default"})},
      {"qk_norm", dflt({kNull, false})},
      {"scaled_cosine_attn", dflt({kNull, false})},
      {"scale_heads", dflt({kNull, false})},
      {"scale_attn_inner", dflt({kNull, false})},
      {"scale_attn", dflt({kNull, false})},
      {"scale_fc", dflt({kNull, false})},
  };
  return o;
}

const Options& text_options() {
  static const Options o = {
      {"context_length", {Rule::Read}},
      {"vocab_size", {Rule::Read}},
      {"width", {Rule::Read}},
      {"heads", {Rule::Read}},
      {"layers", {Rule::Read}},
      {"mlp_ratio", {Rule::Read}},
      {"pad_id", {Rule::Ignored}},  // only used with embed_cls
      {"bos_id", {Rule::Ignored}},  // only used by pool_type "eos" and the "modern" text tower
      {"eos_id", {Rule::Ignored}},
      {"output_tokens", {Rule::Ignored}},
      {"tiktoken_name", {Rule::Ignored}},  // only with tokenizer_type "tiktoken"
      {"hf_model_name", {Rule::Refused}},
      {"hf_model_pretrained", {Rule::Ignored}},  // hf_* only matter with hf_model_name
      {"hf_proj_type", {Rule::Ignored}},
      {"hf_pooler_type", {Rule::Ignored}},
      {"hf_model_config", {Rule::Ignored}},
      {"zero_init_residual", {Rule::Ignored}},  // initialization only
      {"text_arch", dflt({kNull, "clip"})},
      {"variable_text", dflt({kNull, false})},
      {"hf_tokenizer_name", dflt({kNull, ""})},
      {"tokenizer_mode", dflt({kNull})},
      {"tokenizer_kwargs", dflt({kNull, Json::object()})},
      {"tokenizer_type", dflt({kNull, ""})},
      {"ls_init_value", dflt({kNull})},
      {"embed_cls", dflt({kNull, false})},
      {"no_causal_mask", dflt({kNull, false})},
      {"final_ln_after_pool", dflt({kNull, false})},
      {"pool_type", dflt({kNull, "argmax"})},
      {"proj_bias", dflt({kNull, false})},
      {"proj_type", dflt({kNull, "linear"})},
      {"act_kwargs", dflt({kNull, Json::object()})},
      {"norm_kwargs", dflt({kNull, Json::object()})},
      {"block_type", dflt({kNull, "default"})},
      {"qk_norm", dflt({kNull, false})},
      {"scaled_cosine_attn", dflt({kNull, false})},
      {"scale_heads", dflt({kNull, false})},
      {"scale_attn_inner", dflt({kNull, false})},
      {"scale_attn", dflt({kNull, false})},
      {"scale_fc", dflt({kNull, false})},
      // The newest open_clip's "modern" text tower options (a few also apply to the classic tower).
      {"attention_mode", dflt({kNull, "causal"})},
      {"pos_embed", dflt({kNull, "rope"})},
      {"rope_temperature", dflt({kNull, 10000.0})},
      {"mlp_type", dflt({kNull, "swiglu"})},
      {"norm_type", dflt({kNull})},
      {"norm_eps", dflt({kNull, 1e-6})},
      {"attn_gated", dflt({kNull, false})},
      {"pre_norm", dflt({kNull, false})},
      {"norm_placement", dflt({kNull, "pre"})},
      {"reg_tokens", dflt({kNull, 0})},
      {"value_residual", dflt({kNull, false})},
      {"attention_bias", dflt({kNull})},
      {"mlp_bias", dflt({kNull})},
      {"gate_bias", dflt({kNull})},
  };
  return o;
}

// Every key of `obj` must be in `options`; Default keys must hold a default value.
void check_options(const Json& obj, const Options& options, const std::string& prefix, const std::string& file) {
  for (const auto& [key, value] : obj.items()) {
    const auto it = options.find(key);
    if (it == options.end())
      throw Error(file,
                  prefix + key + ": unknown option (not part of the OpenCLIP ViT CLIP models this engine builds)");
    if (it->second.rule != Rule::Default) continue;
    const auto& ok = it->second.defaults;
    if (std::find(ok.begin(), ok.end(), value) == ok.end())
      throw Error(file, prefix + key + " " + value.dump() + " is not supported (only the default " +
                            (ok.size() > 1 ? ok[1].dump() : std::string("null")) + " is built)");
  }
}

void check_object(const Json& j, const char* key, const std::string& prefix, const std::string& file) {
  if (!j.contains(key)) throw Error(file, prefix + key + " is missing");
  if (!j[key].is_object()) throw Error(file, prefix + key + " is not an object");
}

int get_int(const Json& obj, const char* key, int def, const std::string& prefix, const std::string& file) {
  if (!obj.contains(key) || obj[key].is_null()) {
    if (def > 0) return def;
    throw Error(file, prefix + key + " is missing");
  }
  const Json& v = obj[key];
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > kMaxSize)
    throw Error(file, prefix + key + " must be a positive integer, got " + v.dump());
  return static_cast<int>(v.get<int64_t>());
}

// image_size / patch_size: an int or a [h, w] pair; only square ones are built.
int get_square(const Json& obj, const char* key, int def, const std::string& prefix, const std::string& file) {
  if (obj.contains(key) && obj[key].is_array()) {
    const Json& a = obj[key];
    if (a.size() != 2 || !a[0].is_number_integer() || a[0] != a[1])
      throw Error(file, prefix + key + " " + a.dump() + " is not supported (only square sizes are built)");
    const Json single = {{key, a[0]}};
    return get_int(single, key, def, prefix, file);
  }
  return get_int(obj, key, def, prefix, file);
}

bool get_bool(const Json& obj, const char* key, const std::string& prefix, const std::string& file) {
  if (!obj.contains(key) || obj[key].is_null()) return false;
  if (!obj[key].is_boolean()) throw Error(file, prefix + key + " must be true or false, got " + obj[key].dump());
  return obj[key].get<bool>();
}

// Python's int(width * mlp_ratio): the product in double precision, truncated.
int mlp_width(const Json& obj, int width, const std::string& prefix, const std::string& file) {
  double ratio = 4.0;
  if (obj.contains("mlp_ratio") && !obj["mlp_ratio"].is_null()) {
    const Json& v = obj["mlp_ratio"];
    if (!v.is_number() || !(v.get<double>() > 0.0) || !std::isfinite(v.get<double>()))
      throw Error(file, prefix + "mlp_ratio must be a positive number, got " + v.dump());
    ratio = v.get<double>();
  }
  const double w = static_cast<double>(width) * ratio;
  if (!(w >= 1.0) || w > static_cast<double>(kMaxSize))
    throw Error(file, prefix + "mlp_ratio " + obj["mlp_ratio"].dump() + " gives an MLP width of " + std::to_string(w));
  return static_cast<int>(w);
}

std::array<float, 3> get_triple(const Json& pp, const char* key, std::array<float, 3> def, bool positive,
                                const std::string& file) {
  if (!pp.contains(key) || pp[key].is_null()) return def;
  const Json& v = pp[key];
  const std::string where = std::string("preprocess_cfg.") + key;
  std::vector<Json> items;
  if (v.is_number()) {
    items = {v, v, v};  // open_clip's image_transform repeats a single value for the 3 channels
  } else if (v.is_array() && v.size() == 3) {
    items = {v[0], v[1], v[2]};
  } else {
    throw Error(file, where + " must be 3 numbers, got " + v.dump());
  }
  std::array<float, 3> out{};
  for (size_t i = 0; i < 3; ++i) {
    if (!items[i].is_number() || !std::isfinite(items[i].get<double>()) ||
        (positive && !(items[i].get<double>() > 0.0)))
      throw Error(file, where + " must be 3 " + (positive ? "positive " : "") + "numbers, got " + v.dump());
    out[i] = static_cast<float>(items[i].get<double>());  // torchvision's Normalize: float32 tensors
  }
  return out;
}

OpenClipPreprocess read_preprocess(const Json& j, int image_size, const std::string& file) {
  OpenClipPreprocess p;
  p.size = image_size;
  if (!j.contains("preprocess_cfg") || j["preprocess_cfg"].is_null()) return p;
  const Json& pp = j["preprocess_cfg"];
  if (!pp.is_object()) throw Error(file, "preprocess_cfg is not an object");
  // Other keys are dropped by open_clip too (merge_preprocess_dict keeps PreprocessCfg's fields only).
  if (pp.contains("mode") && !pp["mode"].is_null() && pp["mode"] != "RGB")
    throw Error(file, "preprocess_cfg.mode " + pp["mode"].dump() + " is not supported (open_clip allows only \"RGB\")");
  p.mean = get_triple(pp, "mean", p.mean, false, file);
  p.std = get_triple(pp, "std", p.std, true, file);
  if (pp.contains("interpolation") && !pp["interpolation"].is_null()) {
    const Json& v = pp["interpolation"];
    if (v == "bicubic" || v == "random")  // "random" is a training option: bicubic at inference, as open_clip
      p.interpolation = OpenClipInterpolation::Bicubic;
    else if (v == "bilinear") p.interpolation = OpenClipInterpolation::Bilinear;
    else
      throw Error(file, "preprocess_cfg.interpolation " + v.dump() + " is not supported (bicubic, bilinear or random)");
  }
  if (pp.contains("resize_mode") && !pp["resize_mode"].is_null()) {
    const Json& v = pp["resize_mode"];
    if (v == "shortest") p.resize_mode = OpenClipResizeMode::Shortest;
    else if (v == "longest") p.resize_mode = OpenClipResizeMode::Longest;
    else if (v == "squash") p.resize_mode = OpenClipResizeMode::Squash;
    else
      throw Error(file, "preprocess_cfg.resize_mode " + v.dump() + " is not supported (shortest, longest or squash)");
  }
  if (pp.contains("fill_color") && !pp["fill_color"].is_null()) {
    const Json& v = pp["fill_color"];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 255)
      throw Error(file, "preprocess_cfg.fill_color must be an integer 0..255, got " + v.dump());
    p.fill_color = static_cast<int>(v.get<int64_t>());
  }
  return p;
}

// The architectures open_clip builds that this engine does not, each refused by name before any other option
// (CoCa already by read_open_clip_json).
void refuse_architectures(const Json& v, const Json& t, const std::string& file) {
  if (v.contains("timm_model_name") && !v["timm_model_name"].is_null())
    throw Error(file, "model_cfg.vision_cfg.timm_model_name " + v["timm_model_name"].dump() +
                          ": timm vision towers are not supported (only ViT CLIP towers)");
  if (v.contains("layers") && v["layers"].is_array())
    throw Error(file, "model_cfg.vision_cfg.layers " + v["layers"].dump() +
                          ": ResNet (ModifiedResNet) vision towers are not supported (only ViT CLIP towers)");
  if (t.contains("hf_model_name") && !t["hf_model_name"].is_null())
    throw Error(file, "model_cfg.text_cfg.hf_model_name " + t["hf_model_name"].dump() +
                          ": Hugging Face text towers are not supported (only CLIP text transformers)");
  if (v.contains("attentional_pool") && !v["attentional_pool"].is_null() && v["attentional_pool"] != false)
    throw Error(file, "model_cfg.vision_cfg.attentional_pool " + v["attentional_pool"].dump() +
                          ": attentional pooling (CoCa-style) is not supported");
  if (t.contains("text_arch") && !t["text_arch"].is_null() && t["text_arch"] != "clip")
    throw Error(file, "model_cfg.text_cfg.text_arch " + t["text_arch"].dump() +
                          ": only the CLIP text transformer is supported");
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

OpenClipJson read_open_clip_json(const std::string& path) {
  OpenClipJson o;
  o.root = io::load_json(path);
  if (!o.root.is_object()) throw Error(path, "not a JSON object");
  const bool nested = o.root.contains("model_cfg");
  if (nested && !o.root["model_cfg"].is_object()) throw Error(path, "model_cfg is not an object");
  o.model_prefix = nested ? "model_cfg." : "";
  o.vision_prefix = o.model_prefix + "vision_cfg.";
  o.text_prefix = o.model_prefix + "text_cfg.";
  const Json& m = o.model();
  if (m.contains("multimodal_cfg") && !m["multimodal_cfg"].is_null())
    throw Error(path, o.model_prefix + "multimodal_cfg: CoCa models (captioning decoder) are not supported");
  check_object(m, "vision_cfg", o.model_prefix, path);
  check_object(m, "text_cfg", o.model_prefix, path);
  return o;
}

OpenClipConfig load_open_clip_config(const std::string& path) {
  const OpenClipJson o = read_open_clip_json(path);
  const Json &j = o.root, &m = o.model(), &v = o.vision(), &t = o.text();
  const std::string &mp = o.model_prefix, &vp = o.vision_prefix, &tp = o.text_prefix;
  refuse_architectures(v, t, path);
  check_options(m, model_options(), mp, path);
  check_options(v, vision_options(), vp, path);
  check_options(t, text_options(), tp, path);

  OpenClipConfig c;
  const bool quick = get_bool(m, "quick_gelu", mp, path);
  (void)get_bool(m, "custom_text", mp, path);                      // validated; the names are detected from the weights
  const nn::Act act = quick ? nn::Act::QuickGelu : nn::Act::Gelu;  // nn.GELU: exact erf
  c.clip.projection_dim = get_int(m, "embed_dim", 0, mp, path);

  // Defaults are CLIPVisionCfg's / CLIPTextCfg's.
  ClipTowerConfig& vt = c.clip.vision;
  vt.hidden_size = get_int(v, "width", 768, vp, path);
  vt.num_layers = get_int(v, "layers", 12, vp, path);
  const int head_width = get_int(v, "head_width", 64, vp, path);
  vt.num_heads = vt.hidden_size / head_width;  // open_clip: width // head_width
  if (vt.num_heads < 1 || vt.hidden_size % vt.num_heads != 0)
    throw Error(path, vp + "width " + std::to_string(vt.hidden_size) + " and head_width " + std::to_string(head_width) +
                          " give no whole number of heads");
  vt.intermediate_size = mlp_width(v, vt.hidden_size, vp, path);
  vt.image_size = get_square(v, "image_size", 224, vp, path);
  vt.patch_size = get_square(v, "patch_size", 16, vp, path);
  if (vt.image_size % vt.patch_size != 0)
    throw Error(path, vp + "image_size " + std::to_string(vt.image_size) + " is not divisible by patch_size " +
                          std::to_string(vt.patch_size));
  const int64_t grid = vt.image_size / vt.patch_size;
  if (grid * grid + 1 > kMaxSize) throw Error(path, vp + "image_size / patch_size gives an absurd number of patches");
  vt.num_channels = 3;
  vt.layer_norm_eps = 1e-5f;
  vt.act = act;

  ClipTowerConfig& tt = c.clip.text;
  tt.hidden_size = get_int(t, "width", 512, tp, path);
  tt.num_heads = get_int(t, "heads", 8, tp, path);
  tt.num_layers = get_int(t, "layers", 12, tp, path);
  if (tt.hidden_size % tt.num_heads != 0)
    throw Error(path, tp + "width " + std::to_string(tt.hidden_size) + " is not divisible by heads " +
                          std::to_string(tt.num_heads));
  tt.intermediate_size = mlp_width(t, tt.hidden_size, tp, path);
  tt.vocab_size = get_int(t, "vocab_size", 49408, tp, path);
  c.context_length = get_int(t, "context_length", 77, tp, path);
  tt.max_positions = c.context_length;
  tt.eos_token_id = 2;  // ClipModel's argmax-of-ids rule = open_clip's "argmax" pooling
  tt.layer_norm_eps = 1e-5f;
  tt.act = act;

  c.preprocess = read_preprocess(j, vt.image_size, path);
  return c;
}

OpenClipPreprocess load_open_clip_preprocess(const std::string& path, int image_size) {
  const Json j = io::load_json(path);
  if (!j.is_object()) throw Error(path, "not a JSON object");
  return read_preprocess(j, image_size, path);
}

// ---------------------------------------------------------------------------------------------- weights

OpenClipStateDict::OpenClipStateDict(const io::WeightStore& s) : s_(s), names_(s.names()) {
  if (!names_.empty() &&
      std::all_of(names_.begin(), names_.end(), [](const std::string& n) { return n.rfind("module.", 0) == 0; }))
    prefix_ = "module.";
}

bool OpenClipStateDict::has(const std::string& name) const { return s_.has(prefix_ + name); }

const io::TensorView& OpenClipStateDict::take(const std::string& name) {
  used_.insert(prefix_ + name);
  return s_.get(prefix_ + name);
}

// Shapes are checked here, so that an error names the open_clip tensor and the config it disagrees with.
const io::TensorView& OpenClipStateDict::get(const std::string& name, const std::vector<int64_t>& shape) {
  const io::TensorView& t = take(name);
  if (!t.is_float())
    throw Error(t.file, "tensor " + t.name + " has dtype " + io::dtype_name(t.dtype) + ", expected F32, F16 or BF16");
  if (t.shape != shape)
    throw Error(t.file, "tensor " + t.name + " has shape " + shape_str(t.shape) + ", expected " + shape_str(shape) +
                            " from open_clip_config.json");
  return t;
}

void OpenClipStateDict::check_all_used(const std::string& what,
                                       const std::function<bool(const std::string&)>& skip) const {
  for (const std::string& name : names_) {
    if (used_.count(name)) continue;
    const io::TensorView& tv = s_.get(name);
    if (!tv.is_float() || (skip && skip(name.substr(prefix_.size())))) continue;
    throw Error(tv.file, "unexpected tensor " + name + " (not part of " + what + " with this open_clip_config.json)");
  }
}

void OpenClipRenaming::alias(const std::string& from, const std::vector<int64_t>& shape, const std::string& to,
                             const std::vector<int64_t>& to_shape) {
  io::TensorView v = s.get(from, shape);
  v.name = to;
  if (!to_shape.empty()) v.shape = to_shape;
  out->add(std::move(v), src);
}

void OpenClipRenaming::norm(const std::string& from, int64_t d, const std::string& to) {
  alias(from + ".weight", {d}, to + ".weight");
  alias(from + ".bias", {d}, to + ".bias");
}

void OpenClipRenaming::linear(const std::string& from, int64_t out_dim, int64_t in_dim, const std::string& to) {
  alias(from + ".weight", {out_dim, in_dim}, to + ".weight");
  alias(from + ".bias", {out_dim}, to + ".bias");
}

void OpenClipRenaming::qkv(const std::string& weight, const std::string& bias, int64_t d, const std::string& to) {
  const io::TensorView& w = s.get(weight, {3 * d, d});
  const io::TensorView& b = s.get(bias, {3 * d});
  // Rows [r0, r0 + d) of a tensor, in place: the slice of a row-major tensor along its first dim is contiguous.
  auto rows = [&](const io::TensorView& t, int64_t r0, const std::string& name) {
    io::TensorView v = t;
    const size_t row_bytes = t.nbytes / static_cast<size_t>(t.shape[0]);
    v.name = name;
    v.data = t.data + static_cast<size_t>(r0) * row_bytes;
    v.nbytes = static_cast<size_t>(d) * row_bytes;
    v.shape[0] = d;
    out->add(std::move(v), src);
  };
  const char* parts[] = {"q_proj", "k_proj", "v_proj"};  // torch's in_proj and timm's qkv: q, k, v in this order
  for (int k = 0; k < 3; ++k) {
    rows(w, k * d, to + parts[k] + ".weight");
    rows(b, k * d, to + parts[k] + ".bias");
  }
}

void OpenClipRenaming::transposed(const std::string& from, int64_t in_dim, int64_t out_dim, const std::string& to) {
  const io::TensorView& t = s.get(from, {in_dim, out_dim});
  const size_t es = io::dtype_size(t.dtype);
  std::vector<uint8_t> bytes(t.nbytes);
  for (int64_t i = 0; i < in_dim; ++i)
    for (int64_t o = 0; o < out_dim; ++o)
      std::memcpy(bytes.data() + (static_cast<size_t>(o) * in_dim + i) * es,
                  t.data + (static_cast<size_t>(i) * out_dim + o) * es, es);
  out->add_owned(to, t.dtype, {out_dim, in_dim}, std::move(bytes), t.file);
}

void OpenClipRenaming::resblocks(const std::string& from, const ClipTowerConfig& t, const std::string& to) {
  const int64_t d = t.hidden_size, inter = t.intermediate_size;
  for (int i = 0; i < t.num_layers; ++i) {
    const std::string f = from + ".resblocks." + std::to_string(i) + ".",
                      h = to + ".encoder.layers." + std::to_string(i) + ".";
    norm(f + "ln_1", d, h + "layer_norm1");
    qkv(f + "attn.in_proj_weight", f + "attn.in_proj_bias", d, h + "self_attn.");
    linear(f + "attn.out_proj", d, d, h + "self_attn.out_proj");
    norm(f + "ln_2", d, h + "layer_norm2");
    linear(f + "mlp.c_fc", inter, d, h + "mlp.fc1");
    linear(f + "mlp.c_proj", d, inter, h + "mlp.fc2");
  }
}

std::shared_ptr<const io::WeightStore> open_clip_to_hf(std::shared_ptr<const io::WeightStore> src,
                                                       const ClipConfig& cfg) {
  OpenClipStateDict s(*src);
  // CustomTextCLIP keeps the text tower under "text."; CLIP at the top level.
  const std::string tp = s.has("text.token_embedding.weight") ? "text." : "";
  auto out = std::make_shared<io::WeightStore>();
  out->set_origin(src->origin());
  OpenClipRenaming r{s, src, out};

  const ClipTowerConfig& v = cfg.vision;
  const ClipTowerConfig& t = cfg.text;
  const int64_t vd = v.hidden_size, td = t.hidden_size, proj = cfg.projection_dim, grid = v.image_size / v.patch_size;
  r.alias("visual.conv1.weight", {vd, v.num_channels, v.patch_size, v.patch_size},
          "vision_model.embeddings.patch_embedding.weight");
  r.alias("visual.class_embedding", {vd}, "vision_model.embeddings.class_embedding");
  r.alias("visual.positional_embedding", {grid * grid + 1, vd}, "vision_model.embeddings.position_embedding.weight");
  r.norm("visual.ln_pre", vd, "vision_model.pre_layrnorm");
  r.resblocks("visual.transformer", v, "vision_model");
  r.norm("visual.ln_post", vd, "vision_model.post_layernorm");
  r.transposed("visual.proj", vd, proj, "visual_projection.weight");

  r.alias(tp + "token_embedding.weight", {t.vocab_size, td}, "text_model.embeddings.token_embedding.weight");
  r.alias(tp + "positional_embedding", {t.max_positions, td}, "text_model.embeddings.position_embedding.weight");
  r.resblocks(tp + "transformer", t, "text_model");
  r.norm(tp + "ln_final", td, "text_model.final_layer_norm");
  r.transposed(tp + "text_projection", td, proj, "text_projection.weight");

  {  // a scalar ([] or [1]); ClipModel checks which
    io::TensorView ls = s.take("logit_scale");
    ls.name = "logit_scale";
    out->add(std::move(ls), src);
  }

  // Older open_clip saved the causal mask buffer with the weights.
  s.check_all_used("an OpenCLIP ViT CLIP model", [](const std::string& base) {
    return base == "attn_mask" || (base.size() > 10 && base.compare(base.size() - 10, 10, ".attn_mask") == 0);
  });
  return out;
}

}  // namespace zeroshot::models
