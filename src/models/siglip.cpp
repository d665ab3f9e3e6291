#include "models/siglip.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "io/json.h"
#include "io/safetensors.h"
#include "models/encoder_layers.h"
#include "models/hf_config.h"
#include "models/siglip2_naflex.h"
#include "models/token_ids.h"
#include "models/weight_loader.h"
#include "nn/ops.h"
#include "nn/thread_pool.h"
#include "zeroshot/error.h"

namespace zeroshot::models {

// ----------------------------------------------------------------------------------------------
// config

namespace {

// transformers' ACT2FN names of the activations nn/ has; SigLIP checkpoints use
// gelu_pytorch_tanh.
nn::Act siglip_act(const hf::Fields& f) {
  const std::string s = f.text("hidden_act", "gelu_pytorch_tanh");
  if (s == "gelu_pytorch_tanh" || s == "gelu_new") return nn::Act::GeluTanh;
  if (s == "gelu") return nn::Act::Gelu;
  if (s == "quick_gelu") return nn::Act::QuickGelu;
  f.fail("hidden_act \"" + s +
         "\" is not supported (expected gelu_pytorch_tanh, gelu_new, gelu or "
         "quick_gelu)");
}

// Defaults are those of transformers' SiglipTextConfig / SiglipVisionConfig.
ClipTowerConfig tower(const hf::Fields& f, bool vision, bool naflex = false) {
  ClipTowerConfig t;
  t.hidden_size = f.size("hidden_size", 768);
  t.intermediate_size = f.size("intermediate_size", 3072);
  t.num_layers = f.size("num_hidden_layers", 12);
  t.num_heads = f.size("num_attention_heads", 12);
  t.act = siglip_act(f);
  t.layer_norm_eps = f.non_negative("layer_norm_eps", 1e-6f);
  if (t.hidden_size % t.num_heads != 0)
    f.fail("hidden_size " + std::to_string(t.hidden_size) + " is not divisible by num_attention_heads " +
           std::to_string(t.num_heads));
  if (vision) {
    t.num_channels = f.size("num_channels", 3);
    if (naflex) {  // Siglip2VisionConfig: no image_size (num_patches, read by the caller)
      t.patch_size = f.square("patch_size", 16);
      return t;
    }
    t.image_size = f.size("image_size", 224);
    t.patch_size = f.square("patch_size", 16);
    // A remainder is allowed: SiglipVisionEmbeddings' stride-patch_size convolution drops the last image_size %
    // patch_size rows and columns (google/siglip-so400m-patch14-384: 384 = 27 x 14 + 6), and so does the patch
    // unrolling here (grid = image_size / patch_size, rows read at the image's own stride).
    if (t.image_size < t.patch_size)
      f.fail("image_size " + std::to_string(t.image_size) + " is smaller than patch_size " +
             std::to_string(t.patch_size));
    const int64_t grid = t.image_size / t.patch_size;
    if (grid * grid > hf::kMaxSize) f.fail("image_size / patch_size gives an absurd number of patches");
  } else {
    t.vocab_size = f.size("vocab_size", 32000);
    t.max_positions = f.size("max_position_embeddings", 64);
  }
  return t;
}

}  // namespace

SiglipConfig SiglipConfig::load(const std::string& path) {
  const io::Json raw = io::load_json(path);
  const bool naflex = raw.is_object() && raw.contains("model_type") && raw["model_type"] == "siglip2";
  const io::Json j = hf::load(path, naflex ? "siglip2" : "siglip");
  SiglipConfig c;
  const io::Json tj = hf::sub_config(j, {"text_config"}, path);
  c.text = tower(hf::Fields{tj, path, "text_config."}, false);
  const io::Json vj = hf::sub_config(j, {"vision_config"}, path);
  const hf::Fields v{vj, path, "vision_config."};
  c.vision = tower(v, true, naflex);
  if (naflex) {
    // Siglip2VisionEmbeddings reshapes its num_patches positions to a square grid of int(num_patches ** 0.5).
    c.num_patches = v.size("num_patches", 256);
    const auto side = static_cast<int>(std::lround(std::sqrt(static_cast<double>(c.num_patches))));
    if (side * side != c.num_patches)
      v.fail("num_patches " + std::to_string(c.num_patches) + " is not a square number (the positional grid)");
  }
  // SiglipVisionTransformer builds its attention-pooling head unless
  // vision_use_head is false; without it there are no image features for
  // SiglipModel to compare.
  if (!v.flag("vision_use_head", true))
    v.fail(
        "vision_use_head false is not supported (SiglipModel pools images "
        "with its attention-pooling head)");
  if (c.text.hidden_size != c.vision.hidden_size)
    throw Error(path, "text_config.hidden_size " + std::to_string(c.text.hidden_size) +
                          " differs from vision_config.hidden_size " + std::to_string(c.vision.hidden_size) +
                          " (SigLIP compares the two towers' pooled outputs directly)");
  return c;
}

// ----------------------------------------------------------------------------------------------
// model

namespace {

using Layer = EncoderLayer;

// Rows per encoder run: bounds the activation memory of a large batch.
constexpr int64_t kMaxRowsPerChunk = 2048;

// One query row against `nkeys` key / value rows (row stride ld), per head:
// softmax(q k^T * scale) v. For the pooling head's probe and the text's padded
// last row (the only queries that are not part of a self-attention over the
// same rows, which nn::attention runs).
void attend(const float* q, const float* k, const float* v, long ld, int nkeys, int heads, int hd, float scale,
            float* out) {
  std::vector<float> s(static_cast<size_t>(nkeys));
  for (int h = 0; h < heads; ++h) {
    const float* qh = q + static_cast<long>(h) * hd;
    for (int j = 0; j < nkeys; ++j) {
      const float* kj = k + j * ld + static_cast<long>(h) * hd;
      float acc = 0.0f;
      for (int c = 0; c < hd; ++c) acc += qh[c] * kj[c];
      s[static_cast<size_t>(j)] = acc * scale;
    }
    nn::softmax_row(s.data(), nkeys, nkeys);
    float* oh = out + static_cast<long>(h) * hd;
    std::fill(oh, oh + hd, 0.0f);
    for (int j = 0; j < nkeys; ++j) {
      const float* vj = v + j * ld + static_cast<long>(h) * hd;
      const float p = s[static_cast<size_t>(j)];
      for (int c = 0; c < hd; ++c) oh[c] += p * vj[c];
    }
  }
}

float head_scale(const ClipTowerConfig& t) {
  // head_dim ** -0.5 as Python computes it (double), used as a float.
  // NOLINTNEXTLINE(bugprone-integer-division): head_dim = hidden_size // num_heads, an integer, as in transformers
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(t.hidden_size / t.num_heads)));
}

}  // namespace

struct SiglipModel::Impl {
  SiglipConfig cfg;
  Precision prec = Precision::F32;
  std::shared_ptr<const io::WeightStore> keep;
  bool from_file = false;
  std::shared_ptr<const PackedWeightsFile> packed;  // mapped panels that layers use in place
  std::vector<std::unique_ptr<float[]>> owned;
  std::vector<std::string> in_place;
  std::unique_ptr<nn::ThreadPool> pool;

  // vision
  nn::PackedLinear patch;  // [D, C*P*P] + bias: the conv as a GEMM over unrolled patches
  const float* vision_pos = nullptr;
  std::vector<Layer> vision_layers;
  NormWeights post_ln;
  std::vector<float> probe_q;  // the probe's query (constant: computed once at load)
  nn::PackedLinear head_kv;    // rows D..3D of in_proj: keys | values
  nn::PackedLinear head_out, head_fc1, head_fc2;
  NormWeights head_ln;
  // text
  const float* token_emb = nullptr;
  const float* text_pos = nullptr;
  std::vector<Layer> text_layers;
  NormWeights final_ln;
  nn::PackedLinear text_head;
  float logit_scale = 0.0f, logit_bias = 0.0f;

  Impl(const SiglipConfig& c, const io::WeightStore& ws, const ClipOptions& opt) : cfg(c), prec(opt.precision) {
    const ClipTowerConfig& v = cfg.vision;
    const ClipTowerConfig& t = cfg.text;
    const int64_t d = v.hidden_size, grid = v.image_size / v.patch_size;
    LoaderOptions lo;
    lo.zero_copy = true;
    if (opt.precision == Precision::Int8 || opt.precision == Precision::Int4) lo.int8_file = opt.int8_weights;
    lo.int8_capture = opt.int8_capture;
    lo.on_quantized = opt.on_quantized;
    lo.packed = packed = opt.packed;
    lo.packed_capture = opt.packed_capture;
    WeightLoader w(ws, "SigLIP", lo);
    from_file = w.int8_from_file();

    if (cfg.num_patches > 0) {  // NaFlex: a Linear over patches flattened as (y, x, channel)
      patch = w.linear({"vision_model.embeddings.patch_embedding"}, d,
                       static_cast<int64_t>(v.num_channels) * v.patch_size * v.patch_size, true, prec);
      vision_pos = w.tensor("vision_model.embeddings.position_embedding.weight", {cfg.num_patches, d});
    } else {
      patch =
          w.matrix("vision_model.embeddings.patch_embedding.weight", {d, v.num_channels, v.patch_size, v.patch_size},
                   "vision_model.embeddings.patch_embedding.bias", prec);
      vision_pos = w.tensor("vision_model.embeddings.position_embedding.weight", {grid * grid, d});
    }
    vision_layers = load_encoder_layers(w, "vision_model", v, prec);
    post_ln = w.norm("vision_model.post_layernorm", d);
    // The pooling head stays f32 (one query row per image; small next to the
    // encoder), as CLIP's projections do.
    const std::string h = "vision_model.head.";
    const float* probe = w.tensor(h + "probe", {1, 1, d});
    const float* in_w = w.tensor(h + "attention.in_proj_weight", {3 * d, d});
    const float* in_b = w.tensor(h + "attention.in_proj_bias", {3 * d});
    probe_q.resize(static_cast<size_t>(d));
    nn::linear(probe, 1, static_cast<int>(d), in_w, in_b, static_cast<int>(d), probe_q.data(), nullptr);
    head_kv = nn::PackedLinear(in_w + d * d, in_b + d, static_cast<int>(2 * d), static_cast<int>(d), Precision::F32);
    head_out = w.linear({h + "attention.out_proj"}, d, d, true, Precision::F32);
    head_ln = w.norm(h + "layernorm", d);
    head_fc1 = w.linear({h + "mlp.fc1"}, v.intermediate_size, d, true, Precision::F32);
    head_fc2 = w.linear({h + "mlp.fc2"}, d, v.intermediate_size, true, Precision::F32);

    const int64_t td = t.hidden_size;
    token_emb = w.tensor("text_model.embeddings.token_embedding.weight", {t.vocab_size, td});
    text_pos = w.tensor("text_model.embeddings.position_embedding.weight", {t.max_positions, td});
    text_layers = load_encoder_layers(w, "text_model", t, prec);
    final_ln = w.norm("text_model.final_layer_norm", td);
    text_head = w.linear({"text_model.head"}, td, td, true, Precision::F32);
    logit_scale = w.scalar("logit_scale");
    logit_bias = w.scalar("logit_bias");
    w.check_unused();
    owned = w.take_buffers();
    in_place = w.in_place();
    pool = std::make_unique<nn::ThreadPool>(opt.threads);
  }

  // One pre-LN encoder layer over x [rows, D], in place: the first sum(lens)
  // rows are sequences back to back that attend among themselves; each row
  // after them (extra[i] = {first key row, key count}) attends over those keys
  // of its sequence only.
  void run_layer(const Layer& l, const ClipTowerConfig& tc, float* x, const std::vector<int>& lens,
                 const std::vector<std::pair<int64_t, int>>& extra, int64_t rows, std::vector<float>& scratch) const {
    const int d = tc.hidden_size, m = static_cast<int>(rows);
    const size_t n = static_cast<size_t>(rows) * d;
    scratch.resize(4 * n + static_cast<size_t>(rows) * tc.intermediate_size);
    float* qkv = scratch.data();
    float* ctx = qkv + 3 * n;
    float* mlp = ctx + n;
    nn::ThreadPool* p = pool.get();
    const int hd = d / tc.num_heads;
    const float scale = head_scale(tc);
    const nn::RowLayerNorm ln1{l.ln1.g, l.ln1.b, tc.layer_norm_eps}, ln2{l.ln2.g, l.ln2.b, tc.layer_norm_eps};
    l.qkv.forward(x, m, qkv, p, nn::LinearPost::store(), &ln1);
    nn::attention(qkv, qkv + d, qkv + 2 * d, 3L * d, lens, tc.num_heads, hd, scale, false, ctx, d, p,
                  nn::attention_precision(prec));
    const int64_t real = rows - static_cast<int64_t>(extra.size());
    for (size_t i = 0; i < extra.size(); ++i) {
      const float* q = qkv + static_cast<size_t>(real + static_cast<int64_t>(i)) * 3 * d;
      const float* k = qkv + static_cast<size_t>(extra[i].first) * 3 * d + d;
      attend(q, k, k + d, 3L * d, extra[i].second, tc.num_heads, hd, scale,
             ctx + static_cast<size_t>(real + static_cast<int64_t>(i)) * d);
    }
    l.out.forward(ctx, m, x, p, nn::LinearPost::accumulate());
    l.fc1.forward(x, m, mlp, p, nn::LinearPost::activate(tc.act), &ln2);
    l.fc2.forward(mlp, m, x, p, nn::LinearPost::accumulate());
  }

  void encode_image_chunk(const float* pixels, int b, float* out) const {
    const ClipTowerConfig& v = cfg.vision;
    const int d = v.hidden_size, c = v.num_channels, ps = v.patch_size, size = v.image_size;
    const int grid = size / ps, np = grid * grid, kdim = c * ps * ps;
    const int64_t rows = static_cast<int64_t>(b) * np;
    nn::ThreadPool* p = pool.get();
    std::vector<float> patches(static_cast<size_t>(rows) * kdim), x(static_cast<size_t>(rows) * d), scratch;
    // Unrolled patches in (channel, ky, kx) order = the conv weight's [D, C, P,
    // P] layout, row-major grid order.
    nn::parallel_ranges(p, static_cast<long>(rows), 16, [&](long r0, long r1) {
      for (long r = r0; r < r1; ++r) {
        const long img = r / np, py = (r % np) / grid, px = r % grid;
        const float* src = pixels + img * static_cast<long>(c) * size * size;
        float* dst = patches.data() + r * kdim;
        for (int ch = 0; ch < c; ++ch)
          for (int ky = 0; ky < ps; ++ky) {
            const float* row = src + (static_cast<long>(ch) * size + py * ps + ky) * size + px * ps;
            std::copy(row, row + ps, dst + (static_cast<long>(ch) * ps + ky) * ps);
          }
      }
    });
    patch.forward(patches.data(), static_cast<int>(rows), x.data(), p);
    for (int64_t r = 0; r < rows; ++r) {
      const float* pos = vision_pos + static_cast<size_t>(r % np) * d;
      float* xr = x.data() + static_cast<size_t>(r) * d;
      for (int j = 0; j < d; ++j) xr[j] += pos[j];
    }
    const std::vector<int> lens(static_cast<size_t>(b), np);
    for (const Layer& l : vision_layers) run_layer(l, v, x.data(), lens, {}, rows, scratch);
    nn::layer_norm(x.data(), rows, d, post_ln.g, post_ln.b, v.layer_norm_eps, x.data(), p);

    // The pooling head: the probe attends over each image's tokens; then x +
    // mlp(layernorm(x)).
    std::vector<float> kv(static_cast<size_t>(rows) * 2 * d), ctx(static_cast<size_t>(b) * d),
        mlp(static_cast<size_t>(b) * v.intermediate_size);
    head_kv.forward(x.data(), static_cast<int>(rows), kv.data(), p);
    const int hd = d / v.num_heads;
    for (int img = 0; img < b; ++img) {
      const float* k = kv.data() + static_cast<size_t>(img) * np * 2 * d;
      attend(probe_q.data(), k, k + d, 2L * d, np, v.num_heads, hd, head_scale(v),
             ctx.data() + static_cast<size_t>(img) * d);
    }
    head_out.forward(ctx.data(), b, out, p);
    const nn::RowLayerNorm ln{head_ln.g, head_ln.b, v.layer_norm_eps};
    head_fc1.forward(out, b, mlp.data(), p, nn::LinearPost::activate(v.act), &ln);
    head_fc2.forward(mlp.data(), b, out, p, nn::LinearPost::accumulate());
  }

  // NaFlex: b images of lens[i] real patches each (rows back to back in `patches`, grids[i] their patch grid).
  void encode_naflex_chunk(const float* patches, const std::vector<std::pair<int, int>>& grids, float* out) const {
    const ClipTowerConfig& v = cfg.vision;
    const int d = v.hidden_size, b = static_cast<int>(grids.size());
    const int side = static_cast<int>(std::lround(std::sqrt(static_cast<double>(cfg.num_patches))));
    std::vector<int> lens(static_cast<size_t>(b));
    int64_t rows = 0;
    for (int i = 0; i < b; ++i)
      rows += lens[static_cast<size_t>(i)] = grids[static_cast<size_t>(i)].first * grids[static_cast<size_t>(i)].second;
    nn::ThreadPool* p = pool.get();
    std::vector<float> x(static_cast<size_t>(rows) * d), pos, scratch;
    patch.forward(patches, static_cast<int>(rows), x.data(), p);
    int64_t r0 = 0;
    for (int i = 0; i < b; ++i) {
      const auto [gh, gw] = grids[static_cast<size_t>(i)];
      pos.resize(static_cast<size_t>(gh) * gw * d);
      resize_positions(vision_pos, side, d, gh, gw, pos.data());
      float* xi = x.data() + static_cast<size_t>(r0) * d;
      for (size_t k = 0; k < pos.size(); ++k) xi[k] += pos[k];
      r0 += lens[static_cast<size_t>(i)];
    }
    for (const Layer& l : vision_layers) run_layer(l, v, x.data(), lens, {}, rows, scratch);
    nn::layer_norm(x.data(), rows, d, post_ln.g, post_ln.b, v.layer_norm_eps, x.data(), p);
    // The pooling head over each image's real patches (the mask's padding gets zero weight in transformers).
    std::vector<float> kv(static_cast<size_t>(rows) * 2 * d), ctx(static_cast<size_t>(b) * d),
        mlp(static_cast<size_t>(b) * v.intermediate_size);
    head_kv.forward(x.data(), static_cast<int>(rows), kv.data(), p);
    const int hd = d / v.num_heads;
    r0 = 0;
    for (int i = 0; i < b; ++i) {
      const float* k = kv.data() + static_cast<size_t>(r0) * 2 * d;
      attend(probe_q.data(), k, k + d, 2L * d, lens[static_cast<size_t>(i)], v.num_heads, hd, head_scale(v),
             ctx.data() + static_cast<size_t>(i) * d);
      r0 += lens[static_cast<size_t>(i)];
    }
    head_out.forward(ctx.data(), b, out, p);
    const nn::RowLayerNorm ln{head_ln.g, head_ln.b, v.layer_norm_eps};
    head_fc1.forward(out, b, mlp.data(), p, nn::LinearPost::activate(v.act), &ln);
    head_fc2.forward(mlp.data(), b, out, p, nn::LinearPost::accumulate());
  }

  void encode_text_chunk(const std::vector<const std::vector<int32_t>*>& seqs, int32_t pad_id, int padded,
                         bool pad_left, float* const* out_rows) const {
    const ClipTowerConfig& t = cfg.text;
    const int d = t.hidden_size, b = static_cast<int>(seqs.size()), last = padded - 1;
    std::vector<int> lens(static_cast<size_t>(b));
    std::vector<int64_t> starts(static_cast<size_t>(b));
    std::vector<std::pair<int64_t, int>> extra;  // the padded last row of each short sequence
    std::vector<int64_t> pooled_row(static_cast<size_t>(b));
    int64_t real = 0;
    for (int s = 0; s < b; ++s) {
      starts[s] = real;
      lens[s] = static_cast<int>(seqs[s]->size());
      real += lens[s];
    }
    for (int s = 0; s < b; ++s) {
      if (pad_left) {
        pooled_row[s] = starts[s] + lens[s] - 1;
      } else if (lens[s] == padded) {
        pooled_row[s] = starts[s] + last;
      } else {
        pooled_row[s] = real + static_cast<int64_t>(extra.size());
        extra.emplace_back(starts[s], lens[s]);
      }
    }
    const int64_t rows = real + static_cast<int64_t>(extra.size());
    std::vector<float> x(static_cast<size_t>(rows) * d), scratch;
    for (int s = 0; s < b; ++s)
      for (int i = 0; i < lens[s]; ++i) {
        const float* tok = token_emb + static_cast<size_t>((*seqs[s])[i]) * d;
        const float* pos = text_pos + static_cast<size_t>(pad_left ? i + padded - lens[s] : i) * d;
        float* dst = x.data() + static_cast<size_t>(starts[s] + i) * d;
        for (int j = 0; j < d; ++j) dst[j] = tok[j] + pos[j];
      }
    for (size_t e = 0; e < extra.size(); ++e) {
      const float* tok = token_emb + static_cast<size_t>(pad_id) * d;
      const float* pos = text_pos + static_cast<size_t>(last) * d;
      float* dst = x.data() + static_cast<size_t>(real + static_cast<int64_t>(e)) * d;
      for (int j = 0; j < d; ++j) dst[j] = tok[j] + pos[j];
    }
    for (const Layer& l : text_layers) run_layer(l, t, x.data(), lens, extra, rows, scratch);
    std::vector<float> pooled(static_cast<size_t>(b) * d), head(static_cast<size_t>(b) * d);
    for (int s = 0; s < b; ++s) {
      const float* r = x.data() + static_cast<size_t>(pooled_row[s]) * d;
      std::copy(r, r + d, pooled.data() + static_cast<size_t>(s) * d);
    }
    nn::layer_norm(pooled.data(), b, d, final_ln.g, final_ln.b, t.layer_norm_eps, pooled.data(), pool.get());
    text_head.forward(pooled.data(), b, head.data(), pool.get());
    for (int s = 0; s < b; ++s)
      std::copy(head.data() + static_cast<size_t>(s) * d, head.data() + static_cast<size_t>(s + 1) * d, out_rows[s]);
  }
};

SiglipModel::SiglipModel(const SiglipConfig& cfg, std::shared_ptr<const io::WeightStore> weights,
                         const ClipOptions& options) {
  if (!weights) throw Error("SiglipModel", "no weights");
  impl_ = std::make_unique<Impl>(cfg, *weights, options);
  impl_->keep = std::move(weights);
}

SiglipModel::~SiglipModel() = default;
SiglipModel::SiglipModel(SiglipModel&&) noexcept = default;
SiglipModel& SiglipModel::operator=(SiglipModel&&) noexcept = default;

const SiglipConfig& SiglipModel::config() const { return impl_->cfg; }
float SiglipModel::logit_scale() const { return impl_->logit_scale; }
float SiglipModel::logit_bias() const { return impl_->logit_bias; }
bool SiglipModel::int8_from_file() const { return impl_->from_file; }
const std::vector<std::string>& SiglipModel::weights_in_place() const { return impl_->in_place; }

void SiglipModel::encode_images(const float* pixel_values, int n, float* out) const {
  if (n < 0) throw Error("pixel_values", "negative batch size " + std::to_string(n));
  if (n == 0) return;
  if (!pixel_values || !out) throw Error("pixel_values", "null buffer");
  const ClipTowerConfig& v = impl_->cfg.vision;
  const int64_t grid = v.image_size / v.patch_size;
  const int per_chunk = static_cast<int>(std::max<int64_t>(1, kMaxRowsPerChunk / (grid * grid)));
  const size_t image_floats = static_cast<size_t>(v.num_channels) * v.image_size * v.image_size;
  const size_t dim = static_cast<size_t>(impl_->cfg.embedding_dim());
  for (int i = 0; i < n; i += per_chunk) {
    const int b = std::min(per_chunk, n - i);
    impl_->encode_image_chunk(pixel_values + static_cast<size_t>(i) * image_floats, b,
                              out + static_cast<size_t>(i) * dim);
  }
}

void SiglipModel::encode_naflex(const float* records, int n, size_t record_floats, float* out) const {
  if (impl_->cfg.num_patches <= 0) throw Error("pixel_values", "not a NaFlex (siglip2) model");
  if (n < 0) throw Error("pixel_values", "negative batch size " + std::to_string(n));
  if (n == 0) return;
  if (!records || !out) throw Error("pixel_values", "null buffer");
  const ClipTowerConfig& v = impl_->cfg.vision;
  const size_t kdim = static_cast<size_t>(v.num_channels) * v.patch_size * v.patch_size;
  const auto max_patches = static_cast<int>(
      std::min<size_t>((record_floats - std::min<size_t>(record_floats, 2)) / kdim, static_cast<size_t>(hf::kMaxSize)));
  const size_t dim = static_cast<size_t>(impl_->cfg.embedding_dim());
  std::vector<std::pair<int, int>> grids;
  std::vector<float> patches;
  int first = 0;
  int64_t rows = 0;
  auto flush = [&](int end) {
    if (!grids.empty()) impl_->encode_naflex_chunk(patches.data(), grids, out + static_cast<size_t>(first) * dim);
    grids.clear();
    patches.clear();
    rows = 0;
    first = end;
  };
  for (int i = 0; i < n; ++i) {
    const float* rec = records + static_cast<size_t>(i) * record_floats;
    // The record's grid (image/naflex_processor.h writes it): whole patch counts whose patches fit in the record.
    const float fh = rec[0], fw = rec[1];
    if (!(fh >= 1 && fw >= 1 && std::floor(fh) == fh && std::floor(fw) == fw &&
          static_cast<double>(fh) * fw <= max_patches))
      throw Error("pixel_values", "image " + std::to_string(i) + " is not a NaFlex record (grid " + std::to_string(fh) +
                                      " x " + std::to_string(fw) + ", at most " + std::to_string(max_patches) +
                                      " patches fit)");
    const int gh = static_cast<int>(fh), gw = static_cast<int>(fw);
    const int64_t np = static_cast<int64_t>(gh) * gw;
    if (!grids.empty() && rows + np > kMaxRowsPerChunk) flush(i);
    grids.emplace_back(gh, gw);
    patches.insert(patches.end(), rec + 2, rec + 2 + np * static_cast<int64_t>(kdim));
    rows += np;
  }
  flush(n);
}

void SiglipModel::encode_texts(const std::vector<std::vector<int32_t>>& ids, int32_t pad_id, float* out,
                               int padded_length, bool pad_left) const {
  const ClipTowerConfig& t = impl_->cfg.text;
  const int padded = padded_length == 0 ? t.max_positions : padded_length;
  if (padded < 1 || padded > t.max_positions)
    throw Error("encode_texts", "padded length " + std::to_string(padded) + " outside 1..max_position_embeddings " +
                                    std::to_string(t.max_positions));
  if (pad_id < 0 || pad_id >= t.vocab_size)
    throw Error("pad_id", "token id " + std::to_string(pad_id) + " is outside the vocabulary (size " +
                              std::to_string(t.vocab_size) + ")");
  const char* limit = padded == t.max_positions ? "max_position_embeddings" : "the padded length";
  for (size_t i = 0; i < ids.size(); ++i) check_token_ids(ids[i], i, padded, limit, t.vocab_size);
  if (ids.empty()) return;
  if (!out) throw Error("encode_texts", "null output buffer");
  const size_t dim = static_cast<size_t>(impl_->cfg.embedding_dim());
  std::vector<const std::vector<int32_t>*> seqs;
  std::vector<float*> rows;
  int64_t chunk_rows = 0;
  auto flush = [&] {
    if (!seqs.empty()) impl_->encode_text_chunk(seqs, pad_id, padded, pad_left, rows.data());
    seqs.clear();
    rows.clear();
    chunk_rows = 0;
  };
  for (size_t i = 0; i < ids.size(); ++i) {
    if (chunk_rows + static_cast<int64_t>(ids[i].size()) + 1 > kMaxRowsPerChunk) flush();
    seqs.push_back(&ids[i]);
    rows.push_back(out + i * dim);
    chunk_rows += static_cast<int64_t>(ids[i].size()) + 1;
  }
  flush();
}

}  // namespace zeroshot::models
