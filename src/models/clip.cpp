#include "models/clip.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>

#include "io/json.h"
#include "io/safetensors.h"
#include "nn/ops.h"
#include "nn/thread_pool.h"
#include "zeroshot/error.h"

namespace zeroshot::models {

// ---------------------------------------------------------------------------------------------- config

namespace {

// Sizes above this are not a CLIP model (and would overflow the shape arithmetic).
constexpr int64_t kMaxSize = 1 << 20;

std::string json_str(const io::Json& v) { return v.dump(); }

int get_size(const io::Json& obj, const char* key, int def, const std::string& file, const std::string& prefix) {
  if (!obj.contains(key)) return def;
  const io::Json& v = obj[key];
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > kMaxSize)
    throw Error(file, prefix + key + " must be a positive integer, got " + json_str(v));
  return static_cast<int>(v.get<int64_t>());
}

Activation get_act(const io::Json& obj, const std::string& file, const std::string& prefix) {
  if (!obj.contains("hidden_act")) return Activation::QuickGelu;  // HF default for both towers
  const io::Json& v = obj["hidden_act"];
  const std::string s = v.is_string() ? v.get<std::string>() : json_str(v);
  if (s == "quick_gelu") return Activation::QuickGelu;
  if (s == "gelu") return Activation::Gelu;
  if (s == "gelu_new" || s == "gelu_pytorch_tanh") return Activation::GeluTanh;
  throw Error(file, prefix + "hidden_act \"" + s + "\" is not supported (expected quick_gelu, gelu, gelu_new or gelu_pytorch_tanh)");
}

float get_eps(const io::Json& obj, const std::string& file, const std::string& prefix) {
  if (!obj.contains("layer_norm_eps")) return 1e-5f;
  const io::Json& v = obj["layer_norm_eps"];
  if (!v.is_number() || !(v.get<double>() >= 0.0) || !std::isfinite(v.get<double>()))
    throw Error(file, prefix + "layer_norm_eps must be a non-negative number, got " + json_str(v));
  return static_cast<float>(v.get<double>());
}

// CLIPConfig: a "<name>_dict" (old checkpoints) takes precedence over "<name>"; missing means all defaults.
io::Json sub_config(const io::Json& j, const std::string& name, const std::string& file) {
  for (const std::string& key : {name + "_dict", name}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    if (!j[key].is_object()) throw Error(file, key + " is not an object");
    return j[key];
  }
  return io::Json::object();
}

void check_heads(const ClipTowerConfig& t, const std::string& file, const std::string& prefix) {
  if (t.hidden_size % t.num_heads != 0)
    throw Error(file, prefix + "hidden_size " + std::to_string(t.hidden_size) + " is not divisible by num_attention_heads " +
                          std::to_string(t.num_heads));
}

}  // namespace

ClipConfig ClipConfig::load(const std::string& path) {
  const io::Json j = io::load_json(path);
  if (!j.is_object()) throw Error(path, "not a JSON object");
  if (!j.contains("model_type")) throw Error(path, "no model_type (expected \"clip\")");
  const io::Json& mt = j["model_type"];
  if (!mt.is_string() || mt.get<std::string>() != "clip")
    throw Error(path, "model_type " + json_str(mt) + " is not supported (expected \"clip\")");

  ClipConfig c;
  // Defaults are those of transformers' CLIPTextConfig / CLIPVisionConfig / CLIPConfig.
  const io::Json tj = sub_config(j, "text_config", path);
  const std::string tp = "text_config.";
  c.text.vocab_size = get_size(tj, "vocab_size", 49408, path, tp);
  c.text.hidden_size = get_size(tj, "hidden_size", 512, path, tp);
  c.text.intermediate_size = get_size(tj, "intermediate_size", 2048, path, tp);
  c.text.num_layers = get_size(tj, "num_hidden_layers", 12, path, tp);
  c.text.num_heads = get_size(tj, "num_attention_heads", 8, path, tp);
  c.text.max_positions = get_size(tj, "max_position_embeddings", 77, path, tp);
  c.text.act = get_act(tj, path, tp);
  c.text.layer_norm_eps = get_eps(tj, path, tp);
  c.text.eos_token_id = 49407;
  if (tj.contains("eos_token_id")) {
    const io::Json& v = tj["eos_token_id"];
    if (!v.is_number_integer() || v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX)
      throw Error(path, tp + "eos_token_id must be an integer, got " + json_str(v));
    c.text.eos_token_id = static_cast<int>(v.get<int64_t>());
  }
  check_heads(c.text, path, tp);

  const io::Json vj = sub_config(j, "vision_config", path);
  const std::string vp = "vision_config.";
  c.vision.hidden_size = get_size(vj, "hidden_size", 768, path, vp);
  c.vision.intermediate_size = get_size(vj, "intermediate_size", 3072, path, vp);
  c.vision.num_layers = get_size(vj, "num_hidden_layers", 12, path, vp);
  c.vision.num_heads = get_size(vj, "num_attention_heads", 12, path, vp);
  c.vision.num_channels = get_size(vj, "num_channels", 3, path, vp);
  c.vision.image_size = get_size(vj, "image_size", 224, path, vp);
  c.vision.patch_size = get_size(vj, "patch_size", 32, path, vp);
  c.vision.act = get_act(vj, path, vp);
  c.vision.layer_norm_eps = get_eps(vj, path, vp);
  check_heads(c.vision, path, vp);
  if (c.vision.image_size % c.vision.patch_size != 0)
    throw Error(path, vp + "image_size " + std::to_string(c.vision.image_size) + " is not divisible by patch_size " +
                          std::to_string(c.vision.patch_size));
  const int64_t grid = c.vision.image_size / c.vision.patch_size;
  if (grid * grid + 1 > kMaxSize) throw Error(path, vp + "image_size / patch_size gives an absurd number of patches");

  // CLIPModel uses the top-level projection_dim (the towers' own projection_dim is ignored).
  c.projection_dim = get_size(j, "projection_dim", 512, path, "");
  return c;
}

// ---------------------------------------------------------------------------------------------- model

namespace {

struct Norm {
  const float* g = nullptr;
  const float* b = nullptr;
};

struct Linear {
  const float* w = nullptr;
  const float* b = nullptr;
};

struct Layer {
  Norm ln1, ln2;
  nn::AttentionWeights attn;
  Linear fc1, fc2;
};

nn::Act to_nn(Activation a) {
  switch (a) {
    case Activation::QuickGelu: return nn::Act::QuickGelu;
    case Activation::Gelu: return nn::Act::Gelu;
    case Activation::GeluTanh: return nn::Act::GeluTanh;
  }
  return nn::Act::QuickGelu;
}

// Rows (tokens x sequences) run through the encoder at once: bounds the activation memory of a large batch
// (~70 MB for ViT-B, ~90 MB for ViT-L) while keeping GEMMs large enough to be efficient.
constexpr int64_t kMaxRowsPerChunk = 2048;

// Uninitialized float buffer (std::vector would zero it for nothing).
struct Buffer {
  explicit Buffer(size_t n) : p(new float[n]) {}
  float* get() const { return p.get(); }
  std::unique_ptr<float[]> p;
};

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace

struct ClipModel::Impl {
  ClipConfig cfg;
  std::shared_ptr<const io::WeightStore> keep;  // set in zero-copy mode
  std::vector<std::unique_ptr<float[]>> owned;
  std::set<std::string> expected;
  std::unique_ptr<nn::ThreadPool> pool;

  // vision
  const float* class_emb = nullptr;
  const float* patch_w = nullptr;  // [D, C*P*P]
  const float* vision_pos = nullptr;
  Norm pre_ln, post_ln;
  std::vector<Layer> vision_layers;
  const float* visual_proj = nullptr;
  // text
  const float* token_emb = nullptr;
  const float* text_pos = nullptr;
  std::vector<Layer> text_layers;
  Norm final_ln;
  const float* text_proj = nullptr;
  float logit_scale = 0.0f;

  const float* fetch(const io::WeightStore& ws, bool zero_copy, const std::string& name, const std::vector<int64_t>& shape) {
    const io::TensorView& t = ws.get(name, shape);
    expected.insert(name);
    if (zero_copy && t.dtype == io::DType::F32 && reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0)
      return reinterpret_cast<const float*>(t.data);
    owned.emplace_back(new float[static_cast<size_t>(t.numel())]);
    io::to_f32(t, owned.back().get());
    return owned.back().get();
  }

  Norm fetch_norm(const io::WeightStore& ws, bool zc, const std::string& p, int64_t d) {
    return {fetch(ws, zc, p + ".weight", {d}), fetch(ws, zc, p + ".bias", {d})};
  }

  Linear fetch_linear(const io::WeightStore& ws, bool zc, const std::string& p, int64_t out, int64_t in, bool bias) {
    return {fetch(ws, zc, p + ".weight", {out, in}), bias ? fetch(ws, zc, p + ".bias", {out}) : nullptr};
  }

  std::vector<Layer> fetch_layers(const io::WeightStore& ws, bool zc, const std::string& prefix, const ClipTowerConfig& t) {
    std::vector<Layer> layers;
    const int64_t d = t.hidden_size, inter = t.intermediate_size;
    for (int i = 0; i < t.num_layers; ++i) {
      const std::string p = prefix + ".encoder.layers." + std::to_string(i);
      Layer l;
      l.ln1 = fetch_norm(ws, zc, p + ".layer_norm1", d);
      const Linear q = fetch_linear(ws, zc, p + ".self_attn.q_proj", d, d, true);
      const Linear k = fetch_linear(ws, zc, p + ".self_attn.k_proj", d, d, true);
      const Linear v = fetch_linear(ws, zc, p + ".self_attn.v_proj", d, d, true);
      const Linear o = fetch_linear(ws, zc, p + ".self_attn.out_proj", d, d, true);
      l.attn = {q.w, q.b, k.w, k.b, v.w, v.b, o.w, o.b};
      l.ln2 = fetch_norm(ws, zc, p + ".layer_norm2", d);
      l.fc1 = fetch_linear(ws, zc, p + ".mlp.fc1", inter, d, true);
      l.fc2 = fetch_linear(ws, zc, p + ".mlp.fc2", d, inter, true);
      layers.push_back(l);
    }
    return layers;
  }

  Impl(const ClipConfig& c, const io::WeightStore& ws, bool zc, int threads) : cfg(c) {
    const ClipTowerConfig& v = cfg.vision;
    const ClipTowerConfig& t = cfg.text;
    const int64_t vd = v.hidden_size, td = t.hidden_size, proj = cfg.projection_dim;
    const int64_t grid = v.image_size / v.patch_size;
    // Vision first: a wrong vision width is reported on its first tensor.
    class_emb = fetch(ws, zc, "vision_model.embeddings.class_embedding", {vd});
    patch_w = fetch(ws, zc, "vision_model.embeddings.patch_embedding.weight", {vd, v.num_channels, v.patch_size, v.patch_size});
    vision_pos = fetch(ws, zc, "vision_model.embeddings.position_embedding.weight", {grid * grid + 1, vd});
    pre_ln = fetch_norm(ws, zc, "vision_model.pre_layrnorm", vd);
    vision_layers = fetch_layers(ws, zc, "vision_model", v);
    post_ln = fetch_norm(ws, zc, "vision_model.post_layernorm", vd);
    visual_proj = fetch(ws, zc, "visual_projection.weight", {proj, vd});

    token_emb = fetch(ws, zc, "text_model.embeddings.token_embedding.weight", {t.vocab_size, td});
    text_pos = fetch(ws, zc, "text_model.embeddings.position_embedding.weight", {t.max_positions, td});
    text_layers = fetch_layers(ws, zc, "text_model", t);
    final_ln = fetch_norm(ws, zc, "text_model.final_layer_norm", td);
    text_proj = fetch(ws, zc, "text_projection.weight", {proj, td});

    // A scalar parameter in HF ([]); some conversions store it as [1].
    const io::TensorView& ls = ws.get("logit_scale");
    if (!ls.is_float() || !(ls.shape.empty() || ls.shape == std::vector<int64_t>{1}))
      throw Error(ls.file, "tensor logit_scale has " + std::string(io::dtype_name(ls.dtype)) + " " + shape_str(ls.shape) +
                               ", expected a float scalar");
    expected.insert("logit_scale");
    logit_scale = io::to_f32(ls)[0];

    for (const std::string& name : ws.names()) {
      if (expected.count(name)) continue;
      const io::TensorView& tv = ws.get(name);
      if (tv.is_float())  // integer buffers (position_ids) are not parameters
        throw Error(tv.file, "unexpected tensor " + name + " (not part of a CLIP model with this config.json)");
    }
    pool = std::make_unique<nn::ThreadPool>(threads);
  }

  // One pre-LN encoder layer over x [sum(lens), D] (sequences back to back), in place. scratch: encoder_scratch().
  void run_layer(const Layer& l, const ClipTowerConfig& tc, float* x, const std::vector<int>& lens, int64_t rows,
                 bool causal, float* scratch) const {
    const int d = tc.hidden_size;
    const size_t n = static_cast<size_t>(rows) * d;
    float* h = scratch;
    float* t = h + n;
    float* attn_ws = t + n;      // 4 n
    float* m = attn_ws + 4 * n;  // rows x intermediate
    nn::ThreadPool* p = pool.get();
    nn::layer_norm(x, rows, d, l.ln1.g, l.ln1.b, tc.layer_norm_eps, h, p);
    nn::self_attention(h, lens, d, tc.num_heads, l.attn, causal, t, p, attn_ws);
    nn::add_inplace(x, t, static_cast<long>(n), p);
    nn::layer_norm(x, rows, d, l.ln2.g, l.ln2.b, tc.layer_norm_eps, h, p);
    nn::linear(h, static_cast<int>(rows), d, l.fc1.w, l.fc1.b, tc.intermediate_size, m, p);
    nn::activate(to_nn(tc.act), m, static_cast<long>(rows) * tc.intermediate_size, p);
    nn::linear(m, static_cast<int>(rows), tc.intermediate_size, l.fc2.w, l.fc2.b, d, t, p);
    nn::add_inplace(x, t, static_cast<long>(n), p);
  }

  static size_t encoder_scratch(const ClipTowerConfig& tc, int64_t rows) {
    return static_cast<size_t>(rows) * (6 * static_cast<size_t>(tc.hidden_size) + static_cast<size_t>(tc.intermediate_size));
  }

  void encode_image_chunk(const float* pixels, int b, float* out) const {
    const ClipTowerConfig& v = cfg.vision;
    const int d = v.hidden_size, c = v.num_channels, ps = v.patch_size, size = v.image_size;
    const int grid = size / ps, np = grid * grid, seq = np + 1, kdim = c * ps * ps;
    const int64_t rows = static_cast<int64_t>(b) * seq;
    nn::ThreadPool* p = pool.get();

    // Patch embedding = Conv2d(kernel = stride = patch, no bias) as a GEMM over the unrolled patches, whose
    // (channel, ky, kx) order matches the weight's [D, C, P, P] layout; patches in row-major grid order.
    Buffer patches(static_cast<size_t>(b) * np * kdim);
    nn::parallel_ranges(p, static_cast<long>(b) * np, 16, [&](long r0, long r1) {
      for (long r = r0; r < r1; ++r) {
        const long img = r / np, py = (r % np) / grid, px = r % grid;
        const float* src = pixels + img * static_cast<long>(c) * size * size;
        float* dst = patches.get() + r * kdim;
        for (int ch = 0; ch < c; ++ch)
          for (int ky = 0; ky < ps; ++ky) {
            const float* row = src + (static_cast<long>(ch) * size + py * ps + ky) * size + px * ps;
            std::copy(row, row + ps, dst + (static_cast<long>(ch) * ps + ky) * ps);
          }
      }
    });
    Buffer pe(static_cast<size_t>(b) * np * d);
    nn::linear(patches.get(), b * np, kdim, patch_w, nullptr, d, pe.get(), p);

    Buffer x(static_cast<size_t>(rows) * d);
    for (int img = 0; img < b; ++img) {
      float* xi = x.get() + static_cast<size_t>(img) * seq * d;
      for (int j = 0; j < d; ++j) xi[j] = class_emb[j] + vision_pos[j];
      for (int t = 0; t < np; ++t) {
        const float* src = pe.get() + (static_cast<size_t>(img) * np + t) * d;
        const float* pos = vision_pos + static_cast<size_t>(t + 1) * d;
        float* dst = xi + static_cast<size_t>(t + 1) * d;
        for (int j = 0; j < d; ++j) dst[j] = src[j] + pos[j];
      }
    }
    nn::layer_norm(x.get(), rows, d, pre_ln.g, pre_ln.b, v.layer_norm_eps, x.get(), p);
    Buffer scratch(encoder_scratch(v, rows));
    const std::vector<int> lens(static_cast<size_t>(b), seq);
    for (const Layer& l : vision_layers) run_layer(l, v, x.get(), lens, rows, false, scratch.get());

    // Pooled output: the class token of each image, post-LayerNorm, projected.
    Buffer pooled(static_cast<size_t>(b) * d);
    for (int img = 0; img < b; ++img)
      std::copy(x.get() + static_cast<size_t>(img) * seq * d, x.get() + (static_cast<size_t>(img) * seq + 1) * d,
                pooled.get() + static_cast<size_t>(img) * d);
    nn::layer_norm(pooled.get(), b, d, post_ln.g, post_ln.b, v.layer_norm_eps, pooled.get(), p);
    nn::linear(pooled.get(), b, d, visual_proj, nullptr, cfg.projection_dim, out, p);
  }

  // Sequences of any lengths, back to back without padding; row s of the result goes to out_rows[s].
  void encode_text_chunk(const std::vector<const std::vector<int32_t>*>& seqs, float* const* out_rows) const {
    const ClipTowerConfig& t = cfg.text;
    const int d = t.hidden_size, b = static_cast<int>(seqs.size());
    std::vector<int> lens(static_cast<size_t>(b));
    std::vector<int64_t> starts(static_cast<size_t>(b));
    int64_t rows = 0;
    for (int s = 0; s < b; ++s) {
      starts[s] = rows;
      lens[s] = static_cast<int>(seqs[s]->size());
      rows += lens[s];
    }
    nn::ThreadPool* p = pool.get();
    Buffer x(static_cast<size_t>(rows) * d);
    for (int s = 0; s < b; ++s)
      for (int i = 0; i < lens[s]; ++i) {
        const float* tok = token_emb + static_cast<size_t>((*seqs[s])[i]) * d;
        const float* pos = text_pos + static_cast<size_t>(i) * d;
        float* dst = x.get() + static_cast<size_t>(starts[s] + i) * d;
        for (int j = 0; j < d; ++j) dst[j] = tok[j] + pos[j];
      }
    Buffer scratch(encoder_scratch(t, rows));
    for (const Layer& l : text_layers) run_layer(l, t, x.get(), lens, rows, true, scratch.get());

    // Pooled row: eos_token_id == 2 is the legacy config value (before transformers PR #24773), for which HF
    // takes the argmax of the ids (the eot token has the highest id); otherwise the first eos_token_id position
    // (argmax of a 0/1 mask: position 0 when there is none). torch.argmax returns the first maximum.
    Buffer pooled(static_cast<size_t>(b) * d);
    for (int s = 0; s < b; ++s) {
      const std::vector<int32_t>& ids = *seqs[s];
      int at = 0;
      if (t.eos_token_id == 2) {
        for (int i = 1; i < lens[s]; ++i)
          if (ids[i] > ids[at]) at = i;
      } else {
        for (int i = 0; i < lens[s]; ++i)
          if (ids[i] == t.eos_token_id) {
            at = i;
            break;
          }
      }
      const float* row = x.get() + static_cast<size_t>(starts[s] + at) * d;
      std::copy(row, row + d, pooled.get() + static_cast<size_t>(s) * d);
    }
    nn::layer_norm(pooled.get(), b, d, final_ln.g, final_ln.b, t.layer_norm_eps, pooled.get(), p);
    Buffer projected(static_cast<size_t>(b) * cfg.projection_dim);
    nn::linear(pooled.get(), b, d, text_proj, nullptr, cfg.projection_dim, projected.get(), p);
    for (int s = 0; s < b; ++s)
      std::copy(projected.get() + static_cast<size_t>(s) * cfg.projection_dim,
                projected.get() + static_cast<size_t>(s + 1) * cfg.projection_dim, out_rows[s]);
  }
};

ClipModel::ClipModel(const ClipConfig& cfg, const io::WeightStore& weights, int threads)
    : impl_(std::make_unique<Impl>(cfg, weights, false, threads)) {}

ClipModel::ClipModel(const ClipConfig& cfg, std::shared_ptr<const io::WeightStore> weights, int threads) {
  if (!weights) throw Error("ClipModel", "no weights");
  impl_ = std::make_unique<Impl>(cfg, *weights, true, threads);
  impl_->keep = std::move(weights);
}

ClipModel::~ClipModel() = default;
ClipModel::ClipModel(ClipModel&&) noexcept = default;
ClipModel& ClipModel::operator=(ClipModel&&) noexcept = default;

const ClipConfig& ClipModel::config() const { return impl_->cfg; }
float ClipModel::logit_scale() const { return impl_->logit_scale; }

void ClipModel::encode_images(const float* pixel_values, int n, float* out) const {
  if (n < 0) throw Error("pixel_values", "negative batch size " + std::to_string(n));
  if (n == 0) return;
  if (!pixel_values || !out) throw Error("pixel_values", "null buffer");
  const ClipTowerConfig& v = impl_->cfg.vision;
  const int grid = v.image_size / v.patch_size;
  const int64_t seq = static_cast<int64_t>(grid) * grid + 1;
  const int per_chunk = static_cast<int>(std::max<int64_t>(1, kMaxRowsPerChunk / seq));
  const size_t image_floats = static_cast<size_t>(v.num_channels) * v.image_size * v.image_size;
  for (int i = 0; i < n; i += per_chunk) {
    const int b = std::min(per_chunk, n - i);
    impl_->encode_image_chunk(pixel_values + i * image_floats, b, out + static_cast<size_t>(i) * impl_->cfg.projection_dim);
  }
}

void ClipModel::encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) const {
  const ClipTowerConfig& t = impl_->cfg.text;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string where = "input_ids[" + std::to_string(i) + "]";
    if (ids[i].empty()) throw Error(where, "empty token sequence");
    if (ids[i].size() > static_cast<size_t>(t.max_positions))
      throw Error(where, std::to_string(ids[i].size()) + " tokens, more than max_position_embeddings " + std::to_string(t.max_positions));
    for (int32_t id : ids[i])
      if (id < 0 || id >= t.vocab_size)
        throw Error(where, "token id " + std::to_string(id) + " is outside the vocabulary (size " + std::to_string(t.vocab_size) + ")");
  }
  if (ids.empty()) return;
  if (!out) throw Error("encode_texts", "null output buffer");
  // All sequences run together at their true lengths (ragged rows, no padding, no mask), in chunks of at most
  // kMaxRowsPerChunk rows: every GEMM sees all of them, so the weights are streamed once per chunk.
  std::vector<const std::vector<int32_t>*> seqs;
  std::vector<float*> rows;
  int64_t chunk_rows = 0;
  auto flush = [&] {
    if (!seqs.empty()) impl_->encode_text_chunk(seqs, rows.data());
    seqs.clear();
    rows.clear();
    chunk_rows = 0;
  };
  for (size_t i = 0; i < ids.size(); ++i) {
    if (chunk_rows + static_cast<int64_t>(ids[i].size()) > kMaxRowsPerChunk) flush();
    seqs.push_back(&ids[i]);
    rows.push_back(out + i * static_cast<size_t>(impl_->cfg.projection_dim));
    chunk_rows += static_cast<int64_t>(ids[i].size());
  }
  flush();
}

}  // namespace zeroshot::models
