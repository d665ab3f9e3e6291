#include "models/clap.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>

#include "io/json.h"
#include "io/safetensors.h"
#include "models/hf_config.h"
#include "models/token_ids.h"
#include "models/weight_loader.h"
#include "nn/audio_ops.h"
#include "nn/linear.h"
#include "nn/ops.h"
#include "nn/thread_pool.h"
#include "zeroshot/error.h"

namespace zeroshot::models {

// ---------------------------------------------------------------------------------------------- config

namespace {

constexpr int kMaxStages = 8;
using hf::json_str;
using hf::kMaxSize;

nn::Act get_act(const hf::Fields& f, const char* key, nn::Act def) {
  if (!f.has(key)) return def;
  const std::string s = f.text(key, "");
  if (s == "relu") return nn::Act::Relu;
  if (s == "gelu") return nn::Act::Gelu;
  if (s == "gelu_new" || s == "gelu_pytorch_tanh") return nn::Act::GeluTanh;
  if (s == "quick_gelu") return nn::Act::QuickGelu;
  if (s == "silu" || s == "swish") return nn::Act::Silu;
  f.fail(std::string(key) + " \"" + s +
         "\" is not supported (expected relu, gelu, gelu_new, gelu_pytorch_tanh, quick_gelu or silu)");
}

std::string str(int v) { return std::to_string(v); }

void load_audio(const io::Json& aj, ClapAudioConfig& a, const std::string& path) {
  const std::string p = "audio_config.";
  const hf::Fields f{aj, path, p};
  a.window_size = f.size("window_size", a.window_size);
  a.num_mel_bins = f.size("num_mel_bins", a.num_mel_bins);
  a.spec_size = f.size("spec_size", a.spec_size);
  a.patch_size = f.square("patch_size", a.patch_size);
  const int stride = f.square("patch_stride", 4);  // HF default [4, 4], whatever patch_size is
  if (stride != a.patch_size)
    throw Error(path, p + "patch_stride " + str(stride) + " differs from patch_size " + str(a.patch_size) +
                          " (overlapping patches are not supported)");
  a.hidden_size = f.size("hidden_size", a.hidden_size);
  a.patch_embeds_hidden_size = f.size("patch_embeds_hidden_size", a.patch_embeds_hidden_size);
  a.depths = f.list("depths", a.depths, kMaxStages, 1024);
  a.num_heads = f.list("num_attention_heads", a.num_heads, kMaxStages, 1024);
  if (aj.contains("mlp_ratio")) {
    const io::Json& v = aj["mlp_ratio"];
    if (!v.is_number() || !(v.get<double>() > 0.0) || !(v.get<double>() <= 64.0))
      throw Error(path, p + "mlp_ratio must be a positive number, got " + json_str(v));
    a.mlp_ratio = static_cast<float>(v.get<double>());
  }
  a.qkv_bias = f.flag("qkv_bias", a.qkv_bias);
  a.enable_fusion = f.flag("enable_fusion", a.enable_fusion);
  a.enable_patch_layer_norm = f.flag("enable_patch_layer_norm", a.enable_patch_layer_norm);
  if (!f.flag("flatten_patch_embeds", true)) throw Error(path, p + "flatten_patch_embeds false is not supported");
  if (f.integer("patch_embed_input_channels", 1, 1) != 1)
    throw Error(path, p + "patch_embed_input_channels must be 1, got " + json_str(aj["patch_embed_input_channels"]));
  if (aj.contains("fusion_type") && !aj["fusion_type"].is_null()) {
    const io::Json& v = aj["fusion_type"];
    if (!v.is_string()) throw Error(path, p + "fusion_type must be a string or null, got " + json_str(v));
    // HF's patch embedding runs the AFF block for every other value; "channel_map" gives a 4-channel conv
    // that its own forward cannot feed.
    if (a.enable_fusion && v.get<std::string>() == "channel_map")
      throw Error(path, p + "fusion_type \"channel_map\" is not supported");
  }
  a.aff_block_r = f.size("aff_block_r", a.aff_block_r);
  a.layer_norm_eps = f.non_negative("layer_norm_eps", a.layer_norm_eps);
  a.act = get_act(f, "hidden_act", a.act);

  // Geometry HF's code can run (and that this engine implements).
  const int stages = static_cast<int>(a.depths.size());
  if (a.num_heads.size() != a.depths.size())
    throw Error(path, p + "num_attention_heads has " + str(static_cast<int>(a.num_heads.size())) + " entries, depths " +
                          str(stages));
  if (a.spec_size % a.num_mel_bins != 0)
    throw Error(path,
                p + "spec_size " + str(a.spec_size) + " is not a multiple of num_mel_bins " + str(a.num_mel_bins));
  if (static_cast<int64_t>(a.spec_size) * a.spec_size > kMaxSize * 16)
    throw Error(path, p + "spec_size " + str(a.spec_size) + " is too large");
  if (a.spec_size % a.patch_size != 0)
    throw Error(path, p + "spec_size " + str(a.spec_size) + " is not a multiple of patch_size " + str(a.patch_size));
  const int64_t unit = static_cast<int64_t>(a.window_size) << (stages - 1);
  if (a.grid() % unit != 0)
    throw Error(path, p + "spec_size / patch_size = " + str(a.grid()) +
                          " is not a multiple of window_size * 2^(stages - 1) = " + std::to_string(unit) +
                          " (padded windows are not supported)");
  const int64_t last_dim = static_cast<int64_t>(a.patch_embeds_hidden_size) << (stages - 1);
  if (last_dim > kMaxSize) throw Error(path, p + "patch_embeds_hidden_size * 2^(stages - 1) is too large");
  if (a.hidden_size != last_dim)
    throw Error(path, p + "hidden_size " + str(a.hidden_size) +
                          " does not match patch_embeds_hidden_size * 2^(stages - 1) = " + std::to_string(last_dim));
  for (int s = 0; s < stages; ++s) {
    if (a.stage_dim(s) % a.num_heads[s] != 0)
      throw Error(path, p + "stage " + str(s) + " width " + str(a.stage_dim(s)) +
                            " is not divisible by num_attention_heads " + str(a.num_heads[s]));
    if (a.mlp_dim(s) <= 0) throw Error(path, p + "mlp_ratio gives an empty MLP");
  }
  // HF's final "group 2D CNN" reshape needs the last grid split evenly into freq_ratio groups.
  const int last_grid = a.grid() >> (stages - 1), fr = a.freq_ratio();
  if (last_grid < fr || last_grid % (last_grid / fr) != 0)
    throw Error(path,
                p + "final grid " + str(last_grid) + " cannot be grouped by spec_size / num_mel_bins = " + str(fr));
  if (a.enable_fusion && a.spec_size < 3 * a.patch_size)
    throw Error(path,
                p + "spec_size " + str(a.spec_size) + " is narrower than the fusion convolution (3 * patch_size)");
  if (a.enable_fusion && a.patch_embeds_hidden_size / a.aff_block_r < 1)
    throw Error(path, p + "aff_block_r " + str(a.aff_block_r) + " leaves no channels in the fusion block");
}

void load_text(const io::Json& tj, ClapTextConfig& t, const std::string& path) {
  const std::string p = "text_config.";
  const hf::Fields f{tj, path, p};
  t.vocab_size = f.size("vocab_size", t.vocab_size);
  t.hidden_size = f.size("hidden_size", t.hidden_size);
  t.num_layers = f.size("num_hidden_layers", t.num_layers);
  t.num_heads = f.size("num_attention_heads", t.num_heads);
  t.intermediate_size = f.size("intermediate_size", t.intermediate_size);
  t.max_positions = f.size("max_position_embeddings", t.max_positions);
  t.type_vocab_size = f.size("type_vocab_size", t.type_vocab_size);
  t.pad_token_id = f.integer("pad_token_id", t.pad_token_id, 0);
  t.layer_norm_eps = f.non_negative("layer_norm_eps", t.layer_norm_eps);
  t.act = get_act(f, "hidden_act", t.act);
  if (tj.contains("position_embedding_type")) {
    const io::Json& v = tj["position_embedding_type"];
    if (!v.is_string() || v.get<std::string>() != "absolute")
      throw Error(path, p + "position_embedding_type " + json_str(v) + " is not supported (expected \"absolute\")");
  }
  if (t.hidden_size % t.num_heads != 0)
    throw Error(
        path, p + "hidden_size " + str(t.hidden_size) + " is not divisible by num_attention_heads " + str(t.num_heads));
  if (t.pad_token_id + 1 >= t.max_positions)
    throw Error(path, p + "max_position_embeddings " + str(t.max_positions) +
                          " leaves no position after pad_token_id " + str(t.pad_token_id));
}

}  // namespace

ClapConfig ClapConfig::load(const std::string& path) {
  const io::Json j = hf::load(path, "clap");
  // Defaults are those of transformers' ClapAudioConfig / ClapTextConfig / ClapConfig.
  ClapConfig c;
  load_audio(hf::sub_config(j, {"audio_config"}, path), c.audio, path);
  load_text(hf::sub_config(j, {"text_config"}, path), c.text, path);
  // ClapConfig overwrites the towers' projection_dim / projection_hidden_act with its own.
  const hf::Fields top{j, path, ""};
  c.projection_dim = top.size("projection_dim", 512);
  c.projection_act = get_act(top, "projection_hidden_act", nn::Act::Relu);
  return c;
}

// ---------------------------------------------------------------------------------------------- model

namespace {

using Norm = NormWeights;

using nn::PackedLinear;
using nn::Precision;

struct SwinBlock {
  Norm ln_before, ln_after;
  PackedLinear qkv;  // query | key | value stacked along the outputs: one GEMM with 3 x dim outputs
  PackedLinear o, fc1, fc2;
  std::vector<float> bias;  // relative position bias [heads, ws^2, ws^2]
  int shift = 0;
};

struct SwinStage {
  int dim = 0, heads = 0, grid = 0, mlp = 0;
  std::vector<SwinBlock> blocks;
  std::vector<int32_t> perm_plain, perm_shifted;  // window order of the tokens
  std::vector<float> mask;                        // shifted-window mask [windows, ws^2, ws^2] (empty: no shift)
  bool merge = false;                             // patch merging (all stages but the last)
  Norm merge_ln;
  PackedLinear merge_w;
};

struct TextLayer {
  PackedLinear qkv, o, fc1, fc2;  // qkv: query | key | value stacked
  Norm ln_attn, ln_out;
};

// Aff branch: conv1x1 (c -> c/r), BN, ReLU, conv1x1 (c/r -> c), BN.
struct AffBranch {
  PackedLinear c1, c2;
  nn::BatchNormAffine bn1, bn2;
};

// Uninitialized float buffer (std::vector would zero it for nothing), taken from a per-thread cache of blocks
// kept between calls: fresh multi-megabyte allocations would be page-faulted in (and zeroed by the kernel) on
// every call. A thread keeps at most kMaxCached blocks (the largest ones) once its buffers are released.
class Buffer {
 public:
  explicit Buffer(size_t n) {
    n = std::max<size_t>(n, 1);
    std::vector<Block>& c = cache();
    size_t best = c.size();
    for (size_t i = 0; i < c.size(); ++i)
      if (c[i].size >= n && (best == c.size() || c[i].size < c[best].size)) best = i;
    if (best < c.size()) {
      block_ = std::move(c[best]);
      c.erase(c.begin() + static_cast<std::ptrdiff_t>(best));
    } else {
      block_.p.reset(new float[n]);
      block_.size = n;
    }
  }
  ~Buffer() {
    std::vector<Block>& c = cache();
    c.push_back(std::move(block_));
    if (c.size() > kMaxCached)
      c.erase(std::min_element(c.begin(), c.end(), [](const Block& a, const Block& b) { return a.size < b.size; }));
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  float* get() const { return block_.p.get(); }

 private:
  static constexpr size_t kMaxCached = 12;
  struct Block {
    std::unique_ptr<float[]> p;
    size_t size = 0;
  };
  static std::vector<Block>& cache() {
    thread_local std::vector<Block> c;
    return c;
  }
  Block block_;
};

// y = act(norm(x) W^T + b) [rows x out].
void linear_act(const PackedLinear& l, nn::Act act, const float* x, int rows, float* y, nn::ThreadPool* p,
                const nn::RowLayerNorm* norm = nullptr) {
  l.forward(x, rows, y, p, nn::LinearPost::activate(act), norm);
}

// HF builds the patch-embedding, patch-merging and final LayerNorms of HTSAT without passing layer_norm_eps (only
// the Swin blocks use it): torch's default.
constexpr float kTorchLayerNormEps = 1e-5f;

// Text rows (tokens of all sequences) per chunk.
constexpr int64_t kMaxTextRows = 2048;

}  // namespace

struct ClapModel::Impl {
  ClapConfig cfg;
  Precision prec = Precision::F32;  // the Swin blocks, patch merging and RoBERTa layers; the rest stays f32
  std::shared_ptr<const io::WeightStore> keep;
  std::vector<std::unique_ptr<float[]>> owned;
  std::vector<std::string> in_place;
  bool from_file = false;
  std::shared_ptr<const PackedWeightsFile> packed;  // mapped panels that layers use in place
  std::unique_ptr<nn::ThreadPool> pool;

  // audio
  nn::BatchNormAffine mel_bn;
  PackedLinear patch_proj, mel_conv;
  Norm patch_ln;
  AffBranch aff_local, aff_global;
  std::vector<SwinStage> stages;
  Norm audio_ln;
  PackedLinear audio_proj1, audio_proj2;
  // text
  const float* word_emb = nullptr;
  const float* pos_emb = nullptr;
  const float* type_emb = nullptr;
  Norm emb_ln;
  std::vector<TextLayer> text_layers;
  PackedLinear pooler, text_proj1, text_proj2;
  float logit_scale_a = 0.0f, logit_scale_t = 0.0f;

  // ------------------------------------------------------------------------------------------ loading

  nn::BatchNormAffine load_bn(WeightLoader& w, const std::string& p, int64_t c) {
    const float* g = w.tensor(p + ".weight", {c});
    const float* b = w.tensor(p + ".bias", {c});
    const float* mean = w.tensor(p + ".running_mean", {c});
    const float* var = w.tensor(p + ".running_var", {c});
    return nn::batch_norm_affine(mean, var, g, b, static_cast<int>(c), 1e-5);  // torch BatchNorm2d default eps
  }

  void load_audio(WeightLoader& w) {
    const ClapAudioConfig& a = cfg.audio;
    const std::string e = "audio_model.audio_encoder.";
    const int64_t d0 = a.patch_embeds_hidden_size, ps = a.patch_size;
    mel_bn = load_bn(w, e + "batch_norm", a.num_mel_bins);
    patch_proj =
        w.matrix(e + "patch_embed.proj" + ".weight", {d0, 1, ps, ps}, e + "patch_embed.proj" + ".bias", Precision::F32);
    if (a.enable_patch_layer_norm) patch_ln = w.norm(e + "patch_embed.norm", d0);
    if (a.enable_fusion) {
      const int64_t inter = d0 / a.aff_block_r;
      mel_conv = w.matrix(e + "patch_embed.mel_conv2d" + ".weight", {d0, 1, ps, 3 * ps},
                          e + "patch_embed.mel_conv2d" + ".bias", Precision::F32);
      const std::string f = e + "patch_embed.fusion_model.";
      aff_local.c1 =
          w.matrix(f + "local_att.0" + ".weight", {inter, d0, 1, 1}, f + "local_att.0" + ".bias", Precision::F32);
      aff_local.bn1 = load_bn(w, f + "local_att.1", inter);
      aff_local.c2 =
          w.matrix(f + "local_att.3" + ".weight", {d0, inter, 1, 1}, f + "local_att.3" + ".bias", Precision::F32);
      aff_local.bn2 = load_bn(w, f + "local_att.4", d0);
      aff_global.c1 =
          w.matrix(f + "global_att.1" + ".weight", {inter, d0, 1, 1}, f + "global_att.1" + ".bias", Precision::F32);
      aff_global.bn1 = load_bn(w, f + "global_att.2", inter);
      aff_global.c2 =
          w.matrix(f + "global_att.4" + ".weight", {d0, inter, 1, 1}, f + "global_att.4" + ".bias", Precision::F32);
      aff_global.bn2 = load_bn(w, f + "global_att.5", d0);
    }
    const int ws_ = a.window_size, nstages = static_cast<int>(a.depths.size());
    const int64_t table_rows = static_cast<int64_t>(2 * ws_ - 1) * (2 * ws_ - 1);
    for (int s = 0; s < nstages; ++s) {
      SwinStage st;
      st.dim = a.stage_dim(s);
      st.heads = a.num_heads[s];
      st.grid = a.grid() >> s;
      st.mlp = a.mlp_dim(s);
      const int64_t d = st.dim;
      // HF: odd blocks shift by window / 2, unless the map is not larger than one window.
      const int shift = st.grid > ws_ ? ws_ / 2 : 0;
      for (int b = 0; b < a.depths[s]; ++b) {
        const std::string p = e + "layers." + std::to_string(s) + ".blocks." + std::to_string(b) + ".";
        SwinBlock blk;
        blk.ln_before = w.norm(p + "layernorm_before", d);
        blk.qkv = w.linear({p + "attention.self.query", p + "attention.self.key", p + "attention.self.value"}, d, d,
                           a.qkv_bias, prec);
        const float* table = w.tensor(p + "attention.self.relative_position_bias_table", {table_rows, st.heads});
        blk.bias = nn::expand_relative_position_bias(table, ws_, st.heads);
        blk.o = w.linear({p + "attention.output.dense"}, d, d, true, prec);
        blk.ln_after = w.norm(p + "layernorm_after", d);
        blk.fc1 = w.linear({p + "intermediate.dense"}, st.mlp, d, true, prec);
        blk.fc2 = w.linear({p + "output.dense"}, d, st.mlp, true, prec);
        blk.shift = b % 2 == 1 ? shift : 0;
        st.blocks.push_back(std::move(blk));
      }
      st.perm_plain = nn::window_permutation(st.grid, ws_, 0);
      if (shift > 0 && a.depths[s] > 1) {
        st.perm_shifted = nn::window_permutation(st.grid, ws_, shift);
        st.mask = nn::shifted_window_mask(st.grid, ws_, shift);
      }
      if (s + 1 < nstages) {
        const std::string p = e + "layers." + std::to_string(s) + ".downsample.";
        st.merge = true;
        st.merge_ln = w.norm(p + "norm", 4 * d);
        st.merge_w = w.linear({p + "reduction"}, 2 * d, 4 * d, false, prec);
      }
      stages.push_back(std::move(st));
    }
    audio_ln = w.norm(e + "norm", a.hidden_size);
    audio_proj1 = w.linear({"audio_projection.linear1"}, cfg.projection_dim, a.hidden_size, true, Precision::F32);
    audio_proj2 = w.linear({"audio_projection.linear2"}, cfg.projection_dim, cfg.projection_dim, true, Precision::F32);
  }

  void load_text(WeightLoader& w) {
    const ClapTextConfig& t = cfg.text;
    const int64_t h = t.hidden_size;
    word_emb = w.tensor("text_model.embeddings.word_embeddings.weight", {t.vocab_size, h});
    pos_emb = w.tensor("text_model.embeddings.position_embeddings.weight", {t.max_positions, h});
    type_emb = w.tensor("text_model.embeddings.token_type_embeddings.weight", {t.type_vocab_size, h});
    emb_ln = w.norm("text_model.embeddings.LayerNorm", h);
    for (int i = 0; i < t.num_layers; ++i) {
      const std::string p = "text_model.encoder.layer." + std::to_string(i) + ".";
      TextLayer l;
      const std::string a = p + "attention.self.";
      l.qkv = w.linear({a + "query", a + "key", a + "value"}, h, h, true, prec);
      l.o = w.linear({p + "attention.output.dense"}, h, h, true, prec);
      l.ln_attn = w.norm(p + "attention.output.LayerNorm", h);
      l.fc1 = w.linear({p + "intermediate.dense"}, t.intermediate_size, h, true, prec);
      l.fc2 = w.linear({p + "output.dense"}, h, t.intermediate_size, true, prec);
      l.ln_out = w.norm(p + "output.LayerNorm", h);
      text_layers.push_back(std::move(l));
    }
    pooler = w.linear({"text_model.pooler.dense"}, h, h, true, Precision::F32);
    text_proj1 = w.linear({"text_projection.linear1"}, cfg.projection_dim, h, true, Precision::F32);
    text_proj2 = w.linear({"text_projection.linear2"}, cfg.projection_dim, cfg.projection_dim, true, Precision::F32);
  }

  Impl(const ClapConfig& c, const io::WeightStore& ws, const ClapOptions& opt) : cfg(c), prec(opt.precision) {
    if (cfg.audio.input_frames < 1 || cfg.audio.input_frames > cfg.audio.spec_size * cfg.audio.freq_ratio())
      throw Error("ClapModel", "audio input_frames " + std::to_string(cfg.audio.input_frames) + " outside [1, " +
                                   std::to_string(cfg.audio.spec_size * cfg.audio.freq_ratio()) + "]");
    // The pool first: it shares the packing of each layer at load (the cold start of a load without packed file).
    pool = std::make_unique<nn::ThreadPool>(opt.threads);
    LoaderOptions lo;
    lo.pool = pool.get();
    if (prec == Precision::Int8 || prec == Precision::Int4) lo.int8_file = opt.int8_weights;
    lo.int8_capture = opt.int8_capture;
    lo.on_quantized = opt.on_quantized;
    lo.packed = packed = opt.packed;
    lo.packed_capture = opt.packed_capture;
    WeightLoader w(ws, "CLAP", lo);
    from_file = w.int8_from_file();
    load_audio(w);
    load_text(w);
    logit_scale_a = w.scalar("logit_scale_a");
    logit_scale_t = w.scalar("logit_scale_t");
    w.check_unused();
    owned = w.take_buffers();
    in_place = w.in_place();
  }

  // ------------------------------------------------------------------------------------------ audio

  // Patch embedding with fusion of channels 1..3 (LAION's AFF) for the flagged clips, then LayerNorm.
  // img: b x [channels, S, S]; out: b x [grid^2, D].
  void patch_embed(const float* img, int b, int channels, const std::vector<char>& fuse, float* out,
                   nn::ThreadPool* p) const {
    const ClapAudioConfig& a = cfg.audio;
    const int s = a.spec_size, ps = a.patch_size, g = a.grid(), d = a.patch_embeds_hidden_size;
    const long tokens = static_cast<long>(g) * g;
    const size_t plane = static_cast<size_t>(s) * s;
    // Conv2d(1, D, ps, stride ps) on channel 0 = a GEMM over the unrolled patches.
    Buffer patches(static_cast<size_t>(b) * tokens * ps * ps);
    for (int i = 0; i < b; ++i)
      nn::unroll_patches(img + static_cast<size_t>(i) * channels * plane, 1, s, s, ps, ps,
                         patches.get() + static_cast<size_t>(i) * tokens * ps * ps, p);
    patch_proj.forward(patches.get(), static_cast<int>(b * tokens), out, p);

    const int lw = s / (3 * ps);  // mel_conv2d output width per channel
    for (int i = 0; i < b; ++i) {
      if (!fuse[i]) continue;
      float* gi = out + static_cast<size_t>(i) * tokens * d;
      // Local branch: channels 1..3 through mel_conv2d -> [3, g, lw, D], laid side by side along the time axis
      // (HF's permute + flatten), zero-padded to g columns.
      const long lrows = 3L * g * lw;
      Buffer lp(static_cast<size_t>(lrows) * ps * 3 * ps);
      nn::unroll_patches(img + (static_cast<size_t>(i) * channels + 1) * plane, 3, s, s, ps, 3 * ps, lp.get(), p);
      Buffer lc(static_cast<size_t>(lrows) * d);
      mel_conv.forward(lp.get(), static_cast<int>(lrows), lc.get(), p);
      Buffer local(static_cast<size_t>(tokens) * d);
      std::fill(local.get(), local.get() + tokens * d, 0.0f);
      for (int ch = 0; ch < 3; ++ch)
        for (int r = 0; r < g; ++r)
          for (int j = 0; j < lw; ++j) {
            const float* src = lc.get() + ((static_cast<size_t>(ch) * g + r) * lw + j) * d;
            std::copy(src, src + d, local.get() + (static_cast<size_t>(r) * g + ch * lw + j) * d);
          }
      // AFF: xa = g + l; w = sigmoid(local_att(xa) + global_att(xa)); out = 2 g w + 2 l (1 - w).
      Buffer xa(static_cast<size_t>(tokens) * d);
      for (long k = 0; k < tokens * d; ++k) xa.get()[k] = gi[k] + local.get()[k];
      const int inter = d / a.aff_block_r;
      Buffer h1(static_cast<size_t>(tokens) * inter), latt(static_cast<size_t>(tokens) * d);
      run_aff_branch(aff_local, xa.get(), tokens, d, inter, h1.get(), latt.get(), p);
      std::vector<float> mean(static_cast<size_t>(d)), gh(static_cast<size_t>(inter)), gatt(static_cast<size_t>(d));
      nn::column_mean(xa.get(), tokens, d, mean.data());
      run_aff_branch(aff_global, mean.data(), 1, d, inter, gh.data(), gatt.data(), p);
      nn::aff_combine(gi, local.get(), latt.get(), gatt.data(), tokens, d, gi, p);
    }
    if (a.enable_patch_layer_norm)
      nn::layer_norm(out, b * tokens, d, patch_ln.g, patch_ln.b, kTorchLayerNormEps, out, p);
  }

  void run_aff_branch(const AffBranch& br, const float* x, long rows, int d, int inter, float* h, float* y,
                      nn::ThreadPool* p) const {
    br.c1.forward(x, static_cast<int>(rows), h, p);
    nn::batch_norm_channels_last(h, rows, br.bn1, h, p);
    nn::relu(h, rows * inter, p);
    br.c2.forward(h, static_cast<int>(rows), y, p);
    nn::batch_norm_channels_last(y, rows, br.bn2, y, p);
  }

  struct AudioScratch {
    Buffer xw, qkv, ctx, mlp;
    explicit AudioScratch(size_t act, size_t mlp_size) : xw(act), qkv(3 * act), ctx(act), mlp(mlp_size) {}
  };

  // One Swin block on b maps of [grid^2, dim], in place.
  void swin_block(const SwinStage& st, const SwinBlock& blk, int b, float* x, AudioScratch& sc,
                  nn::ThreadPool* p) const {
    const ClapAudioConfig& a = cfg.audio;
    const int dim = st.dim, ws = a.window_size, n = ws * ws;
    const int rows = b * st.grid * st.grid;
    const std::vector<int32_t>& perm = blk.shift ? st.perm_shifted : st.perm_plain;
    // LayerNorm, roll and window partition (row-wise ops commute with the permutation: gather, then normalize as
    // the q|k|v product reads the rows).
    nn::gather_rows(x, perm, b, dim, sc.xw.get(), p);
    const nn::RowLayerNorm ln1{blk.ln_before.g, blk.ln_before.b, a.layer_norm_eps};
    const nn::RowLayerNorm ln2{blk.ln_after.g, blk.ln_after.b, a.layer_norm_eps};
    blk.qkv.forward(sc.xw.get(), rows, sc.qkv.get(), p, nn::LinearPost::store(), &ln1);
    const int head_dim = dim / st.heads;
    // head_dim ** -0.5 as Python computes it (double), then used as a float.
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
    const int windows_per_map = (st.grid / ws) * (st.grid / ws);
    const float* qkv = sc.qkv.get();
    nn::window_attention(qkv, qkv + dim, qkv + 2 * dim, 3 * dim, b * windows_per_map, n, st.heads, head_dim, scale,
                         blk.bias.data(), blk.shift ? st.mask.data() : nullptr, windows_per_map, sc.ctx.get(), p);
    blk.o.forward(sc.ctx.get(), rows, sc.xw.get(), p);
    // Window reverse + reverse roll + residual in one scatter.
    nn::scatter_add_rows(x, perm, b, dim, sc.xw.get(), p);
    linear_act(blk.fc1, a.act, x, rows, sc.mlp.get(), p, &ln2);
    blk.fc2.forward(sc.mlp.get(), rows, x, p, nn::LinearPost::accumulate());  // x += fc2(...)
  }

  // b clips [channels, frames, mels] -> pooled [b, hidden] and embeds [b, projection_dim] (either may be null).
  void encode_audio_chunk(const float* feats, int b, int channels, const bool* is_longer, float* embeds, float* pooled,
                          const ClapTap* tap, nn::ThreadPool* p) const {
    const ClapAudioConfig& a = cfg.audio;
    const int mels = a.num_mel_bins, frames = a.input_frames, fr = a.freq_ratio();
    const int s = a.spec_size, width = s * fr;  // time frames after resizing
    const long planes = static_cast<long>(b) * channels;

    std::vector<char> fuse(static_cast<size_t>(b), 0);
    if (a.enable_fusion && is_longer)
      for (int i = 0; i < b; ++i) fuse[i] = is_longer[i] ? 1 : 0;

    // BatchNorm over the mel bins, bicubic time resize, fold into the image.
    Buffer img(static_cast<size_t>(planes) * s * s);
    {
      Buffer bn(static_cast<size_t>(planes) * frames * mels);
      nn::batch_norm_channels_last(feats, planes * frames, mel_bn, bn.get(), p);
      const float* timed = bn.get();
      Buffer resized(frames < width ? static_cast<size_t>(planes) * width * mels : 0);
      if (frames < width) {
        nn::bicubic_resize_rows(bn.get(), static_cast<int>(planes), frames, width, mels, resized.get(), p);
        timed = resized.get();
      }
      nn::fold_mel_to_image(timed, static_cast<int>(planes), fr, s, mels, img.get(), p);
    }
    if (tap) (*tap)("mel2img", img.get(), planes * s, s);

    // Activation buffers sized for the largest stage.
    const int g0 = a.grid();
    size_t act = 0, mlp = 0;
    for (const SwinStage& st : stages) {
      const size_t rows = static_cast<size_t>(b) * st.grid * st.grid;
      act = std::max(act, rows * st.dim);
      mlp = std::max(mlp, rows * st.mlp);
    }
    Buffer x(act);
    patch_embed(img.get(), b, channels, fuse, x.get(), p);
    if (tap) (*tap)("patch_embeds", x.get(), static_cast<int64_t>(g0) * g0, a.patch_embeds_hidden_size);

    AudioScratch sc(act, mlp);
    for (size_t si = 0; si < stages.size(); ++si) {
      const SwinStage& st = stages[si];
      for (const SwinBlock& blk : st.blocks) swin_block(st, blk, b, x.get(), sc, p);
      int out_grid = st.grid, out_dim = st.dim;
      if (st.merge) {
        const int half = st.grid / 2, rows = b * half * half;
        nn::patch_merge(x.get(), b, st.grid, st.dim, sc.xw.get(), p);
        const nn::RowLayerNorm ln{st.merge_ln.g, st.merge_ln.b, kTorchLayerNormEps};
        st.merge_w.forward(sc.xw.get(), rows, x.get(), p, nn::LinearPost::store(), &ln);
        out_grid = half;
        out_dim = 2 * st.dim;
      }
      if (tap) (*tap)("stage" + std::to_string(si), x.get(), static_cast<int64_t>(out_grid) * out_grid, out_dim);
    }

    // Final LayerNorm; HF's pooler is a mean over all tokens (its reshapes only permute them).
    const int hid = a.hidden_size, last = stages.back().grid;
    const long tokens = static_cast<long>(last) * last;
    nn::layer_norm(x.get(), b * tokens, hid, audio_ln.g, audio_ln.b, kTorchLayerNormEps, x.get(), p);
    if (tap) (*tap)("final_norm", x.get(), tokens, hid);
    Buffer pool_out(static_cast<size_t>(b) * hid);
    for (int i = 0; i < b; ++i)
      nn::column_mean(x.get() + static_cast<size_t>(i) * tokens * hid, tokens, hid,
                      pool_out.get() + static_cast<size_t>(i) * hid);
    if (pooled) std::copy(pool_out.get(), pool_out.get() + static_cast<size_t>(b) * hid, pooled);
    if (embeds) project(pool_out.get(), b, audio_proj1, audio_proj2, embeds, p);
  }

  // ClapProjectionLayer: linear1, activation, linear2.
  void project(const float* x, int rows, const PackedLinear& l1, const PackedLinear& l2, float* out,
               nn::ThreadPool* p) const {
    Buffer h(static_cast<size_t>(rows) * cfg.projection_dim);
    linear_act(l1, cfg.projection_act, x, rows, h.get(), p);
    l2.forward(h.get(), rows, out, p);
  }

  // ------------------------------------------------------------------------------------------ text

  // Sequences back to back at their true lengths; row s of the results goes to embeds_rows[s] / pooled_rows[s].
  void encode_text_chunk(const std::vector<const std::vector<int32_t>*>& seqs, float* const* embeds_rows,
                         float* const* pooled_rows, const ClapTap* tap) const {
    const ClapTextConfig& t = cfg.text;
    nn::ThreadPool* p = pool.get();
    const int h = t.hidden_size, b = static_cast<int>(seqs.size());
    std::vector<int> lens(static_cast<size_t>(b));
    std::vector<int64_t> starts(static_cast<size_t>(b));
    int64_t rows = 0;
    for (int s = 0; s < b; ++s) {
      starts[s] = rows;
      lens[s] = static_cast<int>(seqs[s]->size());
      rows += lens[s];
    }
    Buffer x(static_cast<size_t>(rows) * h);
    for (int s = 0; s < b; ++s) {
      int count = 0;  // RoBERTa positions: cumsum(ids != pad) * (ids != pad) + pad
      for (int i = 0; i < lens[s]; ++i) {
        const int32_t id = (*seqs[s])[i];
        const int pos = id != t.pad_token_id ? ++count + t.pad_token_id : t.pad_token_id;
        const float* w = word_emb + static_cast<size_t>(id) * h;
        const float* pe = pos_emb + static_cast<size_t>(pos) * h;
        float* dst = x.get() + static_cast<size_t>(starts[s] + i) * h;
        for (int j = 0; j < h; ++j) dst[j] = (w[j] + type_emb[j]) + pe[j];
      }
    }
    nn::layer_norm(x.get(), rows, h, emb_ln.g, emb_ln.b, t.layer_norm_eps, x.get(), p);
    if (tap) (*tap)("embeddings", x.get(), rows, h);

    Buffer qkv(3 * static_cast<size_t>(rows) * h), ctx(static_cast<size_t>(rows) * h),
        m(static_cast<size_t>(rows) * t.intermediate_size);
    const int r = static_cast<int>(rows), head_dim = h / t.num_heads;
    // head_dim ** -0.5 as Python computes it (double), then used as a float.
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
    for (const TextLayer& l : text_layers) {
      // Post-LN: x = LN(attn(x) + x); x = LN(fc2(act(fc1(x))) + x). The residual adds happen in the epilogues.
      l.qkv.forward(x.get(), r, qkv.get(), p);
      nn::attention(qkv.get(), qkv.get() + h, qkv.get() + 2 * h, 3L * h, lens, t.num_heads, head_dim, scale, false,
                    ctx.get(), h, p, nn::attention_precision(prec));
      l.o.forward(ctx.get(), r, x.get(), p, nn::LinearPost::accumulate());
      nn::layer_norm(x.get(), rows, h, l.ln_attn.g, l.ln_attn.b, t.layer_norm_eps, x.get(), p);
      linear_act(l.fc1, t.act, x.get(), r, m.get(), p);
      l.fc2.forward(m.get(), r, x.get(), p, nn::LinearPost::accumulate());
      nn::layer_norm(x.get(), rows, h, l.ln_out.g, l.ln_out.b, t.layer_norm_eps, x.get(), p);
    }
    if (tap) (*tap)("last_hidden_state", x.get(), rows, h);

    // Pooler: tanh(dense(hidden state of the first token)).
    Buffer first(static_cast<size_t>(b) * h), pooled(static_cast<size_t>(b) * h);
    for (int s = 0; s < b; ++s)
      std::copy(x.get() + static_cast<size_t>(starts[s]) * h, x.get() + static_cast<size_t>(starts[s] + 1) * h,
                first.get() + static_cast<size_t>(s) * h);
    pooler.forward(first.get(), b, pooled.get(), p);
    nn::tanh_inplace(pooled.get(), static_cast<long>(b) * h, p);
    const int pd = cfg.projection_dim;
    Buffer proj(static_cast<size_t>(b) * pd);
    project(pooled.get(), b, text_proj1, text_proj2, proj.get(), p);
    for (int s = 0; s < b; ++s) {
      if (embeds_rows)
        std::copy(proj.get() + static_cast<size_t>(s) * pd, proj.get() + static_cast<size_t>(s + 1) * pd,
                  embeds_rows[s]);
      if (pooled_rows)
        std::copy(pooled.get() + static_cast<size_t>(s) * h, pooled.get() + static_cast<size_t>(s + 1) * h,
                  pooled_rows[s]);
    }
  }

  void check_ids(const std::vector<int32_t>& ids, size_t i) const {
    const ClapTextConfig& t = cfg.text;
    check_token_ids(ids, i, t.max_positions, "max_position_embeddings", t.vocab_size);
    // RoBERTa's positions count the non-pad tokens from pad_token_id + 1: they must stay inside the table.
    const int64_t count = std::count_if(ids.begin(), ids.end(), [&](int32_t id) { return id != t.pad_token_id; });
    if (count + t.pad_token_id >= t.max_positions)
      throw Error("input_ids[" + std::to_string(i) + "]", std::to_string(count) + " tokens, more than the " +
                                                              std::to_string(t.max_positions - t.pad_token_id - 1) +
                                                              " positions of the model");
  }
};

ClapModel::ClapModel(const ClapConfig& cfg, std::shared_ptr<const io::WeightStore> weights, int threads,
                     nn::Precision precision)
    : ClapModel(cfg, std::move(weights), ClapOptions{threads, precision, nullptr, nullptr, {}, nullptr, nullptr}) {}

ClapModel::ClapModel(const ClapConfig& cfg, std::shared_ptr<const io::WeightStore> weights,
                     const ClapOptions& options) {
  if (!weights) throw Error("ClapModel", "no weights");
  impl_ = std::make_unique<Impl>(cfg, *weights, options);
  impl_->keep = std::move(weights);
}

bool ClapModel::int8_from_file() const { return impl_->from_file; }
const std::vector<std::string>& ClapModel::weights_in_place() const { return impl_->in_place; }

ClapModel::~ClapModel() = default;
ClapModel::ClapModel(ClapModel&&) noexcept = default;
ClapModel& ClapModel::operator=(ClapModel&&) noexcept = default;

const ClapConfig& ClapModel::config() const { return impl_->cfg; }
float ClapModel::logit_scale_a() const { return impl_->logit_scale_a; }
float ClapModel::logit_scale_t() const { return impl_->logit_scale_t; }
nn::Precision ClapModel::precision() const { return impl_->prec; }

namespace {

void check_audio_args(const ClapAudioConfig& a, int n, int channels) {
  if (n < 0) throw Error("input_features", "negative batch size " + std::to_string(n));
  const int want = a.enable_fusion ? 4 : 1;
  if (channels != want)
    throw Error("input_features", std::to_string(channels) + " channels, the " +
                                      (a.enable_fusion ? "fused" : "unfused") + " model takes " + std::to_string(want));
}

}  // namespace

void ClapModel::encode_audio(const float* input_features, int n, int channels, const bool* is_longer, float* out_embeds,
                             float* out_pooled) const {
  const ClapAudioConfig& a = impl_->cfg.audio;
  check_audio_args(a, n, channels);
  if (n == 0) return;
  if (!input_features || (!out_embeds && !out_pooled)) throw Error("encode_audio", "null buffer");
  const size_t clip = static_cast<size_t>(channels) * a.input_frames * a.num_mel_bins;
  auto one = [&](int i, nn::ThreadPool* p) {
    impl_->encode_audio_chunk(input_features + i * clip, 1, channels, is_longer ? is_longer + i : nullptr,
                              out_embeds ? out_embeds + static_cast<size_t>(i) * impl_->cfg.projection_dim : nullptr,
                              out_pooled ? out_pooled + static_cast<size_t>(i) * a.hidden_size : nullptr, nullptr, p);
  };
  // Whole multiples of the thread count run one clip per thread with serial kernels (no synchronization between
  // the many small steps of a clip); the rest one clip at a time spread over the pool. ~16 MB of activations
  // per clip in flight for HTSAT-tiny. Either way each clip's result depends only on its input.
  nn::ThreadPool* pool = impl_->pool.get();
  const int together = pool->threads() < 2 ? 0 : n / pool->threads() * pool->threads();
  if (together > 0) pool->parallel_for(together, [&](int i) { one(i, nullptr); });
  for (int i = together; i < n; ++i) one(i, pool);
}

void ClapModel::encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out_embeds, float* out_pooled) const {
  for (size_t i = 0; i < ids.size(); ++i) impl_->check_ids(ids[i], i);
  if (ids.empty()) return;
  if (!out_embeds && !out_pooled) throw Error("encode_texts", "null output buffer");
  // All sequences run together at their true lengths (ragged rows, no padding), in chunks of at most
  // kMaxTextRows rows: every GEMM sees all of them, so the weights are streamed once per chunk.
  const size_t pd = static_cast<size_t>(impl_->cfg.projection_dim),
               hd = static_cast<size_t>(impl_->cfg.text.hidden_size);
  std::vector<const std::vector<int32_t>*> seqs;
  std::vector<float*> erows, prows;
  int64_t chunk_rows = 0;
  auto flush = [&] {
    if (!seqs.empty())
      impl_->encode_text_chunk(seqs, out_embeds ? erows.data() : nullptr, out_pooled ? prows.data() : nullptr, nullptr);
    seqs.clear();
    erows.clear();
    prows.clear();
    chunk_rows = 0;
  };
  for (size_t i = 0; i < ids.size(); ++i) {
    if (chunk_rows + static_cast<int64_t>(ids[i].size()) > kMaxTextRows) flush();
    seqs.push_back(&ids[i]);
    erows.push_back(out_embeds ? out_embeds + i * pd : nullptr);
    prows.push_back(out_pooled ? out_pooled + i * hd : nullptr);
    chunk_rows += static_cast<int64_t>(ids[i].size());
  }
  flush();
}

void ClapModel::debug_audio(const float* input_features, int channels, bool is_longer, const ClapTap& tap) const {
  check_audio_args(impl_->cfg.audio, 1, channels);
  if (!input_features) throw Error("debug_audio", "null buffer");
  const bool flag = is_longer;
  impl_->encode_audio_chunk(input_features, 1, channels, &flag, nullptr, nullptr, &tap, impl_->pool.get());
}

void ClapModel::debug_text(const std::vector<int32_t>& ids, const ClapTap& tap) const {
  impl_->check_ids(ids, 0);
  const std::vector<const std::vector<int32_t>*> seqs = {&ids};
  impl_->encode_text_chunk(seqs, nullptr, nullptr, &tap);
}

}  // namespace zeroshot::models
