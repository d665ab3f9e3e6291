// OpenCLIP-format SigLIP configs: the trunk table against timm's own definitions and open_clip's own SigLIP model
// configs (both captured by tests/reference/make_open_clip_siglip.py at test time), and the refusals (configs
// written here). The weights and outputs are tested end to end in tests/siglip_parity_test.cpp.
#include "models/open_clip_siglip.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "io/json.h"
#include "support/errors.h"
#include "support/temp_dir.h"
#include "zeroshot/error.h"

namespace zeroshot::models {
namespace {

namespace fs = std::filesystem;
using io::Json;
using zeroshot::testing::file_placeholder;
using zeroshot::testing::TempDir;

const std::string kConfigs = std::string(ZEROSHOT_BINARY_DIR) + "/reference-fixtures/open_clip_siglip-configs";

// open_clip's ViT-B-16-SigLIP.json in open_clip_config.json form (save_for_hf's layout), with its pretrained
// preprocessing.
Json base_config() {
  return Json::parse(R"({
    "model_cfg": {
      "embed_dim": 768, "init_logit_bias": -10, "custom_text": true,
      "vision_cfg": {"image_size": 224, "timm_model_name": "vit_base_patch16_siglip_224",
                     "timm_model_pretrained": false, "timm_pool": "map", "timm_proj": "none"},
      "text_cfg": {"context_length": 64, "vocab_size": 32000, "hf_tokenizer_name": "timm/ViT-B-16-SigLIP",
                   "tokenizer_kwargs": {"clean": "canonicalize"}, "width": 768, "heads": 12, "layers": 12,
                   "no_causal_mask": true, "proj_bias": true, "pool_type": "last", "norm_kwargs": {"eps": 1e-6}}
    },
    "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bicubic",
                       "resize_mode": "squash"}
  })");
}

OpenClipSiglipConfig load(const Json& j) {
  const TempDir dir;
  return load_open_clip_siglip_config(dir.file("open_clip_config.json", j.dump()));
}

std::string error_of(const Json& j) {
  const TempDir dir;
  const std::string path = dir.file("open_clip_config.json", j.dump());
  return file_placeholder(zeroshot::testing::error_of([&] { load_open_clip_siglip_config(path); }), path);
}

TEST(OpenClipSiglipConfig, ViTB16) {
  const Json j = base_config();
  const OpenClipSiglipConfig c = load(j);
  EXPECT_EQ(c.trunk, "vit_base_patch16_siglip_224");
  EXPECT_EQ(c.context_length, 64);
  const ClipTowerConfig& v = c.siglip.vision;
  EXPECT_EQ(v.hidden_size, 768);
  EXPECT_EQ(v.num_layers, 12);
  EXPECT_EQ(v.num_heads, 12);
  EXPECT_EQ(v.intermediate_size, 3072);
  EXPECT_EQ(v.patch_size, 16);
  EXPECT_EQ(v.image_size, 224);
  EXPECT_EQ(v.act, nn::Act::Gelu);
  EXPECT_FLOAT_EQ(v.layer_norm_eps, 1e-6f);
  const ClipTowerConfig& t = c.siglip.text;
  EXPECT_EQ(t.hidden_size, 768);
  EXPECT_EQ(t.num_heads, 12);
  EXPECT_EQ(t.num_layers, 12);
  EXPECT_EQ(t.intermediate_size, 3072);
  EXPECT_EQ(t.vocab_size, 32000);
  EXPECT_EQ(t.max_positions, 64);
  EXPECT_EQ(t.act, nn::Act::Gelu);
  EXPECT_FLOAT_EQ(t.layer_norm_eps, 1e-6f);
  EXPECT_EQ(c.preprocess.size, 224);
  EXPECT_EQ(c.preprocess.resize_mode, OpenClipResizeMode::Squash);
  EXPECT_EQ(c.preprocess.interpolation, OpenClipInterpolation::Bicubic);
  EXPECT_FLOAT_EQ(c.preprocess.mean[1], 0.5f);

  Json o = base_config();
  o["model_cfg"]["text_cfg"].erase("norm_kwargs");  // torch's LayerNorm default
  o["model_cfg"]["text_cfg"]["act_kwargs"] = {{"approximate", "tanh"}};
  o["model_cfg"]["text_cfg"]["mlp_ratio"] = 2.05;  // int(768 * 2.05) = 1574
  const OpenClipSiglipConfig c2 = load(o);
  EXPECT_FLOAT_EQ(c2.siglip.text.layer_norm_eps, 1e-5f);
  EXPECT_EQ(c2.siglip.text.act, nn::Act::GeluTanh);
  EXPECT_EQ(c2.siglip.text.intermediate_size, 1574);
  o["model_cfg"]["text_cfg"].erase("act_kwargs");
  o["model_cfg"]["quick_gelu"] = true;
  EXPECT_EQ(load(o).siglip.text.act, nn::Act::QuickGelu);
}

// Every vit_*_siglip_* trunk timm defines: the ones SiglipModel computes (class token off, MAP pool, nothing else)
// load with timm's geometry and activation; the others are refused as unknown.
TEST(OpenClipSiglipConfig, TrunksAreTimms) {
  const Json trunks = io::load_json(kConfigs + "/timm_trunks.json");
  ASSERT_GE(trunks.size(), 20u);
  int built = 0;
  for (const auto& item : trunks.items()) {
    const std::string& name = item.key();
    const Json& t = item.value();
    Json j = base_config();
    j["model_cfg"]["vision_cfg"]["timm_model_name"] = name;
    j["model_cfg"]["vision_cfg"]["image_size"] = t["image"];
    j["model_cfg"]["embed_dim"] = t["width"];
    j["model_cfg"]["text_cfg"]["width"] = t["width"];
    j["model_cfg"]["text_cfg"]["heads"] = 16;
    if (!t["map"].get<bool>()) {
      EXPECT_NE(error_of(j).find("is not a timm SigLIP trunk this engine knows"), std::string::npos) << name;
      continue;
    }
    const ClipTowerConfig v = load(j).siglip.vision;
    EXPECT_EQ(v.hidden_size, t["width"].get<int>()) << name;
    EXPECT_EQ(v.num_layers, t["depth"].get<int>()) << name;
    EXPECT_EQ(v.num_heads, t["heads"].get<int>()) << name;
    EXPECT_EQ(v.intermediate_size, t["mlp"].get<int>()) << name;
    EXPECT_EQ(v.patch_size, t["patch"].get<int>()) << name;
    EXPECT_EQ(v.image_size, t["image"].get<int>()) << name;
    EXPECT_EQ(v.act, t["act"] == "gelu_tanh" ? nn::Act::GeluTanh : nn::Act::Gelu) << name << " " << t["act"];
    ASSERT_TRUE(t["act"] == "gelu" || t["act"] == "gelu_tanh") << name;
    ++built;
  }
  EXPECT_GE(built, 15);
}

// open_clip's own SigLIP model configs (bare, as in its model_configs/) load, the text tower as written there.
TEST(OpenClipSiglipConfig, OpenClipsOwnConfigs) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(kConfigs)) {
    if (e.path().filename() == "timm_trunks.json") continue;
    ++n;
    const std::string name = e.path().filename().string();
    const Json j = io::load_json(e.path().string());
    EXPECT_TRUE(is_open_clip_siglip(e.path().string())) << name;
    const OpenClipSiglipConfig c = load_open_clip_siglip_config(e.path().string());
    const Json& t = j["text_cfg"];
    EXPECT_EQ(c.siglip.text.hidden_size, t["width"].get<int>()) << name;
    EXPECT_EQ(c.siglip.text.num_heads, t["heads"].get<int>()) << name;
    EXPECT_EQ(c.siglip.text.num_layers, t["layers"].get<int>()) << name;
    EXPECT_EQ(c.siglip.text.vocab_size, t["vocab_size"].get<int>()) << name;
    EXPECT_EQ(c.siglip.text.intermediate_size,
              static_cast<int>(t["width"].get<int>() * (t.contains("mlp_ratio") ? t["mlp_ratio"].get<double>() : 4.0)))
        << name;
    EXPECT_EQ(c.context_length, t["context_length"].get<int>()) << name;
    EXPECT_EQ(c.siglip.vision.image_size, j["vision_cfg"]["image_size"].get<int>()) << name;
  }
  EXPECT_GE(n, 9);
}

TEST(OpenClipSiglipConfig, IsSiglip) {
  const TempDir dir;
  EXPECT_TRUE(is_open_clip_siglip(dir.file("a.json", base_config().dump())));
  Json clip = base_config();
  clip["model_cfg"].erase("init_logit_bias");
  EXPECT_FALSE(is_open_clip_siglip(dir.file("b.json", clip.dump())));
  clip["model_cfg"]["init_logit_bias"] = nullptr;
  EXPECT_FALSE(is_open_clip_siglip(dir.file("c.json", clip.dump())));
  EXPECT_THROW(is_open_clip_siglip(dir.file("d.json", "{\"model_cfg\": ")), Error);
}

struct Refusal {
  std::string pointer;  // JSON pointer to set (null: erase)
  Json value;
  std::string message;
};

TEST(OpenClipSiglipConfig, Refusals) {
  const std::string v = "FILE: model_cfg.vision_cfg.", t = "FILE: model_cfg.text_cfg.";
  const std::vector<Refusal> cases = {
      {"/model_cfg/vision_cfg/timm_model_name", "vit_base_patch16_siglip_gap_224",
       v + "timm_model_name \"vit_base_patch16_siglip_gap_224\" is not a timm SigLIP trunk this engine knows ("},
      {"/model_cfg/vision_cfg/timm_model_name", nullptr,
       v + "timm_model_name is missing: only OpenCLIP SigLIP models with a timm trunk are supported"},
      {"/model_cfg/vision_cfg/timm_pool", "avg", v + "timm_pool \"avg\" is not supported (only \"map\" is built)"},
      {"/model_cfg/vision_cfg/timm_proj", "linear",
       v + "timm_proj \"linear\" is not supported (only \"none\" is built)"},
      {"/model_cfg/vision_cfg/timm_proj", nullptr, v + "timm_proj is missing (open_clip's default is not SigLIP's)"},
      {"/model_cfg/vision_cfg/image_size", 256, v + "image_size 256 differs from vit_base_patch16_siglip_224's 224"},
      {"/model_cfg/vision_cfg/rope", true,
       v + "rope: unknown option (not part of the OpenCLIP SigLIP models this engine builds)"},
      {"/model_cfg/embed_dim", 512,
       "FILE: model_cfg.embed_dim 512 differs from the width 768 of vit_base_patch16_siglip_224 (timm_proj \"none\": "
       "the trunk's pooled output is the image embedding)"},
      {"/model_cfg/multimodal_cfg", Json::object({{"layers", 12}}),
       "FILE: model_cfg.multimodal_cfg: CoCa models (captioning decoder) are not supported"},
      {"/model_cfg/text_cfg/tokenizer_kwargs", Json::object({{"clean", "whitespace"}}),
       t + "tokenizer_kwargs {\"clean\":\"whitespace\"} is not supported (only {\"clean\":\"canonicalize\"} is built)"},
      {"/model_cfg/text_cfg/no_causal_mask", false, t + "no_causal_mask false is not supported (only true is built)"},
      {"/model_cfg/text_cfg/no_causal_mask", nullptr,
       t + "no_causal_mask is missing (open_clip's default is CLIP's, not SigLIP's)"},
      {"/model_cfg/text_cfg/pool_type", "argmax", t + "pool_type \"argmax\" is not supported (only \"last\" is built)"},
      {"/model_cfg/text_cfg/proj_bias", false, t + "proj_bias false is not supported (only true is built)"},
      {"/model_cfg/text_cfg/width", 576,
       t + "width 576 differs from embed_dim 768 (not built: SigLIP's text head is square)"},
      {"/model_cfg/text_cfg/heads", 7, t + "width 768 is not divisible by heads 7"},
      {"/model_cfg/text_cfg/act_kwargs", Json::object({{"approximate", "none"}}),
       t + "act_kwargs {\"approximate\":\"none\"} is not supported (only {\"approximate\": \"tanh\"} on GELU)"},
      {"/model_cfg/text_cfg/norm_kwargs", Json::object({{"elementwise_affine", false}}),
       t + "norm_kwargs.elementwise_affine is not supported (only eps)"},
      {"/model_cfg/text_cfg/hf_model_name", "xlm-roberta-base",
       t + "hf_model_name \"xlm-roberta-base\": Hugging Face text towers are not supported (only the open_clip text "
           "transformer)"},
      {"/model_cfg/text_cfg/embed_cls", true, t + "embed_cls true is not supported (only false is built)"},
      {"/preprocess_cfg/resize_mode", "crop",
       "FILE: preprocess_cfg.resize_mode \"crop\" is not supported (shortest, longest or squash)"},
  };
  for (const Refusal& r : cases) {
    Json j = base_config();
    const Json::json_pointer p(r.pointer);
    if (r.value.is_null()) j[p.parent_pointer()].erase(p.back());
    else j[p] = r.value;
    const std::string got = error_of(j);
    EXPECT_EQ(got.substr(0, r.message.size()), r.message) << r.pointer;
    EXPECT_EQ(got.find('\n'), std::string::npos) << got;
  }
}

}  // namespace
}  // namespace zeroshot::models
