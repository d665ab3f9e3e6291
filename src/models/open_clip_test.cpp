// OpenCLIP checkpoints: the config mapping and its refusals (configs written here), and ClipModel over
// open_clip_to_hf() against what open_clip itself computed on the checkpoints it saved (tests/reference, made at
// test time into <build>/reference-fixtures; tolerances of fixtures/README.md).
#include "models/open_clip.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "support/compare.h"
#include "support/errors.h"
#include "support/reference.h"
#include "support/temp_dir.h"
#include "text/clip_tokenizer.h"
#include "zeroshot/error.h"

namespace zeroshot::models {
namespace {

namespace fs = std::filesystem;
using io::Json;

const std::string kReference = std::string(ZEROSHOT_BINARY_DIR) + "/reference-fixtures";

using zeroshot::testing::file_placeholder;
using zeroshot::testing::max_abs;
using zeroshot::testing::max_abs_diff;
using zeroshot::testing::TempDir;

std::string file_name_safe(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

// A ViT-B/32-like config in open_clip_config.json form.
Json base_config() {
  return Json::parse(R"({
    "model_cfg": {
      "embed_dim": 512,
      "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
      "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}
    },
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}
  })");
}

OpenClipConfig load(const Json& j) {
  const TempDir dir;
  return load_open_clip_config(dir.file("open_clip_config.json", j.dump()));
}

// The error message of loading `j`, with the temp path replaced by "FILE".
std::string error_of(const Json& j) {
  const TempDir dir;
  const std::string path = dir.file("open_clip_config.json", j.dump());
  return file_placeholder(zeroshot::testing::error_of([&] { load_open_clip_config(path); }), path);
}

TEST(OpenClipConfig, ViTB32Defaults) {
  const OpenClipConfig c = load(base_config());
  EXPECT_EQ(c.clip.projection_dim, 512);
  EXPECT_EQ(c.clip.vision.hidden_size, 768);
  EXPECT_EQ(c.clip.vision.num_heads, 12);  // head_width 64
  EXPECT_EQ(c.clip.vision.intermediate_size, 3072);
  EXPECT_EQ(c.clip.vision.num_layers, 12);
  EXPECT_EQ(c.clip.vision.image_size, 224);
  EXPECT_EQ(c.clip.vision.patch_size, 32);
  EXPECT_EQ(c.clip.vision.act, nn::Act::Gelu);  // quick_gelu defaults to false: nn.GELU
  EXPECT_EQ(c.clip.text.act, nn::Act::Gelu);
  EXPECT_FLOAT_EQ(c.clip.vision.layer_norm_eps, 1e-5f);
  EXPECT_EQ(c.clip.text.hidden_size, 512);
  EXPECT_EQ(c.clip.text.num_heads, 8);
  EXPECT_EQ(c.clip.text.intermediate_size, 2048);
  EXPECT_EQ(c.clip.text.vocab_size, 49408);
  EXPECT_EQ(c.clip.text.max_positions, 77);
  EXPECT_EQ(c.clip.text.eos_token_id, 2);  // argmax pooling
  EXPECT_EQ(c.context_length, 77);
  EXPECT_EQ(c.preprocess.size, 224);
  EXPECT_EQ(c.preprocess.interpolation, OpenClipInterpolation::Bicubic);
  EXPECT_EQ(c.preprocess.resize_mode, OpenClipResizeMode::Shortest);
  EXPECT_EQ(c.preprocess.fill_color, 0);
  EXPECT_FLOAT_EQ(c.preprocess.mean[0], 0.48145466f);
  EXPECT_FLOAT_EQ(c.preprocess.std[2], 0.27577711f);
}

TEST(OpenClipConfig, Options) {
  Json j = base_config();
  Json& m = j["model_cfg"];
  m["quick_gelu"] = true;
  m["vision_cfg"] = Json::parse(R"({"image_size": [336, 336], "layers": 2, "width": 96, "head_width": 40,
                                    "mlp_ratio": 4.3637, "patch_size": [14, 14], "patch_dropout": 0.5,
                                    "ls_init_value": null, "pool_type": "tok", "output_tokens": false})");
  m["text_cfg"] = Json::parse(R"({"context_length": 32, "width": 100, "heads": 5, "layers": 1, "mlp_ratio": 0.29,
                                  "pad_id": 0, "pool_type": "argmax", "proj_bias": false, "tokenizer_kwargs": {}})");
  m["custom_text"] = true;
  m["init_logit_scale"] = 2.3;
  j["preprocess_cfg"] = Json::parse(R"({"size": 999, "mean": 0.5, "std": [0.1, 0.2, 0.3], "interpolation": "random",
                                       "resize_mode": "squash", "fill_color": 128, "mode": "RGB", "unknown": 1})");
  const OpenClipConfig c = load(j);
  EXPECT_EQ(c.clip.vision.act, nn::Act::QuickGelu);
  EXPECT_EQ(c.clip.text.act, nn::Act::QuickGelu);
  EXPECT_EQ(c.clip.vision.num_heads, 2);            // 96 // 40, as open_clip (head dim 48)
  EXPECT_EQ(c.clip.vision.intermediate_size, 418);  // int(96 * 4.3637) = int(418.9152)
  EXPECT_EQ(c.clip.text.intermediate_size, 28);     // int(100 * 0.29) = int(28.999999999999996)
  EXPECT_EQ(c.clip.vision.image_size, 336);
  EXPECT_EQ(c.clip.vision.patch_size, 14);
  EXPECT_EQ(c.context_length, 32);
  EXPECT_EQ(c.clip.text.max_positions, 32);
  EXPECT_EQ(c.clip.text.vocab_size, 49408);
  EXPECT_EQ(c.preprocess.size, 336);  // the tower's image_size wins over preprocess_cfg.size, as in open_clip
  EXPECT_EQ(c.preprocess.interpolation, OpenClipInterpolation::Bicubic);
  EXPECT_EQ(c.preprocess.resize_mode, OpenClipResizeMode::Squash);
  EXPECT_EQ(c.preprocess.fill_color, 128);
  EXPECT_EQ(c.preprocess.mean, (std::array<float, 3>{0.5f, 0.5f, 0.5f}));
  EXPECT_EQ(c.preprocess.std, (std::array<float, 3>{0.1f, 0.2f, 0.3f}));

  j["preprocess_cfg"] = Json::parse(R"({"interpolation": "bilinear", "resize_mode": "longest"})");
  const OpenClipConfig d = load(j);
  EXPECT_EQ(d.preprocess.interpolation, OpenClipInterpolation::Bilinear);
  EXPECT_EQ(d.preprocess.resize_mode, OpenClipResizeMode::Longest);
  EXPECT_FLOAT_EQ(d.preprocess.mean[1], 0.4578275f);  // absent: OPENAI_DATASET_MEAN

  // A bare model config (open_clip's model_configs/*.json) reads the same, with default preprocessing.
  const OpenClipConfig bare = load(j["model_cfg"]);
  EXPECT_EQ(bare.clip.vision.intermediate_size, 418);
  EXPECT_EQ(bare.preprocess.resize_mode, OpenClipResizeMode::Shortest);
}

struct Refusal {
  std::string what;     // test name
  std::string pointer;  // JSON pointer to set
  Json value;
  std::string message;
};

TEST(OpenClipConfig, Refusals) {
  const std::vector<Refusal> cases = {
      {"timm", "/model_cfg/vision_cfg/timm_model_name", "fastvit_mci1",
       "FILE: model_cfg.vision_cfg.timm_model_name \"fastvit_mci1\": timm vision towers are not supported (only ViT "
       "CLIP towers)"},
      {"resnet", "/model_cfg/vision_cfg/layers", Json::array({3, 4, 6, 3}),
       "FILE: model_cfg.vision_cfg.layers [3,4,6,3]: ResNet (ModifiedResNet) vision towers are not supported (only ViT "
       "CLIP towers)"},
      {"coca", "/model_cfg/multimodal_cfg", Json::object({{"layers", 12}}),
       "FILE: model_cfg.multimodal_cfg: CoCa models (captioning decoder) are not supported"},
      {"hf_text", "/model_cfg/text_cfg/hf_model_name", "xlm-roberta-base",
       "FILE: model_cfg.text_cfg.hf_model_name \"xlm-roberta-base\": Hugging Face text towers are not supported (only "
       "CLIP text transformers)"},
      {"attn_pool", "/model_cfg/vision_cfg/attentional_pool", true,
       "FILE: model_cfg.vision_cfg.attentional_pool true: attentional pooling (CoCa-style) is not supported"},
      {"modern_text", "/model_cfg/text_cfg/text_arch", "modern",
       "FILE: model_cfg.text_cfg.text_arch \"modern\": only the CLIP text transformer is supported"},
      {"ls", "/model_cfg/vision_cfg/ls_init_value", 1e-5,
       "FILE: model_cfg.vision_cfg.ls_init_value 1e-05 is not supported (only the default null is built)"},
      {"no_ln_pre", "/model_cfg/vision_cfg/no_ln_pre", true,
       "FILE: model_cfg.vision_cfg.no_ln_pre true is not supported (only the default false is built)"},
      {"final_ln", "/model_cfg/vision_cfg/final_ln_after_pool", true,
       "FILE: model_cfg.vision_cfg.final_ln_after_pool true is not supported (only the default false is built)"},
      {"avg_pool", "/model_cfg/vision_cfg/pool_type", "avg",
       "FILE: model_cfg.vision_cfg.pool_type \"avg\" is not supported (only the default \"tok\" is built)"},
      {"text_pool", "/model_cfg/text_cfg/pool_type", "last",
       "FILE: model_cfg.text_cfg.pool_type \"last\" is not supported (only the default \"argmax\" is built)"},
      {"proj_bias", "/model_cfg/text_cfg/proj_bias", true,
       "FILE: model_cfg.text_cfg.proj_bias true is not supported (only the default false is built)"},
      {"pos_embed", "/model_cfg/vision_cfg/pos_embed_type", "sin_cos_2d",
       "FILE: model_cfg.vision_cfg.pos_embed_type \"sin_cos_2d\" is not supported (only the default \"learnable\" is "
       "built)"},
      {"act_kwargs", "/model_cfg/vision_cfg/act_kwargs", Json::object({{"approximate", "tanh"}}),
       "FILE: model_cfg.vision_cfg.act_kwargs {\"approximate\":\"tanh\"} is not supported (only the default {} is "
       "built)"},
      {"norm_kwargs", "/model_cfg/text_cfg/norm_kwargs", Json::object({{"eps", 1e-6}}),
       "FILE: model_cfg.text_cfg.norm_kwargs {\"eps\":1e-06} is not supported (only the default {} is built)"},
      {"embed_cls", "/model_cfg/text_cfg/embed_cls", true,
       "FILE: model_cfg.text_cfg.embed_cls true is not supported (only the default false is built)"},
      {"no_causal", "/model_cfg/text_cfg/no_causal_mask", true,
       "FILE: model_cfg.text_cfg.no_causal_mask true is not supported (only the default false is built)"},
      {"qk_norm", "/model_cfg/vision_cfg/qk_norm", true,
       "FILE: model_cfg.vision_cfg.qk_norm true is not supported (only the default false is built)"},
      {"logit_bias", "/model_cfg/init_logit_bias", -10.0,
       "FILE: model_cfg.init_logit_bias -10.0 is not supported (only the default null is built)"},
      {"hf_tokenizer", "/model_cfg/text_cfg/hf_tokenizer_name", "bert-base-uncased",
       "FILE: model_cfg.text_cfg.hf_tokenizer_name \"bert-base-uncased\" is not supported (only the default \"\" is "
       "built)"},
      {"tokenizer_kwargs", "/model_cfg/text_cfg/tokenizer_kwargs", Json::object({{"clean", "canonicalize"}}),
       "FILE: model_cfg.text_cfg.tokenizer_kwargs {\"clean\":\"canonicalize\"} is not supported (only the default {} "
       "is built)"},
      {"unknown_key", "/model_cfg/vision_cfg/rope", true,
       "FILE: model_cfg.vision_cfg.rope: unknown option (not part of the OpenCLIP ViT CLIP models this engine builds)"},
      {"unknown_top", "/model_cfg/audio_cfg", Json::object(),
       "FILE: model_cfg.audio_cfg: unknown option (not part of the OpenCLIP ViT CLIP models this engine builds)"},
      {"non_square", "/model_cfg/vision_cfg/image_size", Json::array({224, 336}),
       "FILE: model_cfg.vision_cfg.image_size [224,336] is not supported (only square sizes are built)"},
      {"indivisible", "/model_cfg/vision_cfg/image_size", 100,
       "FILE: model_cfg.vision_cfg.image_size 100 is not divisible by patch_size 32"},
      {"heads", "/model_cfg/vision_cfg/head_width", 1000,
       "FILE: model_cfg.vision_cfg.width 768 and head_width 1000 give no whole number of heads"},
      {"text_heads", "/model_cfg/text_cfg/heads", 7, "FILE: model_cfg.text_cfg.width 512 is not divisible by heads 7"},
      {"width", "/model_cfg/text_cfg/width", -1, "FILE: model_cfg.text_cfg.width must be a positive integer, got -1"},
      {"ratio", "/model_cfg/vision_cfg/mlp_ratio", "4",
       "FILE: model_cfg.vision_cfg.mlp_ratio must be a positive number, got \"4\""},
      {"quick", "/model_cfg/quick_gelu", "yes", "FILE: model_cfg.quick_gelu must be true or false, got \"yes\""},
      {"embed", "/model_cfg/embed_dim", nullptr, "FILE: model_cfg.embed_dim is missing"},
      {"vision", "/model_cfg/vision_cfg", 3, "FILE: model_cfg.vision_cfg is not an object"},
      {"mode", "/preprocess_cfg/mode", "L",
       "FILE: preprocess_cfg.mode \"L\" is not supported (open_clip allows only \"RGB\")"},
      {"interp", "/preprocess_cfg/interpolation", "nearest",
       "FILE: preprocess_cfg.interpolation \"nearest\" is not supported (bicubic, bilinear or random)"},
      {"resize", "/preprocess_cfg/resize_mode", "crop",
       "FILE: preprocess_cfg.resize_mode \"crop\" is not supported (shortest, longest or squash)"},
      {"std", "/preprocess_cfg/std", Json::array({0.1, 0.0, 0.1}),
       "FILE: preprocess_cfg.std must be 3 positive numbers, got [0.1,0.0,0.1]"},
      {"mean", "/preprocess_cfg/mean", Json::array({0.1, 0.2}),
       "FILE: preprocess_cfg.mean must be 3 numbers, got [0.1,0.2]"},
      {"fill", "/preprocess_cfg/fill_color", 300, "FILE: preprocess_cfg.fill_color must be an integer 0..255, got 300"},
  };
  for (const Refusal& r : cases) {
    Json j = base_config();
    j[Json::json_pointer(r.pointer)] = r.value;
    if (r.value.is_null())
      j[Json::json_pointer(r.pointer).parent_pointer()].erase(Json::json_pointer(r.pointer).back());
    EXPECT_EQ(error_of(j), r.message) << r.what;
  }
  const TempDir dir;
  const std::string bad = dir.file("open_clip_config.json", "{\"model_cfg\": ");
  try {
    load_open_clip_config(bad);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(bad + ": invalid JSON", 0), 0u) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------- weights

std::vector<float> normalized(const float* v, int dim) {
  double s = 0;
  for (int k = 0; k < dim; ++k) s += static_cast<double>(v[k]) * v[k];
  std::vector<float> out(v, v + dim);
  for (float& x : out) x = static_cast<float>(x / std::sqrt(s));
  return out;
}

struct Expected {
  Json json;
  std::vector<std::string> images;
  std::vector<std::vector<int32_t>> input_ids;
  std::vector<float> pixels, image_embeds, text_embeds, logits;
};

Expected load_expected(const std::string& dir) {
  const zeroshot::testing::ExpectedOutputs ref(dir);
  Expected e;
  e.json = ref.json;
  e.images = ref.strings("images");
  e.input_ids = ref.input_ids();
  e.pixels = ref.all_pixel_values();
  e.image_embeds = ref.get("image_embeds");
  e.text_embeds = ref.get("text_embeds");
  e.logits = ref.get("logits_per_image");
  return e;
}

// ClipModel over an OpenCLIP checkpoint against open_clip's outputs: image embeddings from open_clip's pixel
// values, text embeddings from its ids, logit_scale, logits and the zero-shot cases (prompts tokenized here).
void check_against_open_clip(const std::string& dir, const std::string& weights_file) {
  SCOPED_TRACE(dir + " / " + weights_file);
  const OpenClipConfig cfg = load_open_clip_config(dir + "/open_clip_config.json");
  auto src = std::make_shared<const io::WeightStore>(io::WeightStore::open(dir + "/" + weights_file));
  const ClipModel model(cfg.clip, open_clip_to_hf(src, cfg.clip), 2);
  const Expected e = load_expected(dir);
  const int dim = cfg.clip.projection_dim, ni = static_cast<int>(e.images.size()),
            nt = static_cast<int>(e.input_ids.size());
  const Json& pp = e.json.at("preprocess_cfg");
  EXPECT_EQ(pp.at("size"), Json::array({cfg.preprocess.size, cfg.preprocess.size}));
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(cfg.preprocess.mean[c], pp.at("mean")[c].get<float>());
    EXPECT_EQ(cfg.preprocess.std[c], pp.at("std")[c].get<float>());
  }
  EXPECT_EQ(cfg.preprocess.interpolation == OpenClipInterpolation::Bilinear, pp.at("interpolation") == "bilinear");
  const std::map<std::string, OpenClipResizeMode> modes = {{"shortest", OpenClipResizeMode::Shortest},
                                                           {"longest", OpenClipResizeMode::Longest},
                                                           {"squash", OpenClipResizeMode::Squash}};
  EXPECT_EQ(cfg.preprocess.resize_mode, modes.at(pp.at("resize_mode").get<std::string>()));
  EXPECT_EQ(cfg.preprocess.fill_color, pp.at("fill_color").get<int>());
  EXPECT_EQ(cfg.context_length, e.json.at("context_length").get<int>());
  EXPECT_EQ(model.logit_scale(), e.json.at("logit_scale").get<float>());

  std::vector<float> img(static_cast<size_t>(ni) * dim), txt(static_cast<size_t>(nt) * dim);
  model.encode_images(e.pixels.data(), ni, img.data());
  model.encode_texts(e.input_ids, txt.data());
  ASSERT_EQ(e.image_embeds.size(), img.size());
  ASSERT_EQ(e.text_embeds.size(), txt.size());
  EXPECT_LE(max_abs_diff(img.data(), e.image_embeds.data(), img.size()), 1e-4f * max_abs(e.image_embeds));
  EXPECT_LE(max_abs_diff(txt.data(), e.text_embeds.data(), txt.size()), 1e-4f * max_abs(e.text_embeds));
  const float scale = std::exp(model.logit_scale());
  for (int i = 0; i < ni; ++i)
    for (int j = 0; j < nt; ++j) {
      const auto a = normalized(&img[static_cast<size_t>(i) * dim], dim),
                 b = normalized(&txt[static_cast<size_t>(j) * dim], dim);
      double dot = 0;
      for (int k = 0; k < dim; ++k) dot += static_cast<double>(a[k]) * b[k];
      EXPECT_NEAR(scale * dot, e.logits[static_cast<size_t>(i) * nt + j], 1e-3);
    }

  // Zero-shot: each label's prompts embedded, normalized, averaged, normalized; softmax(scale * cosine).
  const text::ClipTokenizer tok = text::ClipTokenizer::from_dir(dir);
  for (const Json& zc : e.json.at("zero_shot")) {
    const std::string image = zc.at("image");
    const int row = static_cast<int>(std::find(e.images.begin(), e.images.end(), image) - e.images.begin());
    const auto x = normalized(&img[static_cast<size_t>(row) * dim], dim);
    std::vector<double> logits;
    std::vector<std::string> labels;
    for (const Json& l : zc.at("labels")) {
      std::vector<std::vector<int32_t>> ids;
      for (const Json& t : zc.at("templates")) {
        std::string p = t.get<std::string>();
        p.replace(p.find("{}"), 2, l.get<std::string>());
        ids.push_back(tok.encode(p, static_cast<size_t>(cfg.context_length)));
      }
      std::vector<float> emb(ids.size() * dim);
      model.encode_texts(ids, emb.data());
      std::vector<float> mean(dim, 0.0f);
      for (size_t k = 0; k < ids.size(); ++k) {
        const auto n = normalized(&emb[k * dim], dim);
        for (int d = 0; d < dim; ++d) mean[d] += n[d] / static_cast<float>(ids.size());
      }
      const auto cls = normalized(mean.data(), dim);
      double dot = 0;
      for (int d = 0; d < dim; ++d) dot += static_cast<double>(x[d]) * cls[d];
      logits.push_back(scale * dot);
      labels.push_back(l.get<std::string>());
    }
    const double mx = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (double& v : logits) sum += (v = std::exp(v - mx));
    std::vector<std::pair<double, std::string>> got;
    for (size_t k = 0; k < logits.size(); ++k) got.emplace_back(logits[k] / sum, labels[k]);
    std::stable_sort(got.begin(), got.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    const Json& want = zc.at("result");
    ASSERT_EQ(want.size(), got.size());
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].second, want[k].at("label").get<std::string>()) << image << " #" << k;
      EXPECT_NEAR(got[k].first, want[k].at("score").get<double>(), 1e-4) << image << " " << got[k].second;
    }
  }
}

class OpenClipReference : public ::testing::TestWithParam<std::string> {
 protected:
  std::string dir() const { return kReference + "/open_clip/" + GetParam(); }
};

TEST_P(OpenClipReference, SafetensorsMatchesOpenClip) { check_against_open_clip(dir(), "open_clip_model.safetensors"); }

TEST_P(OpenClipReference, BinMatchesOpenClip) {
#if __has_include("io/torch_checkpoint.h")
  check_against_open_clip(dir(), "open_clip_pytorch_model.bin");
#else
  GTEST_SKIP() << "open_clip_pytorch_model.bin: the PyTorch .bin reader (io/torch_checkpoint.h) is not merged yet";
#endif
}

// open_clip's tokenizer gives the same ids as ClipTokenizer (context_length truncation included), except for
// texts that spell OpenAI's special tokens: open_clip's special tokens are "<start_of_text>"/"<end_of_text>", so
// it splits "<|endoftext|>" as ordinary text. Texts that need ftfy's repairs are left out (see ClipTokenizer).
TEST_P(OpenClipReference, TokenizerIdsMatch) {
  const Expected e = load_expected(dir());
  const text::ClipTokenizer tok = text::ClipTokenizer::from_dir(dir());
  const size_t ctx = e.json.at("context_length").get<size_t>();
  std::vector<std::string> skip;
  for (const Json& s : e.json.at("ftfy_sensitive_texts")) skip.push_back(s.get<std::string>());
  const Json& texts = e.json.at("texts");
  int compared = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string t = texts[i].get<std::string>();
    if (std::find(skip.begin(), skip.end(), t) != skip.end() || t.find("<|") != std::string::npos) continue;
    EXPECT_EQ(tok.encode(t, ctx), e.input_ids[i]) << t;
    ++compared;
  }
  EXPECT_GE(compared, 20);
}

INSTANTIATE_TEST_SUITE_P(Models, OpenClipReference,
                         ::testing::Values("from-hf-quickgelu", "from-hf-gelu-f16", "native-gelu-longest",
                                           "native-quickgelu-squash"),
                         [](const auto& info) { return file_name_safe(info.param); });

// The OpenCLIP copies of the shared HF fixtures' weights give the shared fixtures' own expected embeddings
// (from the shared pixel values and ids: same weights, same numbers).
TEST(OpenClipFromHf, SameEmbeddingsAsSharedFixture) {
  for (const auto& [oc, hf] : std::vector<std::pair<std::string, std::string>>{
           {"from-hf-quickgelu", "clip-tiny-quickgelu"}, {"from-hf-gelu-f16", "clip-tiny-gelu-f16"}}) {
    SCOPED_TRACE(oc);
    const std::string dir = kReference + "/open_clip/" + oc;
    const OpenClipConfig cfg = load_open_clip_config(dir + "/open_clip_config.json");
    auto src = std::make_shared<const io::WeightStore>(io::WeightStore::open(dir + "/open_clip_model.safetensors"));
    const ClipModel model(cfg.clip, open_clip_to_hf(src, cfg.clip), 2);
    const Expected e = load_expected(std::string(ZEROSHOT_FIXTURES) + "/clip/" + hf);
    const int dim = cfg.clip.projection_dim, ni = static_cast<int>(e.images.size()),
              nt = static_cast<int>(e.input_ids.size());
    std::vector<float> img(static_cast<size_t>(ni) * dim), txt(static_cast<size_t>(nt) * dim);
    model.encode_images(e.pixels.data(), ni, img.data());
    model.encode_texts(e.input_ids, txt.data());
    ASSERT_EQ(img.size(), e.image_embeds.size());
    ASSERT_EQ(txt.size(), e.text_embeds.size());
    EXPECT_LE(max_abs_diff(img.data(), e.image_embeds.data(), img.size()), 1e-4f * max_abs(e.image_embeds));
    EXPECT_LE(max_abs_diff(txt.data(), e.text_embeds.data(), txt.size()), 1e-4f * max_abs(e.text_embeds));
    // The F16 copy stays F16 and is read as such (no silent re-rounding in between).
    EXPECT_EQ(src->get("visual.proj").dtype, oc == "from-hf-gelu-f16" ? io::DType::F16 : io::DType::F32);
  }
}

// The q/k/v rows are views into the source store, not copies; the transposed projections are owned copies.
TEST(OpenClipWeights, SlicesAreZeroCopy) {
  const std::string dir = kReference + "/open_clip/native-gelu-longest";
  const OpenClipConfig cfg = load_open_clip_config(dir + "/open_clip_config.json");
  auto src = std::make_shared<const io::WeightStore>(io::WeightStore::open(dir + "/open_clip_model.safetensors"));
  const auto hf = open_clip_to_hf(src, cfg.clip);
  const io::TensorView& in = src->get("visual.transformer.resblocks.1.attn.in_proj_weight");
  const int64_t d = cfg.clip.vision.hidden_size;
  const size_t row = static_cast<size_t>(d) * 4;
  EXPECT_EQ(hf->get("vision_model.encoder.layers.1.self_attn.q_proj.weight").data, in.data);
  EXPECT_EQ(hf->get("vision_model.encoder.layers.1.self_attn.k_proj.weight").data, in.data + d * row);
  EXPECT_EQ(hf->get("vision_model.encoder.layers.1.self_attn.v_proj.weight").data, in.data + 2 * d * row);
  EXPECT_EQ(hf->get("vision_model.encoder.layers.1.self_attn.v_proj.weight").shape, (std::vector<int64_t>{d, d}));
  const io::TensorView& p = src->get("text_projection");
  const io::TensorView& t = hf->get("text_projection.weight");
  EXPECT_EQ(t.shape, (std::vector<int64_t>{p.shape[1], p.shape[0]}));
  const auto pv = io::to_f32(p), tv = io::to_f32(t);
  for (int64_t i = 0; i < p.shape[0]; ++i)
    for (int64_t o = 0; o < p.shape[1]; ++o) ASSERT_EQ(tv[o * p.shape[0] + i], pv[i * p.shape[1] + o]);
}

// The same weights in the layouts open_clip also loads: CustomTextCLIP's ("text." before the text tower), saved
// from a DataParallel model ("module." before everything), with the attn_mask buffer older versions saved.
TEST(OpenClipWeights, CustomTextModulePrefixAndAttnMask) {
  const std::string dir = kReference + "/open_clip/native-gelu-longest";
  const OpenClipConfig cfg = load_open_clip_config(dir + "/open_clip_config.json");
  const io::SafeTensorsFile file(dir + "/open_clip_model.safetensors");
  std::vector<io::TensorData> tensors;
  std::vector<std::string> names;
  names.reserve(file.tensors().size() + 1);
  for (const auto& [name, t] : file.tensors()) {
    const bool text = name.rfind("visual.", 0) != 0 && name != "logit_scale";
    names.push_back("module." + std::string(text ? "text." : "") + name);
    tensors.push_back({names.back(), t.dtype, t.shape, t.data});
  }
  const int ctx = cfg.context_length;
  std::vector<float> mask(static_cast<size_t>(ctx) * ctx, 0.0f);
  names.emplace_back("module.text.attn_mask");
  tensors.push_back({names.back(), io::DType::F32, {ctx, ctx}, mask.data()});
  const TempDir tmp;
  const std::string path = tmp.file("custom.safetensors", "");
  io::write_safetensors(path, tensors);

  auto src = std::make_shared<const io::WeightStore>(io::WeightStore::open(path));
  ASSERT_TRUE(src->has("module.text.token_embedding.weight"));
  const ClipModel model(cfg.clip, open_clip_to_hf(src, cfg.clip), 2);
  const Expected e = load_expected(dir);
  const int dim = cfg.clip.projection_dim;
  std::vector<float> txt(e.input_ids.size() * dim);
  model.encode_texts(e.input_ids, txt.data());
  EXPECT_LE(max_abs_diff(txt.data(), e.text_embeds.data(), txt.size()), 1e-4f * max_abs(e.text_embeds));
}

// open_clip's search order (io::open_clip_weight_files) finds what its save_for_hf writes, safetensors first.
TEST(OpenClipWeights, FileNamesAreWhatOpenClipSaves) {
  const std::string dir = kReference + "/open_clip/native-gelu-longest";
  EXPECT_TRUE(fs::exists(dir + "/" + kOpenClipConfigFile));
  const std::vector<std::string> order = io::open_clip_weight_files();
  ASSERT_GE(order.size(), 3u);
  EXPECT_EQ(order[0], "open_clip_model.safetensors");
  EXPECT_TRUE(fs::exists(dir + "/" + order[0]));
  EXPECT_TRUE(fs::exists(dir + "/open_clip_pytorch_model.bin"));
  EXPECT_LT(std::find(order.begin(), order.end(), "open_clip_model.safetensors") - order.begin(),
            std::find(order.begin(), order.end(), "open_clip_pytorch_model.bin") - order.begin());
}

// The bad inputs of tests/reference: each a one-line error naming the file and the problem.
TEST(OpenClipBad, RefusedWithOneLine) {
  const std::string bad = kReference + "/open_clip-bad/";
  const std::vector<std::pair<std::string, std::string>> config_cases = {
      {"not-json", ": invalid JSON"},
      {"timm-tower", ": model_cfg.vision_cfg.timm_model_name \"fastvit_mci1\": timm vision towers are not supported"},
      {"resnet-tower",
       ": model_cfg.vision_cfg.layers [3,4,6,3]: ResNet (ModifiedResNet) vision towers are not supported"},
      {"coca", ": model_cfg.multimodal_cfg: CoCa models (captioning decoder) are not supported"},
      {"hf-text-tower",
       ": model_cfg.text_cfg.hf_model_name \"xlm-roberta-base\": Hugging Face text towers are not supported"},
  };
  for (const auto& [c, msg] : config_cases) {
    const std::string path = bad + c + "/open_clip_config.json";
    try {
      load_open_clip_config(path);
      ADD_FAILURE() << c << ": no error";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(m.rfind(path + msg, 0), 0u) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
  const std::vector<std::pair<std::string, std::string>> weight_cases = {
      {"unexpected-tensor",
       ": unexpected tensor visual.extra_head.weight (not part of an OpenCLIP ViT CLIP model with this "
       "open_clip_config.json)"},
      {"missing-tensor", ": missing tensor visual.ln_post.weight"},
  };
  for (const auto& [c, msg] : weight_cases) {
    const std::string dir = bad + c;
    const OpenClipConfig cfg = load_open_clip_config(dir + "/open_clip_config.json");
    auto src = std::make_shared<const io::WeightStore>(io::WeightStore::open(dir + "/open_clip_model.safetensors"));
    try {
      open_clip_to_hf(src, cfg.clip);
      ADD_FAILURE() << c << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), dir + "/open_clip_model.safetensors" + msg);
    }
  }
}

// A wrong geometry is reported on the open_clip tensor, before ClipModel sees HF names.
TEST(OpenClipBad, ShapeNamesOpenClipTensor) {
  const std::string dir = kReference + "/open_clip/native-gelu-longest";
  OpenClipConfig cfg = load_open_clip_config(dir + "/open_clip_config.json");
  cfg.clip.vision.intermediate_size += 1;
  auto src = std::make_shared<const io::WeightStore>(io::WeightStore::open(dir + "/open_clip_model.safetensors"));
  try {
    open_clip_to_hf(src, cfg.clip);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor visual.transformer.resblocks.0.mlp.c_fc.weight has shape [120, 48], "
                                         "expected [121, 48] from open_clip_config.json"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace zeroshot::models
