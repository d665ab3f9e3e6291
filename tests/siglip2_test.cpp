// SigLIP 2 (fixed resolution: SiglipModel with a Gemma tokenizer.json) through the public API and the CLI, against
// what transformers computed on the random-weight checkpoint it saved (tests/reference/make_siglip2.py, made at test
// time into <build>/reference-fixtures): bilinear pixel values, embeddings, ids, and the zero-shot-image-classification
// pipeline's own output (sigmoid scores) for padding_side right and left.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "support/cli.h"
#include "support/compare.h"
#include "support/fixtures.h"
#include "zeroshot/zeroshot.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

const std::string kFixtures = std::string(ZEROSHOT_BINARY_DIR) + "/reference-fixtures/siglip/";
const std::string kDir = kFixtures + "siglip2-tiny";

struct Expected {
  explicit Expected(const std::string& dir)
      : json(io::load_json(dir + "/expected.json")), tensors(dir + "/expected.safetensors") {}
  io::Json json;
  io::SafeTensorsFile tensors;
  std::vector<float> get(const std::string& name) const { return io::to_f32(tensors.tensors().at(name)); }
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

TEST(Siglip2, PixelValuesEmbeddingsAndIdsMatchTransformers) {
  const Expected e(kDir);
  const auto model = Model::load(kDir, no_hub());
  EXPECT_STREQ(model->model_type(), "siglip");
  EXPECT_TRUE(model->score_head().sigmoid);
  EXPECT_FLOAT_EQ(model->score_head().bias, e.json["logit_bias"].get<float>());

  const auto images = e.json["images"].get<std::vector<std::string>>();
  std::vector<std::string> paths;
  for (const auto& name : images) {
    paths.push_back(image_path(name));
    const std::vector<float> want = e.get("pixel_values/" + name);
    const std::vector<float> got = model->preprocess_image_file(image_path(name));
    ASSERT_EQ(got.size(), want.size()) << name;
    if (name == "cmyk.jpg") {  // fixtures/README.md: Pillow's CMYK conversion, mean abs diff <= 0.02
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
    if (images[i] == "cmyk.jpg") continue;
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
  const Embeddings lng = model->embed_texts(e.json["long_texts"].get<std::vector<std::string>>());
  const std::vector<float> want_lng = e.get("long_text_embeds");
  ASSERT_EQ(lng.data.size(), want_lng.size());
  EXPECT_LE(max_abs_diff(lng.data.data(), want_lng.data(), want_lng.size()),
            1e-4f * max_abs(want_lng.data(), want_lng.size()));
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> want = e.json["input_ids"][i].get<std::vector<int32_t>>();
    want.resize(e.json["lengths"][i].get<size_t>());  // Model::tokenize gives the ids before the pipeline's padding
    EXPECT_EQ(model->tokenize(texts[i]), want) << texts[i];
  }
}

// Every zero-shot case, right- and left-padded: the pipeline's sigmoid scores, sorted, by the API and the CLI.
TEST(Siglip2, ZeroShotIsThePipelinesSigmoid) {
  for (const std::string& dir : {kDir, kFixtures + "siglip2-tiny-left"}) {
    const Expected e(dir);
    const auto model = Model::load(dir, no_hub());
    ASSERT_GE(e.json["zero_shot"].size(), 3u);
    for (const auto& c : e.json["zero_shot"]) {
      const auto labels = c["labels"].get<std::vector<std::string>>();
      const std::string tmpl = c["template"].get<std::string>();
      const std::string image = image_path(c["image"].get<std::string>());
      const auto& want = c["result"];
      const ZeroShotClassifier clf(*model, labels, {tmpl}, no_cache());
      const auto got = clf.classify_image(image);
      ASSERT_EQ(got.size(), want.size());
      for (size_t k = 0; k < got.size(); ++k) {
        EXPECT_EQ(got[k].label, want[k]["label"].get<std::string>()) << dir << " " << image;
        EXPECT_NEAR(got[k].score, want[k]["score"].get<double>(), 1e-4) << dir << " " << image << " " << got[k].label;
      }
      if (dir != kDir) continue;
      std::string ls;
      for (const auto& l : labels) ls += (ls.empty() ? "" : ",") + l;
      const CliResult r = run_cli({"classify", "-m", dir, "-l", ls, "-t", tmpl, "-f", "json", "--multi-label", image});
      ASSERT_EQ(r.code, 0) << r.err;
      const auto lines = json_lines(r.out);
      ASSERT_EQ(lines.size(), 1u) << r.out;
      const auto& res = lines[0]["result"];
      ASSERT_EQ(res.size(), want.size());
      for (size_t k = 0; k < res.size(); ++k) {
        EXPECT_EQ(res[k]["label"], want[k]["label"]);
        EXPECT_NEAR(res[k]["score"].get<double>(), want[k]["score"].get<double>(), 1e-4);
      }
    }
  }
}

// A copy of the fixture (files symlinked), one file broken: a one-line error naming it.
TEST(Siglip2, BrokenTokenizerJsonIsAOneLineError) {
  const fs::path dir = fs::temp_directory_path() / ("zs_siglip2_broken_" + std::to_string(::getpid()));
  for (const std::string& bytes : {std::string("-"), std::string("{\"model\": [")}) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const auto& f : fs::directory_iterator(kDir))
      if (f.path().filename() != "tokenizer.json") fs::create_symlink(f.path(), dir / f.path().filename());
    if (bytes != "-") std::ofstream(dir / "tokenizer.json", std::ios::binary) << bytes;
    const CliResult r =
        run_cli({"classify", "-m", dir.string(), "-l", "cat,dog", "-f", "json", image_path("coffee.png")});
    EXPECT_NE(r.code, 0);
    EXPECT_LT(r.code, 128);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find((dir / "tokenizer.json").string() + ": "), std::string::npos) << r.err;
    if (bytes == "-") {
      EXPECT_NE(r.err.find("tokenizer.json: not found"), std::string::npos) << r.err;
    }
  }
  fs::remove_all(dir);
}

}  // namespace
