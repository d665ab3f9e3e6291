// SigLIP and SigLIP 2 (fixed resolution) at the model layer: the SentencePiece tokenizer (SigLIP), the
// tokenizer.json BPE tokenizer (Gemma's layout, SigLIP 2) and SiglipModel against what transformers computed on the
// random-weight checkpoints it saved (tests/reference/make_siglip.py, make_siglip2.py, made at test time into
// <build>/reference-fixtures), and the inputs and files they refuse. The public API's parity over every
// SigLIP-family fixture is tests/siglip_parity_test.cpp.
// Tolerances: ids exact, embeddings <= 1e-4 x max |value|, logits <= 1e-4 relative.
#include "models/siglip.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "support/errors.h"
#include "support/temp_dir.h"
#include "text/bpe_json_tokenizer.h"
#include "text/siglip_tokenizer.h"
#include "zeroshot/error.h"

namespace zeroshot::models {
namespace {

namespace fs = std::filesystem;
using io::Json;
using testing::error_of;
using testing::file_placeholder;
using testing::TempDir;

const std::string kFixtures = std::string(ZEROSHOT_BINARY_DIR) + "/reference-fixtures/siglip/";
const std::string kDir = kFixtures + "siglip-tiny";
const std::string kSiglip2 = kFixtures + "siglip2-tiny";
const std::string kLeft = kFixtures + "siglip2-tiny-left";

struct Expected {
  explicit Expected(const std::string& dir = kDir)
      : json(io::load_json(dir + "/expected.json")), tensors(dir + "/expected.safetensors") {}
  Json json;
  io::SafeTensorsFile tensors;
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

// The SentencePiece (SigLIP) and tokenizer.json BPE (SigLIP 2) tokenizers on their fixtures: ids as transformers
// gives them (SiglipTokenizer, GemmaTokenizerFast), padded to 64 as the pipeline pads, and past 64 tokens the first
// 63 and the end-of-sequence token (truncation=True).
template <class Tok>
struct TokenizerFixture;
template <>
struct TokenizerFixture<text::SiglipTokenizer> {
  static std::string dir() { return kDir; }
  static constexpr size_t kMinTexts = 20;
};
template <>
struct TokenizerFixture<text::BpeJsonTokenizer> {
  static std::string dir() { return kSiglip2; }
  static constexpr size_t kMinTexts = 30;
};

template <class Tok>
class SiglipTokenizers : public ::testing::Test {};
struct TokenizerName {
  template <class Tok>
  static std::string GetName(int) {
    return std::is_same_v<Tok, text::SiglipTokenizer> ? "SentencePiece" : "BpeJson";
  }
};
using Tokenizers = ::testing::Types<text::SiglipTokenizer, text::BpeJsonTokenizer>;
TYPED_TEST_SUITE(SiglipTokenizers, Tokenizers, TokenizerName);

TYPED_TEST(SiglipTokenizers, IdsMatchTransformersPaddedAsThePipeline) {
  const std::string dir = TokenizerFixture<TypeParam>::dir();
  const Expected e(dir);
  const TypeParam tok = TypeParam::from_dir(dir);
  EXPECT_EQ(tok.max_length(), 64u);
  EXPECT_EQ(tok.pad_id(), e.json["pad_token_id"].get<int32_t>());
  const Json& texts = e.json["texts"];
  ASSERT_GT(texts.size(), TokenizerFixture<TypeParam>::kMinTexts);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string t = texts[i].get<std::string>();
    const std::vector<int32_t> ids = tok.encode(t);
    EXPECT_EQ(ids.size(), e.json["lengths"][i].get<size_t>()) << t;
    EXPECT_EQ(tok.pad(ids), e.json["input_ids"][i].get<std::vector<int32_t>>()) << t;
  }
  ASSERT_GE(e.json["long_texts"].size(), 1u);
  for (size_t i = 0; i < e.json["long_texts"].size(); ++i) {
    const std::vector<int32_t> ids = tok.encode(e.json["long_texts"][i].get<std::string>());
    EXPECT_EQ(ids.size(), 64u);
    EXPECT_EQ(ids, e.json["long_input_ids"][i].get<std::vector<int32_t>>());
  }
}

TEST(SiglipTokenizer, MissingOrCorruptSpieceModel) {
  const TempDir d("siglip");
  EXPECT_EQ(error_of([&] { text::SiglipTokenizer::from_dir(d.str()); }), (d / "spiece.model") +
                                                                             ": not found (a SigLIP model folder needs "
                                                                             "its SentencePiece model spiece.model)");
  d.file("spiece.model", "this is not a protobuf");
  const std::string err = error_of([&] { text::SiglipTokenizer::from_dir(d.str()); });
  EXPECT_EQ(err.rfind((d / "spiece.model") + ": not a SentencePiece model", 0), 0u) << err;
  d.file("spiece.model", "");
  EXPECT_EQ(error_of([&] { text::SiglipTokenizer::from_dir(d.str()); }),
            (d / "spiece.model") + ": empty file (not a SentencePiece model)");
  // A valid model whose config names an eos token it does not hold.
  fs::copy_file(kDir + "/spiece.model", (d / "spiece.model"), fs::copy_options::overwrite_existing);
  d.file("tokenizer_config.json", R"({"eos_token": "<eos>"})");
  EXPECT_EQ(error_of([&] { text::SiglipTokenizer::from_dir(d.str()); }), (d / "spiece.model") +
                                                                             ": the eos token \"<eos>\" is not a piece "
                                                                             "of this SentencePiece model");
}

// model_max_length: SigLIP's 64, another limit, or transformers' VERY_LARGE_INTEGER (int(1e30), a float to a JSON
// reader; T5Tokenizer folders carry it) for none of the tokenizer's own; anything else is refused.
TEST(SiglipTokenizer, ModelMaxLength) {
  const TempDir d("siglip");
  fs::copy_file(kDir + "/spiece.model", d / "spiece.model");
  auto max_length = [&](const std::string& value) {
    d.file("tokenizer_config.json", R"({"model_max_length": )" + value + "}");
    return text::SiglipTokenizer::from_dir(d.str()).max_length();
  };
  EXPECT_EQ(max_length("16"), 16u);
  EXPECT_EQ(max_length("1000000000000000019884624838656"), 64u);
  EXPECT_EQ(max_length("18446744073709551615"), 64u);
  for (const std::string bad : {"1", "-5", "2.5", "\"64\""})
    EXPECT_EQ(error_of([&] { max_length(bad); }),
              (d / "tokenizer_config.json") + ": model_max_length must be an integer >= 2")
        << bad;
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
  const TempDir d("siglip");
  Json base = io::load_json(kDir + "/config.json");
  auto err = [&](const Json& j) {
    const std::string p = d.file("config.json", j.dump());
    return file_placeholder(error_of([&] { SiglipConfig::load(p); }), p);
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
  j["vision_config"]["image_size"] = 8;  // a remainder is fine (siglip-tiny-remainder), no whole patch is not
  EXPECT_EQ(err(j), "FILE: vision_config.image_size 8 is smaller than patch_size 16");
  j = base;
  j["model_type"] = "siglip3";
  EXPECT_EQ(err(j), "FILE: model_type \"siglip3\" is not supported (expected \"siglip\")");
  // siglip2 (NaFlex): the positional grid's num_patches (default 256) must be a square.
  j = base;
  j["model_type"] = "siglip2";
  EXPECT_EQ(err(j), "(no error)");
  EXPECT_EQ(SiglipConfig::load(d.file("config.json", j.dump())).num_patches, 256);
  j["vision_config"]["num_patches"] = 60;
  EXPECT_EQ(err(j), "FILE: vision_config.num_patches 60 is not a square number (the positional grid)");
  j["vision_config"]["num_patches"] = 0;
  EXPECT_EQ(err(j).rfind("FILE: vision_config.num_patches must be a positive integer", 0), 0u) << err(j);
  // Defaults are SiglipConfig's (google/siglip-base-patch16-224's geometry).
  const Json empty = Json::parse(R"({"model_type": "siglip"})");
  const SiglipConfig c = SiglipConfig::load(d.file("config.json", empty.dump()));
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

TEST(BpeJsonTokenizer, PaddingSideAsTheTokenizerConfigSays) {
  {
    const text::BpeJsonTokenizer right = text::BpeJsonTokenizer::from_dir(kSiglip2);
    EXPECT_FALSE(right.pad_left());
    EXPECT_TRUE(right.attention_mask());
  }
  const Expected e(kLeft);
  const text::BpeJsonTokenizer tok = text::BpeJsonTokenizer::from_dir(kLeft);
  EXPECT_TRUE(tok.pad_left());
  for (size_t i = 0; i < e.json["texts"].size(); ++i)
    EXPECT_EQ(tok.pad(tok.encode(e.json["texts"][i].get<std::string>())),
              e.json["input_ids"][i].get<std::vector<int32_t>>())
        << e.json["texts"][i];
}

// The files a tokenizer.json folder may get wrong, each a one-line error naming the file.
TEST(BpeJsonTokenizer, MissingOrCorruptFiles) {
  const TempDir d("siglip2");
  auto err = [&] { return error_of([&] { text::BpeJsonTokenizer::from_dir(d.str()); }); };
  EXPECT_EQ(err(), (d / "tokenizer.json") + ": not found (this model's tokenizer is a tokenizer.json)");
  d.file("tokenizer.json", "{\"model\": ");
  EXPECT_EQ(err().rfind((d / "tokenizer.json") + ": ", 0), 0u) << err();
  EXPECT_EQ(err().find('\n'), std::string::npos);
  d.file("tokenizer.json", "[1, 2]");
  EXPECT_EQ(err(), (d / "tokenizer.json") + ": not a JSON object");

  const Json good = io::load_json(kSiglip2 + "/tokenizer.json");
  auto with = [&](const std::function<void(Json&)>& edit) {
    Json j = good;
    edit(j);
    d.file("tokenizer.json", j.dump());
    fs::copy_file(kSiglip2 + "/tokenizer_config.json", (d / "tokenizer_config.json"),
                  fs::copy_options::overwrite_existing);
    return err();
  };
  const std::string f = (d / "tokenizer.json") + ": ";
  EXPECT_EQ(with([](Json&) {}), "(no error)");
  EXPECT_EQ(with([](Json& j) { j["model"]["type"] = "Unigram"; }),
            f + "model type \"Unigram\" is not supported (only BPE, as Gemma's)");
  EXPECT_EQ(with([](Json& j) {
              j["pre_tokenizer"] = {{"type", "ByteLevel"}};
            }),
            f + "pre_tokenizer ByteLevel is not supported (only tokenizer.json files without one, as Gemma's)");
  EXPECT_EQ(with([](Json& j) {
              j["normalizer"] = {{"type", "NFKC"}};
            }),
            f + "normalizer type \"NFKC\" is not supported (Replace, Prepend, Lowercase, Strip, Sequence are)");
  EXPECT_EQ(with([](Json& j) { j["model"]["vocab"].erase("<0x41>"); }),
            f + "byte_fallback without all 256 <0xXX> byte tokens in the vocabulary is not supported");
  EXPECT_EQ(with([](Json& j) { j["model"]["merges"][0] = "nosuch symbol"; }),
            (d / "tokenizer.json") +
                " model.merges: line 0: merge \"nosuch symbol\" uses a symbol that is not in the vocabulary");
  EXPECT_EQ(with([](Json& j) { j["model"]["merges"][0] = "nospace"; }), f + "model.merges[0]: expected two symbols");
  EXPECT_EQ(with([](Json& j) { j["model"]["dropout"] = 0.1; }),
            f + "model.dropout is not supported (encoding would be random)");
  EXPECT_EQ(with([](Json& j) { j["added_tokens"][0]["id"] = -1; }), f + "added_tokens: out-of-range id -1");
  // The eos the config names must exist.
  d.file("tokenizer.json", good.dump());
  Json cfg = io::load_json(kSiglip2 + "/tokenizer_config.json");
  cfg["eos_token"] = "</nope>";
  d.file("tokenizer_config.json", cfg.dump());
  EXPECT_EQ(err(), (d / "tokenizer_config.json") + ": eos_token \"</nope>\" is not in " + (d / "tokenizer.json"));
  cfg = io::load_json(kSiglip2 + "/tokenizer_config.json");
  cfg["tokenizer_class"] = "LlamaTokenizer";
  d.file("tokenizer_config.json", cfg.dump());
  EXPECT_EQ(err(), (d / "tokenizer_config.json") +
                       ": tokenizer_class \"LlamaTokenizer\" over tokenizer.json is not supported (GemmaTokenizer, "
                       "PreTrainedTokenizerFast are)");
}

TEST(Siglip2Model, EmbeddingsMatchTransformers) {
  const Expected e(kSiglip2);
  const SiglipConfig cfg = SiglipConfig::load(kSiglip2 + "/config.json");
  const SiglipModel m(cfg, std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(kSiglip2)), ClipOptions{});
  const size_t dim = static_cast<size_t>(cfg.embedding_dim());
  const text::BpeJsonTokenizer tok = text::BpeJsonTokenizer::from_dir(kSiglip2);
  std::vector<std::vector<int32_t>> ids;
  for (const Json& t : e.json["texts"]) ids.push_back(tok.encode(t.get<std::string>()));
  std::vector<float> text(ids.size() * dim);
  m.encode_texts(ids, tok.pad_id(), text.data(), 64);
  const std::vector<float> want = e.get("text_embeds");
  ASSERT_EQ(want.size(), text.size());
  for (size_t i = 0; i < text.size(); ++i) ASSERT_NEAR(text[i], want[i], 1e-4f * max_abs(want)) << "text " << i / dim;

  // padding_side left: the same texts at the end of the 64 positions.
  const Expected l(kLeft);
  m.encode_texts(ids, tok.pad_id(), text.data(), 64, /*pad_left=*/true);
  const std::vector<float> want_l = l.get("text_embeds");
  ASSERT_EQ(want_l.size(), text.size());
  for (size_t i = 0; i < text.size(); ++i)
    ASSERT_NEAR(text[i], want_l[i], 1e-4f * max_abs(want_l)) << "text " << i / dim;
}

}  // namespace
}  // namespace zeroshot::models
