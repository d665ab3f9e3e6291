// SigLIP: the tokenizer and SiglipModel against what transformers computed on
// the random-weight checkpoint it saved (tests/reference/make_siglip.py, made
// at test time into <build>/reference-fixtures), and the inputs they refuse.
// Tolerances: ids exact, embeddings <= 1e-4 x max |value|, logits <= 1e-4
// relative.
#include "models/siglip.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "text/siglip_tokenizer.h"
#include "zeroshot/error.h"

namespace zeroshot::models {
namespace {

namespace fs = std::filesystem;
using io::Json;

const std::string kDir = std::string(ZEROSHOT_BINARY_DIR) + "/reference-fixtures/siglip/siglip-tiny";

struct Expected {
  Json json = io::load_json(kDir + "/expected.json");
  io::SafeTensorsFile tensors{kDir + "/expected.safetensors"};
  std::vector<float> get(const std::string& name) const { return io::to_f32(tensors.tensors().at(name)); }
};

float max_abs(const std::vector<float>& a) {
  float m = 0;
  for (float v : a) m = std::max(m, std::fabs(v));
  return m;
}

std::shared_ptr<const io::WeightStore> weights() {
  return std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(kDir));
}

// A fresh folder per test.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("zs_siglip_" + std::string(info->test_suite_name()) + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string path(const std::string& name) const { return (path_ / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path(name), std::ios::binary) << text;
    return path(name);
  }

 private:
  fs::path path_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(SiglipTokenizer, IdsMatchTransformersPaddedAsThePipeline) {
  const Expected e;
  const text::SiglipTokenizer tok = text::SiglipTokenizer::from_dir(kDir);
  EXPECT_EQ(tok.max_length(), 64u);
  EXPECT_EQ(tok.pad_id(), e.json["pad_token_id"].get<int32_t>());
  const Json& texts = e.json["texts"];
  ASSERT_GT(texts.size(), 20u);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string t = texts[i].get<std::string>();
    const std::vector<int32_t> ids = tok.encode(t);
    EXPECT_EQ(ids.size(), e.json["lengths"][i].get<size_t>()) << t;
    EXPECT_EQ(tok.pad(ids), e.json["input_ids"][i].get<std::vector<int32_t>>()) << t;
  }
  // Over 64 tokens: the first 63 and eos (transformers' truncation=True).
  ASSERT_GE(e.json["long_texts"].size(), 1u);
  for (size_t i = 0; i < e.json["long_texts"].size(); ++i) {
    const std::vector<int32_t> ids = tok.encode(e.json["long_texts"][i].get<std::string>());
    EXPECT_EQ(ids.size(), 64u);
    EXPECT_EQ(ids, e.json["long_input_ids"][i].get<std::vector<int32_t>>());
  }
}

TEST(SiglipTokenizer, MissingOrCorruptSpieceModel) {
  const TempDir d;
  EXPECT_EQ(error_of([&] { text::SiglipTokenizer::from_dir(d.path("")); }),
            d.path("spiece.model") +
                ": not found (a SigLIP model folder needs "
                "its SentencePiece model spiece.model)");
  d.write("spiece.model", "this is not a protobuf");
  const std::string err = error_of([&] { text::SiglipTokenizer::from_dir(d.path("")); });
  EXPECT_EQ(err.rfind(d.path("spiece.model") + ": not a SentencePiece model", 0), 0u) << err;
  d.write("spiece.model", "");
  EXPECT_EQ(error_of([&] { text::SiglipTokenizer::from_dir(d.path("")); }),
            d.path("spiece.model") + ": empty file (not a SentencePiece model)");
  // A valid model whose config names an eos token it does not hold.
  fs::copy_file(kDir + "/spiece.model", d.path("spiece.model"), fs::copy_options::overwrite_existing);
  d.write("tokenizer_config.json", R"({"eos_token": "<eos>"})");
  EXPECT_EQ(error_of([&] { text::SiglipTokenizer::from_dir(d.path("")); }),
            d.path("spiece.model") +
                ": the eos token \"<eos>\" is not a piece "
                "of this SentencePiece model");
}

TEST(SiglipModel, EmbeddingsAndLogitsMatchTransformers) {
  const Expected e;
  const SiglipConfig cfg = SiglipConfig::load(kDir + "/config.json");
  const SiglipModel m(cfg, weights(), ClipOptions{});
  const size_t dim = static_cast<size_t>(cfg.embedding_dim());
  const int32_t pad = e.json["pad_token_id"].get<int32_t>();

  std::vector<std::vector<int32_t>> ids;
  for (size_t i = 0; i < e.json["input_ids"].size(); ++i) {
    std::vector<int32_t> row = e.json["input_ids"][i].get<std::vector<int32_t>>();
    row.resize(e.json["lengths"][i].get<size_t>());
    ids.push_back(row);
  }
  std::vector<float> text(ids.size() * dim);
  m.encode_texts(ids, pad, text.data());
  const std::vector<float> want_text = e.get("text_embeds");
  ASSERT_EQ(want_text.size(), text.size());
  const float text_tol = 1e-4f * max_abs(want_text);
  for (size_t i = 0; i < text.size(); ++i) ASSERT_NEAR(text[i], want_text[i], text_tol) << "text " << i / dim;
  // One at a time gives the same rows (sequences never see each other).
  std::vector<float> one(dim);
  m.encode_texts({ids[3]}, pad, one.data());
  for (size_t j = 0; j < dim; ++j) EXPECT_NEAR(one[j], text[3 * dim + j], text_tol);

  const std::vector<std::string> images = e.json["images"].get<std::vector<std::string>>();
  std::vector<float> px;
  for (const std::string& name : images) {
    const std::vector<float> p = e.get("pixel_values/" + name);
    px.insert(px.end(), p.begin(), p.end());
  }
  std::vector<float> img(images.size() * dim);
  m.encode_images(px.data(), static_cast<int>(images.size()), img.data());
  const std::vector<float> want_img = e.get("image_embeds");
  const float img_tol = 1e-4f * max_abs(want_img);
  for (size_t i = 0; i < img.size(); ++i) ASSERT_NEAR(img[i], want_img[i], img_tol) << images[i / dim];

  // logits_per_image = exp(logit_scale) * cos + logit_bias.
  EXPECT_FLOAT_EQ(m.logit_scale(), e.json["logit_scale"].get<float>());
  EXPECT_FLOAT_EQ(m.logit_bias(), e.json["logit_bias"].get<float>());
  const std::vector<float> want_logits = e.get("logits_per_image");
  const float tol = 1e-4f * max_abs(want_logits);
  for (size_t i = 0; i < images.size(); ++i)
    for (size_t t = 0; t < ids.size(); ++t) {
      double dot = 0, na = 0, nb = 0;
      for (size_t j = 0; j < dim; ++j) {
        dot += img[i * dim + j] * text[t * dim + j];
        na += img[i * dim + j] * img[i * dim + j];
        nb += text[t * dim + j] * text[t * dim + j];
      }
      const double logit = std::exp(m.logit_scale()) * dot / std::sqrt(na * nb) + m.logit_bias();
      ASSERT_NEAR(logit, want_logits[i * ids.size() + t], tol) << images[i] << " x text " << t;
    }
}

TEST(SiglipModel, RefusesBadIds) {
  const SiglipConfig cfg = SiglipConfig::load(kDir + "/config.json");
  const SiglipModel m(cfg, weights(), ClipOptions{});
  std::vector<float> out(static_cast<size_t>(cfg.embedding_dim()));
  EXPECT_EQ(error_of([&] { m.encode_texts({std::vector<int32_t>(65, 5)}, 1, out.data()); }),
            "input_ids[0]: 65 tokens, more than max_position_embeddings 64");
  EXPECT_EQ(error_of([&] { m.encode_texts({{}}, 1, out.data()); }), "input_ids[0]: empty token sequence");
  EXPECT_EQ(error_of([&] {
              m.encode_texts({{5, 1}}, 1, out.data(), 65);
            }),
            "encode_texts: padded length 65 outside 1..max_position_embeddings 64");
  EXPECT_EQ(error_of([&] { m.encode_texts({std::vector<int32_t>(9, 5)}, 1, out.data(), 8); }),
            "input_ids[0]: 9 tokens, more than the padded length 8");
  EXPECT_NE(error_of([&] {
              m.encode_texts({{5, 1 << 20}}, 1, out.data());
            }).find("outside the vocabulary"),
            std::string::npos);
}

TEST(SiglipConfig, RefusesWhatIsNotBuilt) {
  const TempDir d;
  Json base = io::load_json(kDir + "/config.json");
  auto err = [&](const Json& j) {
    const std::string p = d.write("config.json", j.dump());
    std::string m = error_of([&] { SiglipConfig::load(p); });
    if (m.rfind(p + ": ", 0) == 0) m = "FILE: " + m.substr(p.size() + 2);
    return m;
  };
  EXPECT_EQ(err(base), "(no error)");
  Json j = base;
  j["vision_config"]["vision_use_head"] = false;
  EXPECT_EQ(err(j),
            "FILE: vision_config.vision_use_head false is not supported "
            "(SiglipModel pools images with its attention-pooling head)");
  j = base;
  j["vision_config"]["hidden_act"] = "relu";
  EXPECT_EQ(err(j),
            "FILE: vision_config.hidden_act \"relu\" is not supported "
            "(expected gelu_pytorch_tanh, gelu_new, gelu or quick_gelu)");
  j = base;
  j["text_config"]["hidden_size"] = 64;
  j["text_config"]["num_attention_heads"] = 4;
  EXPECT_EQ(err(j).rfind("FILE: text_config.hidden_size 64 differs from "
                         "vision_config.hidden_size 48",
                         0),
            0u)
      << err(j);
  j = base;
  j["model_type"] = "siglip3";
  EXPECT_EQ(err(j), "FILE: model_type \"siglip3\" is not supported (expected \"siglip\")");
  // siglip2 (NaFlex): the positional grid's num_patches (default 256) must be a square.
  j = base;
  j["model_type"] = "siglip2";
  EXPECT_EQ(err(j), "(no error)");
  EXPECT_EQ(SiglipConfig::load(d.write("config.json", j.dump())).num_patches, 256);
  j["vision_config"]["num_patches"] = 60;
  EXPECT_EQ(err(j), "FILE: vision_config.num_patches 60 is not a square number (the positional grid)");
  j["vision_config"]["num_patches"] = 0;
  EXPECT_EQ(err(j).rfind("FILE: vision_config.num_patches must be a positive integer", 0), 0u) << err(j);
  // Defaults are SiglipConfig's (google/siglip-base-patch16-224's geometry).
  const Json empty = Json::parse(R"({"model_type": "siglip"})");
  const SiglipConfig c = SiglipConfig::load(d.write("config.json", empty.dump()));
  EXPECT_EQ(c.vision.image_size, 224);
  EXPECT_EQ(c.vision.patch_size, 16);
  EXPECT_EQ(c.text.max_positions, 64);
  EXPECT_EQ(c.text.vocab_size, 32000);
  EXPECT_EQ(c.vision.act, nn::Act::GeluTanh);
  EXPECT_FLOAT_EQ(c.text.layer_norm_eps, 1e-6f);
}

TEST(SiglipModel, RefusesWeightsOfAnotherShape) {
  const SiglipConfig cfg = SiglipConfig::load(kDir + "/config.json");
  SiglipConfig other = cfg;
  other.vision.intermediate_size += 1;  // every fc1 of the vision tower has the wrong shape now
  const std::string err = error_of([&] { SiglipModel(other, weights(), ClipOptions{}); });
  EXPECT_NE(err.find("vision_model.encoder.layers.0.mlp.fc1.weight"), std::string::npos) << err;
}

}  // namespace
}  // namespace zeroshot::models
