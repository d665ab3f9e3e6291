#include "models/clip.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include <sys/mman.h>
#include <unistd.h>

#include "io/json.h"
#include "io/safetensors.h"
#include "models/encoder_layers.h"
#include "models/hf_config.h"
#include "models/int8_weights.h"
#include "models/token_ids.h"
#include "models/weight_loader.h"
#include "nn/ops.h"
#include "nn/thread_pool.h"
#include "util/trace.h"
#include "zeroshot/error.h"

namespace zeroshot::models {

// ---------------------------------------------------------------------------------------------- config

namespace {

nn::Act get_act(const hf::Fields& f) {
  if (!f.has("hidden_act")) return nn::Act::QuickGelu;  // HF default for both towers
  const std::string s = f.text("hidden_act", "");
  if (s == "quick_gelu") return nn::Act::QuickGelu;
  if (s == "gelu") return nn::Act::Gelu;
  if (s == "gelu_new" || s == "gelu_pytorch_tanh") return nn::Act::GeluTanh;
  f.fail("hidden_act \"" + s + "\" is not supported (expected quick_gelu, gelu, gelu_new or gelu_pytorch_tanh)");
}

void check_heads(const ClipTowerConfig& t, const hf::Fields& f) {
  if (t.hidden_size % t.num_heads != 0)
    f.fail("hidden_size " + std::to_string(t.hidden_size) + " is not divisible by num_attention_heads " +
           std::to_string(t.num_heads));
}

}  // namespace

ClipConfig ClipConfig::load(const std::string& path) {
  const io::Json j = hf::load(path, "clip");
  ClipConfig c;
  // Defaults are those of transformers' CLIPTextConfig / CLIPVisionConfig / CLIPConfig. A "<name>_dict" (old
  // checkpoints) takes precedence over "<name>"; missing means all defaults.
  const io::Json tj = hf::sub_config(j, {"text_config_dict", "text_config"}, path);
  const hf::Fields t{tj, path, "text_config."};
  c.text.vocab_size = t.size("vocab_size", 49408);
  c.text.hidden_size = t.size("hidden_size", 512);
  c.text.intermediate_size = t.size("intermediate_size", 2048);
  c.text.num_layers = t.size("num_hidden_layers", 12);
  c.text.num_heads = t.size("num_attention_heads", 8);
  c.text.max_positions = t.size("max_position_embeddings", 77);
  c.text.act = get_act(t);
  c.text.layer_norm_eps = t.non_negative("layer_norm_eps", 1e-5f);
  c.text.eos_token_id = 49407;
  if (t.has("eos_token_id")) {
    const io::Json& v = tj["eos_token_id"];
    if (!v.is_number_integer() || v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX)
      t.fail("eos_token_id must be an integer, got " + hf::json_str(v));
    c.text.eos_token_id = static_cast<int>(v.get<int64_t>());
  }
  check_heads(c.text, t);

  const io::Json vj = hf::sub_config(j, {"vision_config_dict", "vision_config"}, path);
  const hf::Fields v{vj, path, "vision_config."};
  c.vision.hidden_size = v.size("hidden_size", 768);
  c.vision.intermediate_size = v.size("intermediate_size", 3072);
  c.vision.num_layers = v.size("num_hidden_layers", 12);
  c.vision.num_heads = v.size("num_attention_heads", 12);
  c.vision.num_channels = v.size("num_channels", 3);
  c.vision.image_size = v.size("image_size", 224);
  c.vision.patch_size = v.size("patch_size", 32);
  c.vision.act = get_act(v);
  c.vision.layer_norm_eps = v.non_negative("layer_norm_eps", 1e-5f);
  check_heads(c.vision, v);
  if (c.vision.image_size % c.vision.patch_size != 0)
    v.fail("image_size " + std::to_string(c.vision.image_size) + " is not divisible by patch_size " +
           std::to_string(c.vision.patch_size));
  const int64_t grid = c.vision.image_size / c.vision.patch_size;
  if (grid * grid + 1 > hf::kMaxSize) v.fail("image_size / patch_size gives an absurd number of patches");

  // CLIPModel uses the top-level projection_dim (the towers' own projection_dim is ignored).
  c.projection_dim = hf::Fields{j, path, ""}.size("projection_dim", 512);
  return c;
}

// ---------------------------------------------------------------------------------------------- model

namespace {

using Norm = NormWeights;

using Layer = EncoderLayer;

// Rows (tokens x sequences) run through the encoder at once: bounds the activation memory of a large batch
// (~70 MB for ViT-B, ~90 MB for ViT-L) while keeping GEMMs large enough to be efficient.
constexpr int64_t kMaxRowsPerChunk = 2048;

// The activation buffers of one encode call, carved from a per-thread block that is kept between calls: fresh
// multi-megabyte allocations would be page-faulted in (and zeroed by the kernel) on every call.
class Workspace {
 public:
  explicit Workspace(size_t floats) {
    Block& b = block();
    if (b.size < floats) {
      b.p.reset();  // free first: never hold both
      b.p.reset(new float[floats]);
      b.size = floats;
    }
    next_ = b.p.get();
    end_ = next_ + floats;
  }
  float* take(size_t n) {
    float* r = next_;
    next_ += (n + 15) & ~static_cast<size_t>(15);  // 64-byte steps keep every buffer aligned like the first
    if (next_ > end_) throw Error("Workspace", "internal error: buffer sizes");
    return r;
  }
  static size_t padded(size_t n) { return (n + 15) & ~static_cast<size_t>(15); }

 private:
  struct Block {
    std::unique_ptr<float[]> p;
    size_t size = 0;
  };
  static Block& block() {
    thread_local Block b;
    return b;
  }
  float* next_;
  float* end_;
};

// The layers that run in the model's precision: the encoder blocks and the patch embedding (int8 there moved the
// min cosine to f32 on 64 imagenet-samples photos with random ViT-B/32 weights from 0.99960 to 0.99957, and it is
// ~20% of the int8 work when left in f32). The projections (tiny) and everything outside the GEMMs stay f32, except
// attention at int8 (nn::attention_precision).
struct Plan {
  Precision blocks = Precision::F32;
  Precision patch = Precision::F32;
};
Plan plan_for(Precision p) { return {p, p}; }

}  // namespace

struct ClipModel::Impl {
  ClipConfig cfg;
  Plan plan;
  std::shared_ptr<const io::WeightStore> keep;      // set in zero-copy mode
  bool from_file = false;                           // int8 layers came from the int8 weights file
  std::shared_ptr<const PackedWeightsFile> packed;  // mapped panels that layers use in place
  std::vector<std::unique_ptr<float[]>> owned;
  std::vector<std::string> in_place;
  std::unique_ptr<nn::ThreadPool> pool;

  // vision
  const float* class_emb = nullptr;
  nn::PackedLinear patch;  // [D, C*P*P]: the conv as a GEMM over unrolled patches
  const float* vision_pos = nullptr;
  Norm pre_ln, post_ln;
  std::vector<Layer> vision_layers;
  nn::PackedLinear visual_proj;
  // text
  const float* token_emb = nullptr;
  const float* text_pos = nullptr;
  std::vector<Layer> text_layers;
  Norm final_ln;
  nn::PackedLinear text_proj;
  float logit_scale = 0.0f;
  // The text tower's linear layers are packed on first use when the store is kept (zero-copy mode): a classify
  // with a cached label set never runs the text tower, and packing it is ~30% of a ViT-B/32 load.
  bool text_deferred = false;
  LoaderOptions text_options;
  std::once_flag text_once;

  void load_text_layers(WeightLoader& w) {
    text_layers = load_encoder_layers(w, "text_model", cfg.text, plan.blocks);
    text_proj = w.matrix("text_projection.weight", {cfg.projection_dim, cfg.text.hidden_size}, "", Precision::F32);
  }

  // Builds the deferred text tower once (concurrent callers wait for it); a failure is thrown to every caller
  // and tried again on the next call.
  void ensure_text() {
    if (!text_deferred) return;
    std::call_once(text_once, [this] {
      trace::Phase p("build text tower");
      WeightLoader w(*keep, "CLIP", text_options);
      load_text_layers(w);
      for (auto& b : w.take_buffers()) owned.push_back(std::move(b));
    });
  }

  Impl(const ClipConfig& c, const io::WeightStore& ws, bool zc, const ClipOptions& opt)
      : cfg(c), plan(plan_for(opt.precision)) {
    const ClipTowerConfig& v = cfg.vision;
    const ClipTowerConfig& t = cfg.text;
    const int64_t vd = v.hidden_size, td = t.hidden_size, proj = cfg.projection_dim;
    const int64_t grid = v.image_size / v.patch_size;
    pool = std::make_unique<nn::ThreadPool>(opt.threads);
    LoaderOptions lo;
    lo.zero_copy = zc;
    lo.pool = pool.get();
    if (opt.precision == Precision::Int8 || opt.precision == Precision::Int4) lo.int8_file = opt.int8_weights;
    lo.int8_capture = opt.int8_capture;
    lo.on_quantized = opt.on_quantized;
    lo.packed = packed = opt.packed;
    lo.packed_capture = opt.packed_capture;
    WeightLoader w(ws, "CLIP", lo);
    from_file = w.int8_from_file();
    // Vision first: a wrong vision width is reported on its first tensor.
    class_emb = w.tensor("vision_model.embeddings.class_embedding", {vd});
    patch = w.matrix("vision_model.embeddings.patch_embedding.weight", {vd, v.num_channels, v.patch_size, v.patch_size},
                     "", plan.patch);
    vision_pos = w.tensor("vision_model.embeddings.position_embedding.weight", {grid * grid + 1, vd});
    pre_ln = w.norm("vision_model.pre_layrnorm", vd);
    vision_layers = load_encoder_layers(w, "vision_model", v, plan.blocks);
    post_ln = w.norm("vision_model.post_layernorm", vd);
    visual_proj = w.matrix("visual_projection.weight", {proj, vd}, "", Precision::F32);

    token_emb = w.tensor("text_model.embeddings.token_embedding.weight", {t.vocab_size, td});
    text_pos = w.tensor("text_model.embeddings.position_embedding.weight", {t.max_positions, td});
    // Deferred only where the store outlives the constructor and nothing waits for the weights being converted
    // (save_int8_weights captures every quantized layer, a packed weights capture every packed one).
    text_deferred = zc && !opt.int8_capture && !opt.packed_capture;
    if (text_deferred) {
      check_encoder_layers(w, "text_model", t);
      w.check_matrix("text_projection.weight", {proj, td});
      text_options = lo;
      text_options.int8_checked = w.int8_from_file();
      if (!text_options.int8_checked) text_options.int8_file.reset();
    } else {
      load_text_layers(w);
    }
    final_ln = w.norm("text_model.final_layer_norm", td);
    logit_scale = w.scalar("logit_scale");
    w.check_unused();
    owned = w.take_buffers();
    in_place = w.in_place();
  }

  // One pre-LN encoder layer over x [sum(lens), D] (sequences back to back), in place. scratch: encoder_scratch().
  // vv_x (explanation maps only): the v-v path of CLIP Surgery beside x, += out_proj(v-v attention(ln1(x))).
  void run_layer(const Layer& l, const ClipTowerConfig& tc, float* x, const std::vector<int>& lens, int64_t rows,
                 bool causal, float* scratch, float* vv_x = nullptr) const {
    const int d = tc.hidden_size, m = static_cast<int>(rows);
    const size_t n = static_cast<size_t>(rows) * d;
    float* qkv = scratch;      // rows x 3d
    float* ctx = qkv + 3 * n;  // rows x d
    float* mlp = ctx + n;      // rows x intermediate
    nn::ThreadPool* p = pool.get();
    const int head_dim = d / tc.num_heads;
    // head_dim ** -0.5 as Python computes it (double), then used as a float.
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
    // The layer norms are applied as the q|k|v and fc1 products read their rows (nothing else reads them).
    const nn::RowLayerNorm ln1{l.ln1.g, l.ln1.b, tc.layer_norm_eps}, ln2{l.ln2.g, l.ln2.b, tc.layer_norm_eps};
    l.qkv.forward(x, m, qkv, p, nn::LinearPost::store(), &ln1);
    if (vv_x) {
      // Value-value attention: softmax(v v^T * scale) v per head, with the block's own v and scale, then out_proj
      // (its bias included) added to the v-v path; the path skips the MLP (CLIP Surgery's dual-path block).
      nn::attention(qkv + 2 * d, qkv + 2 * d, qkv + 2 * d, 3L * d, lens, tc.num_heads, head_dim, scale, false, ctx, d,
                    p, nn::attention_precision(plan.blocks));
      l.out.forward(ctx, m, vv_x, p, nn::LinearPost::accumulate());
    }
    nn::attention(qkv, qkv + d, qkv + 2 * d, 3L * d, lens, tc.num_heads, head_dim, scale, causal, ctx, d, p,
                  nn::attention_precision(plan.blocks));
    l.out.forward(ctx, m, x, p, nn::LinearPost::accumulate());  // x += out_proj(ctx)
    l.fc1.forward(x, m, mlp, p, nn::LinearPost::activate(tc.act), &ln2);
    l.fc2.forward(mlp, m, x, p, nn::LinearPost::accumulate());  // x += fc2(act(fc1(ln2(x))))
  }

  static size_t encoder_scratch(const ClipTowerConfig& tc, int64_t rows) {
    return static_cast<size_t>(rows) *
           (4 * static_cast<size_t>(tc.hidden_size) + static_cast<size_t>(tc.intermediate_size));
  }

  // Patch embedding + class token + positions for b images: x [b * (1 + patches), D] (before pre_layrnorm).
  // patches, pe: scratch of b * patches * C*P*P and b * patches * D floats.
  void embed_patches(const float* pixels, int b, float* patches, float* pe, float* x) const {
    const ClipTowerConfig& v = cfg.vision;
    const int d = v.hidden_size, c = v.num_channels, ps = v.patch_size, size = v.image_size;
    const int grid = size / ps, np = grid * grid, seq = np + 1, kdim = c * ps * ps;
    nn::ThreadPool* p = pool.get();
    // Patch embedding = Conv2d(kernel = stride = patch, no bias) as a GEMM over the unrolled patches, whose
    // (channel, ky, kx) order matches the weight's [D, C, P, P] layout; patches in row-major grid order.
    nn::parallel_ranges(p, static_cast<long>(b) * np, 16, [&](long r0, long r1) {
      for (long r = r0; r < r1; ++r) {
        const long img = r / np, py = (r % np) / grid, px = r % grid;
        const float* src = pixels + img * static_cast<long>(c) * size * size;
        float* dst = patches + r * kdim;
        for (int ch = 0; ch < c; ++ch)
          for (int ky = 0; ky < ps; ++ky) {
            const float* row = src + (static_cast<long>(ch) * size + py * ps + ky) * size + px * ps;
            std::copy(row, row + ps, dst + (static_cast<long>(ch) * ps + ky) * ps);
          }
      }
    });
    patch.forward(patches, b * np, pe, p);
    for (int img = 0; img < b; ++img) {
      float* xi = x + static_cast<size_t>(img) * seq * d;
      for (int j = 0; j < d; ++j) xi[j] = class_emb[j] + vision_pos[j];
      for (int t = 0; t < np; ++t) {
        const float* src = pe + (static_cast<size_t>(img) * np + t) * d;
        const float* pos = vision_pos + static_cast<size_t>(t + 1) * d;
        float* dst = xi + static_cast<size_t>(t + 1) * d;
        for (int j = 0; j < d; ++j) dst[j] = src[j] + pos[j];
      }
    }
  }

  void encode_image_chunk(const float* pixels, int b, float* out) const {
    const ClipTowerConfig& v = cfg.vision;
    const int d = v.hidden_size, c = v.num_channels, ps = v.patch_size, size = v.image_size;
    const int grid = size / ps, np = grid * grid, seq = np + 1, kdim = c * ps * ps;
    const int64_t rows = static_cast<int64_t>(b) * seq;
    nn::ThreadPool* p = pool.get();
    const size_t n_patches = static_cast<size_t>(b) * np * kdim, n_pe = static_cast<size_t>(b) * np * d,
                 n_x = static_cast<size_t>(rows) * d, n_scratch = encoder_scratch(v, rows),
                 n_pooled = static_cast<size_t>(b) * d;
    Workspace ws(Workspace::padded(n_patches) + Workspace::padded(n_pe) + Workspace::padded(n_x) +
                 Workspace::padded(n_scratch) + Workspace::padded(n_pooled));
    float* patches = ws.take(n_patches);
    float* pe = ws.take(n_pe);
    float* x = ws.take(n_x);
    float* scratch = ws.take(n_scratch);
    float* pooled = ws.take(n_pooled);
    embed_patches(pixels, b, patches, pe, x);
    nn::layer_norm(x, rows, d, pre_ln.g, pre_ln.b, v.layer_norm_eps, x, p);
    const std::vector<int> lens(static_cast<size_t>(b), seq);
    for (const Layer& l : vision_layers) run_layer(l, v, x, lens, rows, false, scratch);

    // Pooled output: the class token of each image, post-LayerNorm, projected.
    for (int img = 0; img < b; ++img)
      std::copy(x + static_cast<size_t>(img) * seq * d, x + (static_cast<size_t>(img) * seq + 1) * d,
                pooled + static_cast<size_t>(img) * d);
    nn::layer_norm(pooled, b, d, post_ln.g, post_ln.b, v.layer_norm_eps, pooled, p);
    visual_proj.forward(pooled, b, out, p);
  }

  // One image through both paths of CLIP Surgery (see encode_image_tokens in clip.h): out [(1 + patches), proj].
  void encode_image_tokens_one(const float* pixels, int vv_blocks, float* out) const {
    const ClipTowerConfig& v = cfg.vision;
    const int d = v.hidden_size, kdim = v.num_channels * v.patch_size * v.patch_size;
    const int grid = v.image_size / v.patch_size, np = grid * grid, seq = np + 1;
    nn::ThreadPool* p = pool.get();
    const size_t n_patches = static_cast<size_t>(np) * kdim, n_pe = static_cast<size_t>(np) * d,
                 n_x = static_cast<size_t>(seq) * d, n_scratch = encoder_scratch(v, seq);
    Workspace ws(Workspace::padded(n_patches) + Workspace::padded(n_pe) + 2 * Workspace::padded(n_x) +
                 Workspace::padded(n_scratch));
    float* patches = ws.take(n_patches);
    float* pe = ws.take(n_pe);
    float* x = ws.take(n_x);
    float* vv = ws.take(n_x);
    float* scratch = ws.take(n_scratch);
    embed_patches(pixels, 1, patches, pe, x);
    nn::layer_norm(x, seq, d, pre_ln.g, pre_ln.b, v.layer_norm_eps, x, p);
    const std::vector<int> lens{seq};
    const int first_vv = v.num_layers - vv_blocks;
    for (int i = 0; i < v.num_layers; ++i) {
      if (i == first_vv) std::copy(x, x + n_x, vv);  // the v-v path starts from the first dual block's input
      run_layer(vision_layers[static_cast<size_t>(i)], v, x, lens, seq, false, scratch, i >= first_vv ? vv : nullptr);
    }
    // Row 0: the original path's class token (the image embedding, as CLIP Surgery keeps it); rows 1..: the v-v
    // path's patch tokens. All post-LayerNorm and projected, as the class token is.
    std::copy(x, x + d, vv);
    nn::layer_norm(vv, seq, d, post_ln.g, post_ln.b, v.layer_norm_eps, vv, p);
    visual_proj.forward(vv, seq, out, p);
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
    const size_t n_x = static_cast<size_t>(rows) * d, n_scratch = encoder_scratch(t, rows),
                 n_pooled = static_cast<size_t>(b) * d, n_proj = static_cast<size_t>(b) * cfg.projection_dim;
    Workspace ws(Workspace::padded(n_x) + Workspace::padded(n_scratch) + Workspace::padded(n_pooled) +
                 Workspace::padded(n_proj));
    float* x = ws.take(n_x);
    float* scratch = ws.take(n_scratch);
    float* pooled = ws.take(n_pooled);
    float* projected = ws.take(n_proj);
    for (int s = 0; s < b; ++s)
      for (int i = 0; i < lens[s]; ++i) {
        const float* tok = token_emb + static_cast<size_t>((*seqs[s])[i]) * d;
        const float* pos = text_pos + static_cast<size_t>(i) * d;
        float* dst = x + static_cast<size_t>(starts[s] + i) * d;
        for (int j = 0; j < d; ++j) dst[j] = tok[j] + pos[j];
      }
    for (const Layer& l : text_layers) run_layer(l, t, x, lens, rows, true, scratch);

    // Pooled row: eos_token_id == 2 is the legacy config value (before transformers PR #24773), for which HF
    // takes the argmax of the ids (the eot token has the highest id); otherwise the first eos_token_id position
    // (argmax of a 0/1 mask: position 0 when there is none). torch.argmax returns the first maximum.
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
      const float* row = x + static_cast<size_t>(starts[s] + at) * d;
      std::copy(row, row + d, pooled + static_cast<size_t>(s) * d);
    }
    nn::layer_norm(pooled, b, d, final_ln.g, final_ln.b, t.layer_norm_eps, pooled, p);
    text_proj.forward(pooled, b, projected, p);
    for (int s = 0; s < b; ++s)
      std::copy(projected + static_cast<size_t>(s) * cfg.projection_dim,
                projected + static_cast<size_t>(s + 1) * cfg.projection_dim, out_rows[s]);
  }
};

namespace {
ClipOptions with_threads(int threads) {
  ClipOptions o;
  o.threads = threads;
  return o;
}
}  // namespace

ClipModel::ClipModel(const ClipConfig& cfg, const io::WeightStore& weights, int threads)
    : ClipModel(cfg, weights, with_threads(threads)) {}

ClipModel::ClipModel(const ClipConfig& cfg, std::shared_ptr<const io::WeightStore> weights, int threads)
    : ClipModel(cfg, std::move(weights), with_threads(threads)) {}

ClipModel::ClipModel(const ClipConfig& cfg, const io::WeightStore& weights, const ClipOptions& options)
    : impl_(std::make_unique<Impl>(cfg, weights, false, options)) {}

ClipModel::ClipModel(const ClipConfig& cfg, std::shared_ptr<const io::WeightStore> weights,
                     const ClipOptions& options) {
  if (!weights) throw Error("ClipModel", "no weights");
  impl_ = std::make_unique<Impl>(cfg, *weights, true, options);
  impl_->keep = std::move(weights);
}

ClipModel::~ClipModel() = default;
ClipModel::ClipModel(ClipModel&&) noexcept = default;
ClipModel& ClipModel::operator=(ClipModel&&) noexcept = default;

const ClipConfig& ClipModel::config() const { return impl_->cfg; }
float ClipModel::logit_scale() const { return impl_->logit_scale; }
Precision ClipModel::precision() const { return impl_->plan.blocks; }
bool ClipModel::int8_from_file() const { return impl_->from_file; }
const std::vector<std::string>& ClipModel::weights_in_place() const { return impl_->in_place; }

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
    impl_->encode_image_chunk(pixel_values + i * image_floats, b,
                              out + static_cast<size_t>(i) * impl_->cfg.projection_dim);
  }
}

void ClipModel::encode_image_tokens(const float* pixel_values, int vv_blocks, float* out) const {
  const ClipTowerConfig& v = impl_->cfg.vision;
  if (!pixel_values || !out) throw Error("pixel_values", "null buffer");
  if (vv_blocks < 1 || vv_blocks > v.num_layers)
    throw Error("vv_blocks", std::to_string(vv_blocks) + " is outside 1.." + std::to_string(v.num_layers) +
                                 " (the vision encoder's layers)");
  impl_->encode_image_tokens_one(pixel_values, vv_blocks, out);
}

void ClipModel::encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) const {
  const ClipTowerConfig& t = impl_->cfg.text;
  for (size_t i = 0; i < ids.size(); ++i)
    check_token_ids(ids[i], i, t.max_positions, "max_position_embeddings", t.vocab_size);
  if (ids.empty()) return;
  if (!out) throw Error("encode_texts", "null output buffer");
  impl_->ensure_text();
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

// ---------------------------------------------------------------------------------------------- int8 weights file

namespace zeroshot::models {

void save_int8_weights(const ClipConfig& cfg, const io::WeightStore& weights, const std::string& path,
                       const std::function<void(size_t, size_t)>& progress) {
  // The model built at int8 with the loader capturing what it quantizes: the file holds exactly the layers an
  // int8 load quantizes (the patch embedding and six matrices per encoder layer), under their own names.
  const size_t total = 1 + 6 * static_cast<size_t>(cfg.vision.num_layers + cfg.text.num_layers);
  std::vector<Int8Record> records;
  ClipOptions o;
  o.threads = 1;
  o.precision = Precision::Int8;
  o.int8_capture = &records;
  if (progress) o.on_quantized = [&](size_t done) { progress(done, total); };
  {
    // Zero-copy over the caller's store (it outlives this call): nothing but the int8 layers is copied.
    const ClipModel m(cfg, std::shared_ptr<const io::WeightStore>(&weights, [](const io::WeightStore*) {}), o);
  }
  write_int8_weights(records, weights, path);
}

}  // namespace zeroshot::models
