// CLIP model against the reference outputs in fixtures/clip/* (README tolerances), plus the refusals of bad
// configs and bad weight files (made in temp dirs from copies of the fixture).
#include "models/clip.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "support/compare.h"
#include "support/errors.h"
#include "support/reference.h"
#include "support/temp_model.h"
#include "zeroshot/error.h"

namespace zeroshot::models {
namespace {

namespace fs = std::filesystem;
using io::Json;

std::string fixture(const std::string& model) { return std::string(ZEROSHOT_FIXTURES) + "/clip/" + model; }

struct Expected {
  std::vector<std::string> images;
  std::vector<std::vector<int32_t>> input_ids;
  std::vector<float> pixels;  // all images, in `images` order
  std::vector<float> image_embeds, text_embeds, logits;
  std::vector<int64_t> image_embeds_shape, text_embeds_shape, logits_shape;
};

Expected load_expected(const std::string& dir) {
  const zeroshot::testing::ExpectedOutputs ref(dir);
  Expected e;
  e.images = ref.strings("images");
  e.input_ids = ref.input_ids();
  e.pixels = ref.all_pixel_values();
  e.image_embeds = ref.get("image_embeds");
  e.image_embeds_shape = ref.shape("image_embeds");
  e.text_embeds = ref.get("text_embeds");
  e.text_embeds_shape = ref.shape("text_embeds");
  e.logits = ref.get("logits_per_image");
  e.logits_shape = ref.shape("logits_per_image");
  return e;
}

using zeroshot::testing::batch_composition_error;
using zeroshot::testing::kEmbedRelTol;
using zeroshot::testing::kLogitTol;
using zeroshot::testing::max_abs;
using zeroshot::testing::max_abs_diff;

// exp(logit_scale) * cosine(image_i, text_j), in double.
std::vector<float> logits_per_image(const std::vector<float>& img, const std::vector<float>& txt, int dim,
                                    float logit_scale) {
  const size_t ni = img.size() / dim, nt = txt.size() / dim;
  auto norm = [&](const float* v) {
    double s = 0;
    for (int k = 0; k < dim; ++k) s += static_cast<double>(v[k]) * v[k];
    return std::sqrt(s);
  };
  std::vector<float> out(ni * nt);
  for (size_t i = 0; i < ni; ++i)
    for (size_t j = 0; j < nt; ++j) {
      double dot = 0;
      for (int k = 0; k < dim; ++k) dot += static_cast<double>(img[i * dim + k]) * txt[j * dim + k];
      out[i * nt + j] = static_cast<float>(std::exp(static_cast<double>(logit_scale)) * dot /
                                           (norm(&img[i * dim]) * norm(&txt[j * dim])));
    }
  return out;
}

class ClipFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fixture(GetParam());
    cfg_ = ClipConfig::load(dir_ + "/config.json");
    store_ = std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(dir_));
    model_ = std::make_unique<ClipModel>(cfg_, store_, 2);
    exp_ = load_expected(dir_);
  }
  size_t image_floats() const { return static_cast<size_t>(3) * cfg_.vision.image_size * cfg_.vision.image_size; }
  int n_images() const { return static_cast<int>(exp_.images.size()); }
  int proj() const { return cfg_.projection_dim; }

  std::string dir_;
  ClipConfig cfg_;
  std::shared_ptr<const io::WeightStore> store_;
  std::unique_ptr<ClipModel> model_;
  Expected exp_;
};

TEST_P(ClipFixture, ConfigAsDocumented) {
  // The geometry stated in fixtures/README.md.
  struct Geometry {
    int vision_hidden, vision_heads, vision_layers, image_size, patch_size;
    int text_hidden, text_heads, text_layers, projection_dim, eos_token_id;
    nn::Act act;  // both towers
  };
  const Geometry g = GetParam() == "clip-tiny-quickgelu"
                         ? Geometry{96, 4, 2, 224, 32, 64, 4, 2, 48, 2, nn::Act::QuickGelu}
                         : Geometry{80, 5, 3, 96, 16, 72, 6, 2, 40, 49407, nn::Act::Gelu};
  EXPECT_EQ(cfg_.vision.hidden_size, g.vision_hidden);
  EXPECT_EQ(cfg_.vision.num_heads, g.vision_heads);
  EXPECT_EQ(cfg_.vision.num_layers, g.vision_layers);
  EXPECT_EQ(cfg_.vision.image_size, g.image_size);
  EXPECT_EQ(cfg_.vision.patch_size, g.patch_size);
  EXPECT_EQ(cfg_.text.hidden_size, g.text_hidden);
  EXPECT_EQ(cfg_.text.num_heads, g.text_heads);
  EXPECT_EQ(cfg_.text.num_layers, g.text_layers);
  EXPECT_EQ(cfg_.projection_dim, g.projection_dim);
  EXPECT_EQ(cfg_.text.eos_token_id, g.eos_token_id);
  EXPECT_EQ(cfg_.vision.act, g.act);
  EXPECT_EQ(cfg_.text.act, g.act);
  EXPECT_EQ(cfg_.text.max_positions, 77);
  EXPECT_EQ(cfg_.text.vocab_size, 49408);
  EXPECT_FLOAT_EQ(cfg_.text.layer_norm_eps, 1e-5f);
}

TEST_P(ClipFixture, ImageEmbedsBatchAndOneByOne) {
  const int n = n_images();
  ASSERT_EQ(exp_.image_embeds_shape, (std::vector<int64_t>{n, proj()}));
  ASSERT_EQ(exp_.pixels.size(), n * image_floats());
  const float tol = kEmbedRelTol * max_abs(exp_.image_embeds);

  std::vector<float> batch(static_cast<size_t>(n) * proj());
  model_->encode_images(exp_.pixels.data(), n, batch.data());
  for (int i = 0; i < n; ++i)
    EXPECT_LE(max_abs_diff(&batch[i * proj()], &exp_.image_embeds[i * proj()], proj()), tol)
        << exp_.images[i] << " (batch)";

  float worst_vs_batch = 0;
  for (int i = 0; i < n; ++i) {
    std::vector<float> one(proj());
    model_->encode_images(exp_.pixels.data() + i * image_floats(), 1, one.data());
    EXPECT_LE(max_abs_diff(one.data(), &exp_.image_embeds[i * proj()], proj()), tol) << exp_.images[i] << " (alone)";
    worst_vs_batch = std::max(worst_vs_batch, max_abs_diff(one.data(), &batch[i * proj()], proj()));
  }
  // Batch composition changes nothing but GEMM rounding (OpenBLAS rounds differently for different row counts:
  // ~1e-6 relative; a leak between images would be orders of magnitude larger).
  EXPECT_LE(worst_vs_batch, 1e-5f * max_abs(batch));
}

TEST_P(ClipFixture, TextEmbeds) {
  const int n = static_cast<int>(exp_.input_ids.size());
  ASSERT_EQ(exp_.text_embeds_shape, (std::vector<int64_t>{n, proj()}));
  std::vector<float> got(static_cast<size_t>(n) * proj());
  model_->encode_texts(exp_.input_ids, got.data());
  const float tol = kEmbedRelTol * max_abs(exp_.text_embeds);
  for (int i = 0; i < n; ++i)
    EXPECT_LE(max_abs_diff(&got[i * proj()], &exp_.text_embeds[i * proj()], proj()), tol) << "text " << i;
}

TEST_P(ClipFixture, LogitsPerImage) {
  const int ni = n_images(), nt = static_cast<int>(exp_.input_ids.size());
  ASSERT_EQ(exp_.logits_shape, (std::vector<int64_t>{ni, nt}));
  std::vector<float> img(static_cast<size_t>(ni) * proj()), txt(static_cast<size_t>(nt) * proj());
  model_->encode_images(exp_.pixels.data(), ni, img.data());
  model_->encode_texts(exp_.input_ids, txt.data());
  const auto logits = logits_per_image(img, txt, proj(), model_->logit_scale());
  EXPECT_LE(max_abs_diff(logits.data(), exp_.logits.data(), logits.size()), kLogitTol);
}

TEST_P(ClipFixture, TextBatchCompositionIndependence) {
  std::vector<float> together;
  const float worst = batch_composition_error(
      [&](const std::vector<std::vector<int32_t>>& ids, float* out) { model_->encode_texts(ids, out); }, exp_.input_ids,
      proj(), &together);
  EXPECT_LE(worst, 1e-5f * max_abs(together));  // GEMM rounding only (see ImageEmbedsBatchAndOneByOne)
}

TEST_P(ClipFixture, CopiedWeightsThreadsAndConcurrency) {
  const int ni = n_images();
  std::vector<float> ref_img(static_cast<size_t>(ni) * proj()), ref_txt(exp_.input_ids.size() * proj());
  model_->encode_images(exp_.pixels.data(), ni, ref_img.data());
  model_->encode_texts(exp_.input_ids, ref_txt.data());

  // Copying constructor, one thread: the store can go away.
  std::unique_ptr<ClipModel> copied;
  {
    const auto ws = io::WeightStore::open_dir(dir_);
    copied = std::make_unique<ClipModel>(cfg_, ws, 1);
  }
  std::vector<float> img(ref_img.size()), txt(ref_txt.size());
  copied->encode_images(exp_.pixels.data(), ni, img.data());
  copied->encode_texts(exp_.input_ids, txt.data());
  EXPECT_LE(max_abs_diff(img.data(), ref_img.data(), img.size()), 1e-5f * max_abs(ref_img));
  EXPECT_LE(max_abs_diff(txt.data(), ref_txt.data(), txt.size()), 1e-5f * max_abs(ref_txt));
  EXPECT_EQ(copied->logit_scale(), model_->logit_scale());

  // Concurrent callers on one model get what a lone caller gets.
  std::atomic<int> bad{0};
  std::vector<std::thread> callers;
  callers.reserve(4);
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&, t] {
      for (int rep = 0; rep < 3; ++rep) {
        if ((t + rep) % 2 == 0) {
          std::vector<float> o(ref_img.size());
          model_->encode_images(exp_.pixels.data(), ni, o.data());
          if (o != ref_img) bad++;
        } else {
          std::vector<float> o(ref_txt.size());
          model_->encode_texts(exp_.input_ids, o.data());
          if (o != ref_txt) bad++;
        }
      }
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(bad.load(), 0);
}

// The zero-copy model packs its text tower on the first encode_texts: callers that arrive together all wait for
// the one build and get what the eagerly built (copying) model computes, bit for bit.
TEST_P(ClipFixture, TextTowerBuiltOnFirstUseConcurrently) {
  std::vector<float> ref(exp_.input_ids.size() * proj());
  {
    const auto ws = io::WeightStore::open_dir(dir_);
    ClipModel(cfg_, ws, 2).encode_texts(exp_.input_ids, ref.data());
  }
  const ClipModel lazy(cfg_, store_, 2);
  std::atomic<int> bad{0};
  std::vector<std::thread> callers;
  callers.reserve(4);
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      std::vector<float> o(ref.size());
      lazy.encode_texts(exp_.input_ids, o.data());
      if (o != ref) bad++;
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(bad.load(), 0);
}

// With the causal mask, the hidden state at position i depends only on ids[0..i]: pooling at position i of a
// longer sequence equals pooling the last position of its prefix. That makes the pooling rule observable.
TEST_P(ClipFixture, PoolingRule) {
  const int32_t bos = 49406, eot = 49407, a = 320, b = 1125;
  auto enc = [&](const std::vector<int32_t>& ids) {
    std::vector<float> o(proj());
    model_->encode_texts({ids}, o.data());
    return o;
  };
  auto same = [&](const std::vector<float>& x, const std::vector<float>& y) {
    return max_abs_diff(x.data(), y.data(), x.size()) <= 1e-5f * max_abs(y);
  };
  const auto prefix = enc({bos, a, eot});
  if (cfg_.text.eos_token_id == 2) {
    // Legacy config: argmax of the ids (the first 49407), even though id 2 appears later.
    EXPECT_TRUE(same(enc({bos, a, eot, 2, b}), prefix));
    EXPECT_TRUE(same(enc({bos, a, eot, a, eot}), prefix));  // first maximum
  } else {
    // First eos_token_id position; none at all: position 0 (argmax of an all-zero mask).
    EXPECT_TRUE(same(enc({bos, a, eot, a, b}), prefix));
    EXPECT_TRUE(same(enc({bos, a, eot, b, eot}), prefix));
    EXPECT_TRUE(same(enc({bos, a, b}), enc({bos})));
  }
  EXPECT_FALSE(same(enc({bos, b, eot}), prefix));  // not vacuous
}

TEST_P(ClipFixture, RefusesBadTokenSequences) {
  std::vector<float> out(4 * proj());
  auto message = [&](const std::vector<std::vector<int32_t>>& ids) {
    try {
      model_->encode_texts(ids, out.data());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::vector<int32_t> ok = {49406, 320, 49407};
  EXPECT_EQ(message({ok, {}}), "input_ids[1]: empty token sequence");
  EXPECT_NE(message({ok, ok, std::vector<int32_t>(78, 320)}).find("input_ids[2]: 78 tokens"), std::string::npos);
  EXPECT_NE(message({{49406, 49408, 49407}}).find("input_ids[0]: token id 49408 is outside"), std::string::npos);
  EXPECT_NE(message({{49406, -1, 49407}}).find("token id -1"), std::string::npos);
  model_->encode_texts({}, nullptr);  // nothing to do
  model_->encode_images(nullptr, 0, nullptr);
  EXPECT_THROW(model_->encode_images(exp_.pixels.data(), -1, out.data()), Error);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ClipFixture, ::testing::Values("clip-tiny-quickgelu", "clip-tiny-gelu-f16"),
                         [](const auto& info) {
                           return info.param == "clip-tiny-quickgelu" ? "QuickGeluF32" : "GeluF16";
                         });

// ------------------------------------------------------------------------------------------- refusals

// A writable copy of a fixture model (tests/support), and the loader's verdict on it.
struct TempModel : zeroshot::testing::TempModel {
  explicit TempModel(const std::string& model = "clip-tiny-quickgelu") : zeroshot::testing::TempModel(fixture(model)) {}
  // Loads config + weights and builds the model: the error message, or "(no error)" (support/errors.h).
  std::string build() const {
    return zeroshot::testing::error_of([&] {
      const ClipConfig cfg = ClipConfig::load(config_path());
      const auto ws = io::WeightStore::open_dir(dir());
      ClipModel m(cfg, ws, 1);
    });
  }
};

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(ClipRefusals, UnmodifiedCopyLoads) {
  TempModel t;
  EXPECT_EQ(t.build(), "(no error)");
  TempModel f16("clip-tiny-gelu-f16");
  EXPECT_EQ(f16.build(), "(no error)");
}

TEST(ClipRefusals, WrongVisionHiddenSize) {
  TempModel t;
  t.config()["vision_config"]["hidden_size"] = 128;
  t.write_config();
  EXPECT_EQ(t.build(),
            t.weights_path() +
                ": tensor vision_model.embeddings.class_embedding has shape [96], expected [128] from config.json");
}

// A text tower built on first use is still checked at load: a bad text weight is refused by the constructor.
TEST(ClipRefusals, WrongTextWeightRefusedAtLoadInZeroCopyMode) {
  TempModel t;
  t.config()["text_config"]["intermediate_size"] = 100;
  t.write_config();
  const ClipConfig cfg = ClipConfig::load(t.config_path());
  const auto ws = std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(t.dir()));
  try {
    ClipModel m(cfg, ws, 1);
    FAIL() << "loaded";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), t.weights_path() + ": tensor text_model.encoder.layers.0.mlp.fc1.weight has shape"))
        << e.what();
  }
}

TEST(ClipRefusals, WrongProjectionDim) {
  TempModel t;
  t.config()["projection_dim"] = 64;
  t.write_config();
  const std::string m = t.build();
  EXPECT_TRUE(contains(m, t.weights_path() + ": tensor visual_projection.weight has shape [48, 96], expected [64, 96]"))
      << m;
}

TEST(ClipRefusals, UnknownModelType) {
  TempModel t;
  t.config()["model_type"] = "bert";
  t.write_config();
  const std::string m = t.build();
  EXPECT_TRUE(contains(m, t.config_path() + ": ")) << m;
  EXPECT_TRUE(contains(m, "\"bert\"")) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos);
  t.config().erase("model_type");
  t.write_config();
  EXPECT_TRUE(contains(t.build(), t.config_path() + ": no model_type"));
}

TEST(ClipRefusals, InvalidHiddenAct) {
  TempModel t;
  t.config()["text_config"]["hidden_act"] = "swishy";
  t.write_config();
  const std::string m = t.build();
  EXPECT_TRUE(contains(m, t.config_path() + ": text_config.hidden_act \"swishy\" is not supported")) << m;
}

TEST(ClipRefusals, InvalidSizes) {
  struct Case {
    const char* tower;
    const char* key;
    Json value;
    const char* expect;
  };
  const Case cases[] = {
      {"vision_config", "hidden_size", 98, "vision_config.hidden_size 98 is not divisible by num_attention_heads 4"},
      {"text_config", "num_attention_heads", 5, "text_config.hidden_size 64 is not divisible by num_attention_heads 5"},
      {"vision_config", "image_size", 225, "vision_config.image_size 225 is not divisible by patch_size 32"},
      {"vision_config", "patch_size", 0, "vision_config.patch_size must be a positive integer, got 0"},
      {"text_config", "hidden_size", -64, "text_config.hidden_size must be a positive integer, got -64"},
      {"text_config", "intermediate_size", "256",
       "text_config.intermediate_size must be a positive integer, got \"256\""},
      {"vision_config", "num_hidden_layers", 2.5,
       "vision_config.num_hidden_layers must be a positive integer, got 2.5"},
      {"vision_config", "layer_norm_eps", -1, "vision_config.layer_norm_eps must be a non-negative number, got -1"},
      {"text_config", "eos_token_id", "x", "text_config.eos_token_id must be an integer, got \"x\""},
      {"vision_config", "image_size", 1 << 30, "vision_config.image_size must be a positive integer"},
  };
  for (const auto& c : cases) {
    TempModel t;
    t.config()[c.tower][c.key] = c.value;
    t.write_config();
    const std::string m = t.build();
    EXPECT_TRUE(contains(m, t.config_path() + ": " + c.expect)) << m;
  }
  TempModel t;
  t.config()["projection_dim"] = 0;
  t.write_config();
  EXPECT_TRUE(contains(t.build(), t.config_path() + ": projection_dim must be a positive integer, got 0"));
  t.config()["text_config"] = "nope";
  t.write_config();
  EXPECT_TRUE(contains(t.build(), t.config_path() + ": text_config is not an object"));
}

TEST(ClipConfigDefaults, MissingKeysTakeTransformersDefaults) {
  TempModel t;
  t.config() = Json{{"model_type", "clip"}};
  t.write_config();
  const ClipConfig c = ClipConfig::load(t.config_path());
  // transformers' CLIPTextConfig / CLIPVisionConfig / CLIPConfig defaults (openai/clip-vit-base-patch32).
  EXPECT_EQ(c.text.vocab_size, 49408);
  EXPECT_EQ(c.text.hidden_size, 512);
  EXPECT_EQ(c.text.intermediate_size, 2048);
  EXPECT_EQ(c.text.num_layers, 12);
  EXPECT_EQ(c.text.num_heads, 8);
  EXPECT_EQ(c.text.max_positions, 77);
  EXPECT_EQ(c.text.eos_token_id, 49407);
  EXPECT_EQ(c.text.act, nn::Act::QuickGelu);
  EXPECT_FLOAT_EQ(c.text.layer_norm_eps, 1e-5f);
  EXPECT_EQ(c.vision.hidden_size, 768);
  EXPECT_EQ(c.vision.intermediate_size, 3072);
  EXPECT_EQ(c.vision.num_layers, 12);
  EXPECT_EQ(c.vision.num_heads, 12);
  EXPECT_EQ(c.vision.num_channels, 3);
  EXPECT_EQ(c.vision.image_size, 224);
  EXPECT_EQ(c.vision.patch_size, 32);
  EXPECT_EQ(c.vision.act, nn::Act::QuickGelu);
  EXPECT_EQ(c.projection_dim, 512);

  // Old checkpoints: text_config_dict wins over text_config; the towers' projection_dim is not used.
  t.config() = Json{{"model_type", "clip"},
                    {"projection_dim", 256},
                    {"text_config", {{"hidden_size", 64}, {"projection_dim", 99}}},
                    {"text_config_dict", {{"hidden_size", 128}, {"hidden_act", "gelu_pytorch_tanh"}}},
                    {"vision_config", {{"hidden_act", "gelu_new"}, {"layer_norm_eps", 1e-6}}}};
  t.write_config();
  const ClipConfig d = ClipConfig::load(t.config_path());
  EXPECT_EQ(d.text.hidden_size, 128);
  EXPECT_EQ(d.text.act, nn::Act::GeluTanh);
  EXPECT_EQ(d.vision.act, nn::Act::GeluTanh);
  EXPECT_FLOAT_EQ(d.vision.layer_norm_eps, 1e-6f);
  EXPECT_EQ(d.projection_dim, 256);
}

TEST(ClipRefusals, TruncatedWeights) {
  TempModel t;
  const auto full = fs::file_size(t.weights_path());
  t.truncate_weights(static_cast<size_t>(full / 2));  // cut in the data
  std::string m = t.build();
  EXPECT_TRUE(contains(m, t.weights_path() + ": ")) << m;
  EXPECT_TRUE(contains(m, "truncated")) << m;
  t.truncate_weights(100);  // cut in the header
  m = t.build();
  EXPECT_TRUE(contains(m, t.weights_path() + ": ")) << m;
  EXPECT_TRUE(contains(m, "truncated")) << m;
  t.truncate_weights(5);  // not even the header length
  EXPECT_TRUE(contains(t.build(), t.weights_path() + ": ")) << m;
}

TEST(ClipRefusals, DataOffsetPastTheEnd) {
  TempModel t;
  const std::string name = "vision_model.encoder.layers.1.mlp.fc1.bias";
  t.edit_raw([&](Json& header, std::string& data) {
    const uint64_t size = data.size();
    auto& off = header[name]["data_offsets"];
    const uint64_t n = off[1].get<uint64_t>() - off[0].get<uint64_t>();
    off = Json::array({size - n + 64, size + 64});
  });
  const std::string m = t.build();
  EXPECT_TRUE(contains(m, t.weights_path() + ": ")) << m;
  EXPECT_TRUE(contains(m, name)) << m;
}

TEST(ClipRefusals, MissingTensor) {
  TempModel t;
  t.tensors().erase("text_model.encoder.layers.1.self_attn.v_proj.bias");
  t.write_weights();
  EXPECT_EQ(t.build(), t.weights_path() + ": missing tensor text_model.encoder.layers.1.self_attn.v_proj.bias");
}

TEST(ClipRefusals, UnexpectedTensor) {
  TempModel t;
  // An extra layer's bias, stored after the existing data.
  t.tensors()["vision_model.encoder.layers.2.mlp.fc2.bias"] = {io::DType::F32, {96}, std::vector<uint8_t>(96 * 4, 0)};
  t.write_weights();
  const std::string m = t.build();
  EXPECT_TRUE(contains(m, t.weights_path() + ": unexpected tensor vision_model.encoder.layers.2.mlp.fc2.bias")) << m;

  // Integer buffers are ignored.
  TempModel ok;
  ok.tensors()["text_model.some_buffer_ids"] = {io::DType::I64, {2}, std::vector<uint8_t>(16, 0)};
  ok.write_weights();
  EXPECT_EQ(ok.build(), "(no error)");
}

TEST(ClipRefusals, WrongDtype) {
  TempModel t;
  t.tensors().at("text_projection.weight").dtype = io::DType::I32;  // same byte size as F32
  t.write_weights();
  const std::string m = t.build();
  EXPECT_TRUE(contains(m, t.weights_path() + ": tensor text_projection.weight has dtype I32")) << m;
}

TEST(ClipLoad, UnalignedF32WeightsAreCopied) {
  // Shift the data by 2 bytes so every F32 tensor is misaligned in the mapping: zero-copy must fall back.
  TempModel t;
  t.edit_raw([](Json& header, std::string& data) {
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") continue;
      auto& off = it.value()["data_offsets"];
      off = Json::array({off[0].get<uint64_t>() + 2, off[1].get<uint64_t>() + 2});
    }
    data.insert(0, 2, '\0');
  });
  const ClipConfig cfg = ClipConfig::load(t.config_path());
  auto ws = std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(t.dir()));
  ClipModel m(cfg, ws, 1);
  const Expected e = load_expected(fixture("clip-tiny-quickgelu"));
  std::vector<float> out(cfg.projection_dim);
  m.encode_images(e.pixels.data(), 1, out.data());
  EXPECT_LE(max_abs_diff(out.data(), e.image_embeds.data(), out.size()), kEmbedRelTol * max_abs(e.image_embeds));
}

// Timing on the tiny model (informational; run with --gtest_also_run_disabled_tests).
TEST(ClipTiming, DISABLED_TinyModel) {
  const std::string dir = fixture("clip-tiny-quickgelu");
  const ClipConfig cfg = ClipConfig::load(dir + "/config.json");
  ClipModel m(cfg, std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(dir)), 2);
  const Expected e = load_expected(dir);
  std::vector<float> out(e.input_ids.size() * cfg.projection_dim);
  auto time = [](auto&& fn) {
    double best = 1e9;
    for (int r = 0; r < 20; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      fn();
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  };
  const double img = time([&] { m.encode_images(e.pixels.data(), 1, out.data()); });
  const double txt = time([&] { m.encode_texts(e.input_ids, out.data()); });
  std::cout << "tiny model, 2 threads: one 224px image " << img << " ms, " << e.input_ids.size() << " texts " << txt
            << " ms\n";
}

}  // namespace
}  // namespace zeroshot::models
