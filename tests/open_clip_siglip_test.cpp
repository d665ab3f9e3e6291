// OpenCLIP-format SigLIP (issue 12, part 3) through the public API and the CLI, against what open_clip computed on
// the random-weight checkpoints it saved in the timm/ViT-*-SigLIP* hub layout (tests/reference/
// make_open_clip_siglip.py, made at test time into <build>/reference-fixtures): token ids (open_clip's
// canonicalize cleaning + SiglipTokenizer, padded to 64), pixel values (squash, bicubic), embeddings, logits and
// zero-shot sigmoid scores, from the safetensors and the .bin; and the bad inputs' one-line errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "support/cli.h"
#include "support/compare.h"
#include "support/fixtures.h"
#include "zeroshot/zeroshot.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

const std::string kRoot = std::string(ZEROSHOT_BINARY_DIR) + "/reference-fixtures/";

struct Expected {
  std::string dir;
  io::Json json;
  io::SafeTensorsFile tensors;
  explicit Expected(const std::string& d)
      : dir(d), json(io::load_json(d + "/expected.json")), tensors(d + "/expected.safetensors") {}
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

// A copy of a fixture folder (files symlinked) without some of its files.
struct ModelCopy {
  fs::path dir;
  ModelCopy(const std::string& src, const std::vector<std::string>& without) {
    dir = fs::temp_directory_path() / ("zs_oc_siglip_" + std::to_string(::getpid()) + "_" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const auto& e : fs::directory_iterator(src))
      if (std::find(without.begin(), without.end(), e.path().filename().string()) == without.end())
        fs::create_symlink(e.path(), dir / e.path().filename());
  }
  ~ModelCopy() { fs::remove_all(dir); }
  std::string path() const { return dir.string(); }
};

void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  EXPECT_LE(max_abs_diff(got.data(), want.data(), want.size()), 1e-4f * max_abs(want.data(), want.size())) << what;
}

class OpenClipSiglip : public ::testing::TestWithParam<const char*> {
 protected:
  std::string dir() const { return kRoot + "open_clip_siglip/" + GetParam(); }
};

// Everything open_clip computed, from `model_dir` (the fixture itself or a copy with one weights file).
void check_model(const Expected& e, const std::string& model_dir) {
  const auto model = Model::load(model_dir, no_hub());
  EXPECT_STREQ(model->model_type(), "open_clip_siglip");
  const ScoreHead head = model->score_head();
  EXPECT_TRUE(head.sigmoid);
  EXPECT_FLOAT_EQ(head.scale, std::exp(e.json["logit_scale"].get<float>()));
  EXPECT_FLOAT_EQ(head.bias, e.json["logit_bias"].get<float>());

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
    if (images[i] == "cmyk.jpg") continue;  // its pixels differ within the CMYK tolerance above
    EXPECT_LE(max_abs_diff(img.row(i), want_img.data() + i * img.dim, img.dim),
              1e-4f * max_abs(want_img.data(), want_img.size()))
        << images[i];
  }

  const auto texts = e.json["texts"].get<std::vector<std::string>>();
  const Embeddings txt = model->embed_texts(texts);
  expect_close(txt.data, e.get("text_embeds"), "text_embeds");

  // logits_per_image = exp(logit_scale) * cos + logit_bias, before the sigmoid.
  const std::vector<float> want_logits = e.get("logits_per_image");
  ASSERT_EQ(want_logits.size(), images.size() * texts.size());
  for (size_t i = 0; i < images.size(); ++i) {
    if (images[i] == "cmyk.jpg") continue;
    for (size_t j = 0; j < texts.size(); ++j) {
      double dot = 0, ni = 0, nt = 0;
      for (size_t k = 0; k < img.dim; ++k) {
        dot += static_cast<double>(img.row(i)[k]) * txt.row(j)[k];
        ni += static_cast<double>(img.row(i)[k]) * img.row(i)[k];
        nt += static_cast<double>(txt.row(j)[k]) * txt.row(j)[k];
      }
      const double got = head.scale * dot / std::sqrt(ni * nt) + head.bias;
      EXPECT_NEAR(got, want_logits[i * texts.size() + j], 1e-4 * std::max(1.0, std::fabs(got)))
          << images[i] << " / " << texts[j];
    }
  }
}

TEST_P(OpenClipSiglip, TokenIdsMatchOpenClip) {
  const Expected e(dir());
  const auto model = Model::load(dir(), no_hub());
  const auto texts = e.json["texts"].get<std::vector<std::string>>();
  const int32_t pad = 1;  // siglip-tiny's SiglipTokenizer pads with "</s>"
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int32_t> want = e.json["input_ids"][i].get<std::vector<int32_t>>();
    std::vector<int32_t> got = model->tokenize(texts[i]);
    ASSERT_LE(got.size(), want.size()) << texts[i];
    got.resize(want.size(), pad);  // open_clip's ids are padded to context_length
    EXPECT_EQ(got, want) << texts[i];
  }
}

TEST_P(OpenClipSiglip, SafetensorsMatchOpenClip) {
  const Expected e(dir());
  const ModelCopy m(dir(), {"open_clip_pytorch_model.bin"});
  check_model(e, m.path());
}

TEST_P(OpenClipSiglip, BinMatchesOpenClip) {
  const Expected e(dir());
  const ModelCopy m(dir(), {"open_clip_model.safetensors"});
  check_model(e, m.path());
}

// Each zero-shot case: open_clip's ensembled classifier and the SigLIP sigmoid, through the API and the CLI
// (plain and --multi-label: both the model's own sigmoid, not renormalized).
TEST_P(OpenClipSiglip, ZeroShotIsTheSigmoid) {
  const Expected e(dir());
  const auto model = Model::load(dir(), no_hub());
  ASSERT_GE(e.json["zero_shot"].size(), 3u);
  for (const auto& c : e.json["zero_shot"]) {
    const auto labels = c["labels"].get<std::vector<std::string>>();
    const auto templates = c["templates"].get<std::vector<std::string>>();
    const std::string image = image_path(c["image"].get<std::string>());
    const auto& want = c["result"];
    const ZeroShotClassifier clf(*model, labels, templates, no_cache());
    const auto got = clf.classify_image(image);
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].label, want[k]["label"].get<std::string>()) << image;
      EXPECT_NEAR(got[k].score, want[k]["score"].get<double>(), 1e-4) << image << " " << got[k].label;
    }
    std::string ls;
    for (const auto& l : labels) ls += (ls.empty() ? "" : ",") + l;
    for (const std::string mode : {"", "--multi-label"}) {
      Args args = {"classify", "-m", dir(), "-l", ls, "-f", "json", image};
      for (const auto& t : templates) {
        args.push_back("-t");
        args.push_back(t);
      }
      if (!mode.empty()) args.push_back(mode);
      const CliResult r = run_cli(args);
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

INSTANTIATE_TEST_SUITE_P(Models, OpenClipSiglip,
                         ::testing::Values("siglip-test-gelu", "siglip-test-gelu-tanh", "siglip-test-remainder"),
                         [](const auto& info) {
                           std::string s = info.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

void expect_one_line_error(const std::string& dir, const std::string& needle) {
  const CliResult r = run_cli({"classify", "-m", dir, "-l", "cat,dog", "-f", "json", image_path("coffee.png")});
  EXPECT_NE(r.code, 0);
  EXPECT_LT(r.code, 128);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  try {
    (void)Model::load(dir, no_hub());
    ADD_FAILURE() << dir << " loaded";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find(needle), std::string::npos) << err.what();
  }
}

TEST(OpenClipSiglipBad, UnknownTimmTrunk) {
  expect_one_line_error(kRoot + "open_clip_siglip-bad/unknown-trunk",
                        "open_clip_config.json: model_cfg.vision_cfg.timm_model_name \"vit_medium_patch16_gap_256\" "
                        "is not a timm SigLIP trunk this engine knows");
}

TEST(OpenClipSiglipBad, MissingTokenizer) {
  expect_one_line_error(kRoot + "open_clip_siglip-bad/no-tokenizer", "spiece.model: not found");
}

}  // namespace
