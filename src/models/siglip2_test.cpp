// SigLIP 2 (fixed resolution): the tokenizer.json BPE tokenizer (Gemma's layout) and SiglipModel against what
// transformers computed on the random-weight checkpoint it saved with a GemmaTokenizerFast (tests/reference/
// make_siglip2.py, made at test time into <build>/reference-fixtures), and the tokenizer files it refuses.
// Tolerances: ids exact, embeddings <= 1e-4 x max |value|.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "models/siglip.h"
#include "text/bpe_json_tokenizer.h"
#include "zeroshot/error.h"

namespace zeroshot::models {
namespace {

namespace fs = std::filesystem;
using io::Json;

const std::string kFixtures = std::string(ZEROSHOT_BINARY_DIR) + "/reference-fixtures/siglip/";
const std::string kDir = kFixtures + "siglip2-tiny";
const std::string kLeft = kFixtures + "siglip2-tiny-left";

struct Expected {
  explicit Expected(const std::string& dir)
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

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A fresh folder per test.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("zs_siglip2_" + std::string(info->test_suite_name()) + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path(const std::string& name) const { return (path_ / name).string(); }
  std::string dir() const { return path_.string(); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path(name), std::ios::binary) << text;
  }

 private:
  fs::path path_;
};

TEST(BpeJsonTokenizer, IdsMatchGemmaTokenizerFastPaddedAsThePipeline) {
  const Expected e(kDir);
  const text::BpeJsonTokenizer tok = text::BpeJsonTokenizer::from_dir(kDir);
  EXPECT_EQ(tok.max_length(), 64u);
  EXPECT_FALSE(tok.pad_left());
  EXPECT_TRUE(tok.attention_mask());
  EXPECT_EQ(tok.pad_id(), e.json["pad_token_id"].get<int32_t>());
  const Json& texts = e.json["texts"];
  ASSERT_GT(texts.size(), 30u);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string t = texts[i].get<std::string>();
    const std::vector<int32_t> ids = tok.encode(t);
    EXPECT_EQ(ids.size(), e.json["lengths"][i].get<size_t>()) << t;
    EXPECT_EQ(tok.pad(ids), e.json["input_ids"][i].get<std::vector<int32_t>>()) << t;
  }
  // Over 64 tokens: the first 63 and <eos> (truncation=True).
  ASSERT_GE(e.json["long_texts"].size(), 1u);
  for (size_t i = 0; i < e.json["long_texts"].size(); ++i) {
    const std::vector<int32_t> ids = tok.encode(e.json["long_texts"][i].get<std::string>());
    EXPECT_EQ(ids, e.json["long_input_ids"][i].get<std::vector<int32_t>>());
  }
}

TEST(BpeJsonTokenizer, LeftPaddingAsTheTokenizerConfigSays) {
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
  const TempDir d;
  auto err = [&] { return error_of([&] { text::BpeJsonTokenizer::from_dir(d.dir()); }); };
  EXPECT_EQ(err(), d.path("tokenizer.json") + ": not found (this model's tokenizer is a tokenizer.json)");
  d.write("tokenizer.json", "{\"model\": ");
  EXPECT_EQ(err().rfind(d.path("tokenizer.json") + ": ", 0), 0u) << err();
  EXPECT_EQ(err().find('\n'), std::string::npos);
  d.write("tokenizer.json", "[1, 2]");
  EXPECT_EQ(err(), d.path("tokenizer.json") + ": not a JSON object");

  const Json good = io::load_json(kDir + "/tokenizer.json");
  auto with = [&](const std::function<void(Json&)>& edit) {
    Json j = good;
    edit(j);
    d.write("tokenizer.json", j.dump());
    fs::copy_file(kDir + "/tokenizer_config.json", d.path("tokenizer_config.json"),
                  fs::copy_options::overwrite_existing);
    return err();
  };
  const std::string f = d.path("tokenizer.json") + ": ";
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
            d.path("tokenizer.json") +
                " model.merges: line 0: merge \"nosuch symbol\" uses a symbol that is not in the vocabulary");
  EXPECT_EQ(with([](Json& j) { j["model"]["merges"][0] = "nospace"; }), f + "model.merges[0]: expected two symbols");
  EXPECT_EQ(with([](Json& j) { j["model"]["dropout"] = 0.1; }),
            f + "model.dropout is not supported (encoding would be random)");
  EXPECT_EQ(with([](Json& j) { j["added_tokens"][0]["id"] = -1; }), f + "added_tokens: out-of-range id -1");
  // The eos the config names must exist.
  d.write("tokenizer.json", good.dump());
  Json cfg = io::load_json(kDir + "/tokenizer_config.json");
  cfg["eos_token"] = "</nope>";
  d.write("tokenizer_config.json", cfg.dump());
  EXPECT_EQ(err(), d.path("tokenizer_config.json") + ": eos_token \"</nope>\" is not in " + d.path("tokenizer.json"));
  cfg = io::load_json(kDir + "/tokenizer_config.json");
  cfg["tokenizer_class"] = "LlamaTokenizer";
  d.write("tokenizer_config.json", cfg.dump());
  EXPECT_EQ(err(), d.path("tokenizer_config.json") +
                       ": tokenizer_class \"LlamaTokenizer\" over tokenizer.json is not supported (GemmaTokenizer, "
                       "PreTrainedTokenizerFast are)");
}

TEST(Siglip2Model, EmbeddingsMatchTransformers) {
  const Expected e(kDir);
  const SiglipConfig cfg = SiglipConfig::load(kDir + "/config.json");
  const SiglipModel m(cfg, std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(kDir)), ClipOptions{});
  const size_t dim = static_cast<size_t>(cfg.embedding_dim());
  const text::BpeJsonTokenizer tok = text::BpeJsonTokenizer::from_dir(kDir);
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
