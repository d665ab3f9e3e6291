// SigLIP through the public API and the CLI, against what transformers computed
// on the random-weight checkpoint it saved (tests/reference/make_siglip.py,
// made at test time into <build>/reference-fixtures): pixel values, embeddings,
// and the zero-shot-image-classification pipeline's own output (sigmoid scores,
// not renormalized), by ZeroShotClassifier, MultiLabelClassifier, `zeroshot
// classify` and `zeroshot classify --multi-label`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "support/cli.h"
#include "support/compare.h"
#include "support/fixtures.h"
#include "zeroshot/tagging.h"
#include "zeroshot/zeroshot.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

const std::string kDir = std::string(ZEROSHOT_BINARY_DIR) + "/reference-fixtures/siglip/siglip-tiny";

struct SiglipExpected {
  io::Json json = io::load_json(kDir + "/expected.json");
  io::SafeTensorsFile tensors{kDir + "/expected.safetensors"};
  std::vector<float> get(const std::string& name) const { return io::to_f32(tensors.tensors().at(name)); }
};

// The built binary with `args`, stdin closed, caches isolated, offline (tests/support/cli.h).
CliResult zeroshot_cli(const Args& args) { return run_cli(args); }

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

// A copy of the fixture (files symlinked), to break one thing at a time.
struct ModelCopy {
  fs::path dir;
  ModelCopy() {
    dir = fs::temp_directory_path() / ("zs_siglip_model_" + std::to_string(::getpid()) + "_" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const auto& e : fs::directory_iterator(kDir)) fs::create_symlink(e.path(), dir / e.path().filename());
  }
  ~ModelCopy() { fs::remove_all(dir); }
  void replace(const std::string& name, const std::string& bytes) const {
    fs::remove(dir / name);
    if (!bytes.empty() || name != "-") std::ofstream(dir / name, std::ios::binary) << bytes;
  }
  std::string path() const { return dir.string(); }
};

TEST(Siglip, PixelValuesAndEmbeddingsMatchTransformers) {
  const SiglipExpected e;
  const auto model = Model::load(kDir, no_hub());
  EXPECT_STREQ(model->model_type(), "siglip");
  const ScoreHead head = model->score_head();
  EXPECT_TRUE(head.sigmoid);
  EXPECT_FLOAT_EQ(head.scale, std::exp(e.json["logit_scale"].get<float>()));
  EXPECT_FLOAT_EQ(head.bias, e.json["logit_bias"].get<float>());
  EXPECT_FLOAT_EQ(model->logit_scale(), head.scale);

  const auto images = e.json["images"].get<std::vector<std::string>>();
  std::vector<std::string> paths;
  for (const auto& name : images) {
    paths.push_back(image_path(name));
    const std::vector<float> want = e.get("pixel_values/" + name);
    const std::vector<float> got = model->preprocess_image_file(image_path(name));
    ASSERT_EQ(got.size(), want.size()) << name;
    if (name == "cmyk.jpg") {  // fixtures/README.md: Pillow's CMYK conversion,
                               // mean abs diff <= 0.02
      double sum = 0;
      for (size_t i = 0; i < got.size(); ++i) sum += std::fabs(got[i] - want[i]);
      EXPECT_LE(sum / static_cast<double>(got.size()), 0.02) << name;
    } else {
      EXPECT_LE(max_abs_diff(got.data(), want.data(), got.size()), 1e-5f) << name;
    }
  }

  const Embeddings img = model->embed_image_files(paths);
  const std::vector<float> want_img = e.get("image_embeds");
  ASSERT_EQ(img.data.size(), want_img.size());
  for (size_t i = 0; i < images.size(); ++i) {
    if (images[i] == "cmyk.jpg") continue;  // its pixels differ within the CMYK tolerance above
    EXPECT_LE(max_abs_diff(img.row(i), want_img.data() + i * img.dim, img.dim),
              1e-4f * max_abs(want_img.data(), want_img.size()))
        << images[i];
  }

  const auto texts = e.json["texts"].get<std::vector<std::string>>();
  const Embeddings txt = model->embed_texts(texts);
  const std::vector<float> want_txt = e.get("text_embeds");
  ASSERT_EQ(txt.data.size(), want_txt.size());
  EXPECT_LE(max_abs_diff(txt.data.data(), want_txt.data(), want_txt.size()),
            1e-4f * max_abs(want_txt.data(), want_txt.size()));
  // Over 64 tokens: truncated to 63 + </s> (the pipeline itself would fail on them), as tokenizer(truncation=True).
  const Embeddings lng = model->embed_texts(e.json["long_texts"].get<std::vector<std::string>>());
  const std::vector<float> want_lng = e.get("long_text_embeds");
  ASSERT_EQ(lng.data.size(), want_lng.size());
  EXPECT_LE(max_abs_diff(lng.data.data(), want_lng.data(), want_lng.size()),
            1e-4f * max_abs(want_lng.data(), want_lng.size()));
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> want = e.json["input_ids"][i].get<std::vector<int32_t>>();
    want.resize(e.json["lengths"][i].get<size_t>());  // Model::tokenize gives the ids
                                                      // before the pipeline's padding
    EXPECT_EQ(model->tokenize(texts[i]), want) << texts[i];
  }
}

// Every zero-shot case: the pipeline's sigmoid scores, sorted, through each way
// in.
TEST(Siglip, ZeroShotIsThePipelinesSigmoid) {
  const SiglipExpected e;
  const auto model = Model::load(kDir, no_hub());
  ASSERT_GE(e.json["zero_shot"].size(), 3u);
  for (const auto& c : e.json["zero_shot"]) {
    const auto labels = c["labels"].get<std::vector<std::string>>();
    const std::string tmpl = c["template"].get<std::string>();
    const std::string image = image_path(c["image"].get<std::string>());
    const auto& want = c["result"];
    double total = 0;
    for (const auto& w : want) total += w["score"].get<double>();
    EXPECT_GT(std::fabs(total - 1.0), 1e-3) << "independent sigmoids do not sum to 1 (a softmax would)";

    const ZeroShotClassifier clf(*model, labels, {tmpl}, no_cache());
    const auto got = clf.classify_image(image);
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].label, want[k]["label"].get<std::string>()) << image;
      EXPECT_NEAR(got[k].score, want[k]["score"].get<double>(), 1e-4) << image << " " << got[k].label;
    }

    // Multi-label: the same per-label sigmoid (no negative prompts), thresholds
    // as probabilities.
    std::vector<std::vector<std::string>> classes;
    for (const auto& l : labels) classes.push_back({l});
    MultiLabelOptions mo;
    mo.classifier = no_cache();
    const MultiLabelClassifier ml(*model, classes, {tmpl}, mo);
    const Embeddings x = model->embed_image_files({image});
    const auto tags = ml.tag(x.row(0));
    ASSERT_EQ(tags.size(), want.size());
    for (size_t k = 0; k < tags.size(); ++k) {
      EXPECT_EQ(tags[k].label, want[k]["label"].get<std::string>());
      EXPECT_NEAR(tags[k].score, want[k]["score"].get<double>(), 1e-4);
      EXPECT_EQ(tags[k].flagged, tags[k].score >= 0.5f);
    }

    // The CLI, plain and --multi-label.
    std::string ls;
    for (const auto& l : labels) ls += (ls.empty() ? "" : ",") + l;
    for (const std::string mode : {"", "--multi-label"}) {
      Args args = {"classify", "-m", kDir, "-l", ls, "-t", tmpl, "-f", "json", image};
      if (!mode.empty()) args.push_back(mode);
      const CliResult r = zeroshot_cli(args);
      ASSERT_EQ(r.code, 0) << r.err;
      const auto lines = json_lines(r.out);
      ASSERT_EQ(lines.size(), 1u) << r.out;
      const auto& res = lines[0]["result"];
      ASSERT_EQ(res.size(), want.size());
      for (size_t k = 0; k < res.size(); ++k) {
        EXPECT_EQ(res[k]["label"], want[k]["label"]) << mode;
        EXPECT_NEAR(res[k]["score"].get<double>(), want[k]["score"].get<double>(), 1e-4) << mode;
      }
    }
  }
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

// A tokenizer without "attention_mask" in its model_input_names: the pipeline attends to the padding, and so do we.
TEST(Siglip, UnmaskedPaddingWhenTheTokenizerGivesNoMask) {
  const std::string dir = std::string(ZEROSHOT_BINARY_DIR) + "/reference-fixtures/siglip/siglip-tiny-nomask";
  const io::Json j = io::load_json(dir + "/expected.json");
  const io::SafeTensorsFile t(dir + "/expected.safetensors");
  const auto model = Model::load(dir, no_hub());
  const Embeddings txt = model->embed_texts(j["texts"].get<std::vector<std::string>>());
  const std::vector<float> want = io::to_f32(t.tensors().at("text_embeds"));
  ASSERT_EQ(txt.data.size(), want.size());
  EXPECT_LE(max_abs_diff(txt.data.data(), want.data(), want.size()), 1e-4f * max_abs(want.data(), want.size()));
  for (const auto& c : j["zero_shot"]) {
    const ZeroShotClassifier clf(*model, c["labels"].get<std::vector<std::string>>(),
                                 {c["template"].get<std::string>()}, no_cache());
    const auto got = clf.classify_image(image_path(c["image"].get<std::string>()));
    const auto& w = c["result"];
    ASSERT_EQ(got.size(), w.size());
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].label, w[k]["label"].get<std::string>());
      EXPECT_NEAR(got[k].score, w[k]["score"].get<double>(), 1e-4);
    }
  }
}

TEST(Siglip, BrokenTokenizerFilesAreOneLineErrors) {
  {
    const ModelCopy m;
    fs::remove(m.dir / "spiece.model");
    const CliResult r =
        zeroshot_cli({"classify", "-m", m.path(), "-l", "cat,dog", "-f", "json", image_path("coffee.png")});
    EXPECT_NE(r.code, 0);
    EXPECT_LT(r.code, 128);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("spiece.model: not found"), std::string::npos) << r.err;
  }
  {
    const ModelCopy m;
    m.replace("spiece.model", "\x0a\x05garbage and more garbage");
    const CliResult r =
        zeroshot_cli({"classify", "-m", m.path(), "-l", "cat,dog", "-f", "json", image_path("coffee.png")});
    EXPECT_NE(r.code, 0);
    EXPECT_LT(r.code, 128);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("spiece.model: not a SentencePiece model"), std::string::npos) << r.err;
  }
}

}  // namespace
