// The SigLIP family's behaviour beyond parity (siglip_parity_test.cpp holds that), through the public API and the
// CLI on the reference fixtures made at test time into <build>/reference-fixtures (tests/reference/make_siglip.py,
// make_siglip2.py, make_open_clip_siglip.py): moderation on the model's sigmoid, and the bad model folders
// (tokenizer files missing or corrupt, an unknown timm trunk), each a one-line error naming the file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/cli.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "zeroshot/tagging.h"
#include "zeroshot/zeroshot.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

const std::string kRef = std::string(ZEROSHOT_BINARY_DIR) + "/reference-fixtures/";
const std::string kDir = kRef + "siglip/siglip-tiny";

struct SiglipExpected {
  io::Json json = io::load_json(kDir + "/expected.json");
};

ModelOptions no_hub() {
  ModelOptions o;
  o.offline = true;
  return o;
}

ClassifierOptions no_cache() {
  ClassifierOptions c;
  c.cache_dir = "none";
  return c;
}

// A copy of a fixture folder (files symlinked), to break one file at a time: replace() writes it anew, drop()
// leaves it out.
struct ModelCopy {
  TempDir dir{"siglip_model"};
  explicit ModelCopy(const std::string& src) {
    for (const auto& e : fs::directory_iterator(src)) fs::create_symlink(e.path(), dir.path / e.path().filename());
  }
  void drop(const std::string& name) const { fs::remove(dir.path / name); }
  void replace(const std::string& name, const std::string& bytes) const {
    drop(name);
    std::ofstream(dir.path / name, std::ios::binary) << bytes;
  }
  std::string path() const { return dir.str(); }
};

// `classify` on a bad folder: a non-zero exit below 128 (no crash) and one line holding each needle.
void expect_one_line_error(const std::string& dir, const std::vector<std::string>& needles) {
  const CliResult r = run_cli({"classify", "-m", dir, "-l", "cat,dog", "-f", "json", image_path("coffee.png")});
  EXPECT_NE(r.code, 0);
  EXPECT_LT(r.code, 128);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const auto& needle : needles) EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

// A moderation category scores the model's sigmoid of its best prompt: the
// highest of the pipeline's scores of those prompts; a cosine category its best
// cosine (sigmoid inverted back to the cosine).
TEST(Siglip, ModerationUsesTheSigmoid) {
  const SiglipExpected e;
  const auto model = Model::load(kDir, no_hub());
  const auto& c = e.json["zero_shot"][0];
  const auto& want = c["result"];  // sorted: the first two are the best of any two labels
  const std::string a = want[0]["label"], b = want[1]["label"], z = want[want.size() - 1]["label"];
  const std::string toml = "templates = [\"" + c["template"].get<std::string>() +
                           "\"]\n"
                           "[[category]]\nname = \"top\"\nprompts = [\"" +
                           z + "\", \"" + a +
                           "\"]\n"
                           "[[category]]\nname = \"second\"\nprompts = [\"" +
                           b +
                           "\"]\nthreshold = 0.0\n"
                           "[[category]]\nname = \"cos\"\nprompts = [\"" +
                           b + "\"]\non = \"cosine\"\nthreshold = -1.0\n";
  const Moderator mod = Moderator::parse(*model, toml, "policy.toml", no_cache());
  const Embeddings x = model->embed_image_files({image_path(c["image"].get<std::string>())});
  const auto got = mod.moderate(x.row(0));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_NEAR(got[0].score, want[0]["score"].get<double>(), 1e-4);
  EXPECT_EQ(got[0].flagged, got[0].score >= 0.5f);
  EXPECT_NEAR(got[1].score, want[1]["score"].get<double>(), 1e-4);
  EXPECT_TRUE(got[1].flagged);
  const ScoreHead h = model->score_head();
  const double p = want[1]["score"].get<double>();
  EXPECT_NEAR(got[2].score, (std::log(p / (1 - p)) - h.bias) / h.scale, 1e-3);
}

TEST(Siglip, BrokenTokenizerFilesAreOneLineErrors) {
  {
    const ModelCopy m(kDir);
    m.drop("spiece.model");
    expect_one_line_error(m.path(), {"spiece.model: not found"});
  }
  {
    const ModelCopy m(kDir);
    m.replace("spiece.model", "\x0a\x05garbage and more garbage");
    expect_one_line_error(m.path(), {"spiece.model: not a SentencePiece model"});
  }
}

// SigLIP 2's tokenizer.json missing or cut short: a one-line error naming it.
TEST(Siglip2, BrokenTokenizerJsonIsAOneLineError) {
  for (const std::string& bytes : {std::string("-"), std::string("{\"model\": [")}) {
    const ModelCopy m(kRef + "siglip/siglip2-tiny");
    if (bytes == "-") m.drop("tokenizer.json");
    else m.replace("tokenizer.json", bytes);
    std::vector<std::string> needles = {(fs::path(m.path()) / "tokenizer.json").string() + ": "};
    if (bytes == "-") needles.emplace_back("tokenizer.json: not found");
    expect_one_line_error(m.path(), needles);
  }
}

// OpenCLIP-format SigLIP: the CLI's one line, and Model::load's zeroshot::Error saying the same.
void expect_load_error(const std::string& dir, const std::string& needle) {
  expect_one_line_error(dir, {needle});
  try {
    (void)Model::load(dir, no_hub());
    ADD_FAILURE() << dir << " loaded";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find(needle), std::string::npos) << err.what();
  }
}

TEST(OpenClipSiglipBad, UnknownTimmTrunk) {
  expect_load_error(kRef + "open_clip_siglip-bad/unknown-trunk",
                    "open_clip_config.json: model_cfg.vision_cfg.timm_model_name \"vit_medium_patch16_gap_256\" "
                    "is not a timm SigLIP trunk this engine knows");
}

// The timm hub repos' T5Tokenizer is read (siglip_parity_test's OpenClipSiglipT5Tokenizer case); other classes are
// not.
TEST(OpenClipSiglipBad, OtherTokenizerClass) {
  const ModelCopy m(kRef + "open_clip_siglip/siglip-test-gelu");
  m.replace("tokenizer_config.json", R"({"tokenizer_class": "BertTokenizer"})");
  expect_load_error(m.path(),
                    "tokenizer_config.json: tokenizer_class \"BertTokenizer\" is not supported for OpenCLIP "
                    "SigLIP (SiglipTokenizer and T5Tokenizer are)");
}

TEST(OpenClipSiglipBad, MissingTokenizer) {
  expect_load_error(kRef + "open_clip_siglip-bad/no-tokenizer", "spiece.model: not found");
}

}  // namespace
