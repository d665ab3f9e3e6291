// Every checkpoint layout through the public API (zeroshot::Model), against outputs of the reference libraries:
//   - PyTorch .bin copies of the shared CLIP and CLAP fixtures (transformers' save_pretrained, sharded, torch's
//     legacy format) give the shared fixtures' expected outputs, and the very same floats as the safetensors;
//   - OpenCLIP checkpoints saved by open_clip give open_clip's own token ids, pixel values (its transform on the
//     image in its Pillow mode), embeddings and zero-shot scores; a copy of the shared HF weights in the OpenCLIP
//     layout gives the HF fixture's embeddings;
//   - bad OpenCLIP folders are one-line errors naming the file.
// The reference fixtures are written at test time by tests/reference/make_fixtures.py (transformers, open_clip).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "support/compare.h"
#include "support/reference.h"
#include "zeroshot/zeroshot.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using zeroshot::testing::kCmykPixelMeanTol;
using zeroshot::testing::kEmbedRelTol;
using zeroshot::testing::kPixelTol;
using zeroshot::testing::kScoreTol;
using zeroshot::testing::max_abs;
using zeroshot::testing::max_abs_diff;

namespace {

std::string reference(const std::string& sub) {
  return std::string(ZEROSHOT_BINARY_DIR) + "/reference-fixtures/" + sub;
}
std::string shared_clip(const std::string& m) { return std::string(ZEROSHOT_FIXTURES) + "/clip/" + m; }
std::string shared_clap(const std::string& m) { return std::string(ZEROSHOT_FIXTURES) + "/clap/" + m; }
std::string image(const std::string& name) { return std::string(ZEROSHOT_FIXTURES) + "/images/" + name; }
std::string sound(const std::string& name) { return std::string(ZEROSHOT_FIXTURES) + "/audio/" + name; }

using Reference = zeroshot::testing::ExpectedOutputs;

// Embeddings against expected rows: max abs diff <= 1e-4 x max abs value (fixtures README, f32 compute).
void expect_rows(const Embeddings& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.data.size(), want.size()) << what;
  const float tol = kEmbedRelTol * max_abs(want.data(), want.size());
  EXPECT_LE(max_abs_diff(got.data.data(), want.data(), want.size()), tol) << what;
}

std::vector<std::string> image_paths(const std::vector<std::string>& names) {
  std::vector<std::string> p;
  for (const auto& n : names) p.push_back(image(n));
  return p;
}

// ------------------------------------------------------------------------------------------------ .bin weights

struct BinCase {
  std::string dir;     // under reference-fixtures/
  std::string shared;  // the shared fixture with the same weights
};

class BinCheckpoint : public ::testing::TestWithParam<BinCase> {};

TEST_P(BinCheckpoint, ClipGivesTheExpectedOutputsAndTheSameFloatsAsSafetensors) {
  const BinCase& c = GetParam();
  const std::string dir = reference(c.dir);
  ASSERT_TRUE(fs::exists(dir)) << dir << " (made by the reference_fixtures test)";
  ASSERT_FALSE(fs::exists(dir + "/model.safetensors"));
  const auto bin = Model::load(dir);
  const auto st = Model::load(shared_clip(c.shared));
  EXPECT_STREQ(bin->model_type(), "clip");
  const Reference ex(shared_clip(c.shared));
  const std::vector<std::string> texts = ex.strings("texts");
  const std::vector<std::string> images = image_paths(ex.strings("images"));
  const Embeddings t = bin->embed_texts(texts), i = bin->embed_image_files(images);
  expect_rows(t, ex.get("text_embeds"), c.dir + " text_embeds");
  expect_rows(i, ex.get("image_embeds"), c.dir + " image_embeds");
  EXPECT_EQ(t.data, st->embed_texts(texts).data) << "the same weights must give the same floats";
  EXPECT_EQ(i.data, st->embed_image_files(images).data);
  EXPECT_NEAR(bin->logit_scale(), st->logit_scale(), 0.0f);
}

INSTANTIATE_TEST_SUITE_P(Layouts, BinCheckpoint,
                         ::testing::Values(BinCase{"bin/clip-tiny-quickgelu", "clip-tiny-quickgelu"},
                                           BinCase{"bin/clip-tiny-gelu-f16", "clip-tiny-gelu-f16"},
                                           BinCase{"bin-sharded/clip-tiny-quickgelu", "clip-tiny-quickgelu"},
                                           BinCase{"bin-legacy/clip-tiny-quickgelu", "clip-tiny-quickgelu"}),
                         [](const auto& info) {
                           std::string n = info.param.dir;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

class BinClap : public ::testing::TestWithParam<std::string> {};

TEST_P(BinClap, GivesTheExpectedOutputsAndTheSameFloatsAsSafetensors) {
  const std::string m = GetParam();
  const std::string dir = reference("bin/" + m);
  ASSERT_TRUE(fs::exists(dir + "/pytorch_model.bin")) << dir;
  const auto bin = Model::load(dir);
  const auto st = Model::load(shared_clap(m));
  EXPECT_STREQ(bin->model_type(), "clap");
  const Reference ex(shared_clap(m));
  const std::vector<std::string> texts = ex.strings("texts");
  const Embeddings t = bin->embed_texts(texts);
  expect_rows(t, ex.get("text_embeds"), m + " text_embeds");
  EXPECT_EQ(t.data, st->embed_texts(texts).data);
  const std::vector<std::string> sounds = {sound("chord_3s.wav"), sound("long_25s.wav")};
  EXPECT_EQ(bin->embed_audio_files(sounds).data, st->embed_audio_files(sounds).data);
}

INSTANTIATE_TEST_SUITE_P(Models, BinClap, ::testing::Values("clap-tiny-unfused", "clap-tiny-fused"),
                         [](const auto& info) {
                           return info.param == "clap-tiny-fused" ? std::string("fused") : std::string("unfused");
                         });

// ------------------------------------------------------------------------------------------------ OpenCLIP

class OpenClipCheckpoint : public ::testing::TestWithParam<std::string> {
 protected:
  std::string dir() const { return reference("open_clip/" + GetParam()); }
};

TEST_P(OpenClipCheckpoint, TokenIdsAreOpenClips) {
  const auto model = Model::load(dir());
  EXPECT_STREQ(model->model_type(), "open_clip");
  const Reference ex(dir());
  const auto texts = ex.strings("texts");
  ASSERT_EQ(texts.size(), ex.json["input_ids"].size());
  for (size_t k = 0; k < texts.size(); ++k)
    EXPECT_EQ(model->tokenize(texts[k]), ex.json["input_ids"][k].get<std::vector<int32_t>>()) << "text: " << texts[k];
}

TEST_P(OpenClipCheckpoint, PixelValuesAreOpenClipsTransformOfThePillowImage) {
  const auto model = Model::load(dir());
  const Reference ex(dir());
  for (const std::string& name : ex.strings("images")) {
    const std::vector<float> want = ex.get("pixel_values/" + name);
    const std::vector<float> got = model->preprocess_image_file(image(name));
    ASSERT_EQ(got.size(), want.size()) << name;
    if (name == "cmyk.jpg") {  // fixtures README: mean abs diff <= 0.02 for CMYK
      double sum = 0;
      for (size_t k = 0; k < got.size(); ++k) sum += std::fabs(got[k] - want[k]);
      EXPECT_LE(sum / static_cast<double>(got.size()), kCmykPixelMeanTol) << name;
    } else {
      EXPECT_LE(max_abs_diff(got.data(), want.data(), got.size()), kPixelTol) << name;
    }
  }
}

TEST_P(OpenClipCheckpoint, EmbeddingsAndScoresAreOpenClips) {
  const auto model = Model::load(dir());
  const Reference ex(dir());
  expect_rows(model->embed_texts(ex.strings("texts")), ex.get("text_embeds"), GetParam() + " text_embeds");
  expect_rows(model->embed_image_files(image_paths(ex.strings("images"))), ex.get("image_embeds"),
              GetParam() + " image_embeds");
  EXPECT_NEAR(std::log(model->logit_scale()), ex.json["logit_scale"].get<double>(), 1e-6);
  ClassifierOptions no_cache;
  no_cache.cache_dir = "none";
  ASSERT_FALSE(ex.json["zero_shot"].empty());
  for (const auto& z : ex.json["zero_shot"]) {
    const ZeroShotClassifier clf(*model, z["labels"].get<std::vector<std::string>>(),
                                 z["templates"].get<std::vector<std::string>>(), no_cache);
    const auto got = clf.classify_image(image(z["image"].get<std::string>()));
    ASSERT_EQ(got.size(), z["result"].size());
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].label, z["result"][k]["label"].get<std::string>()) << z["image"];
      EXPECT_NEAR(got[k].score, z["result"][k]["score"].get<double>(), kScoreTol) << z["image"] << " " << got[k].label;
    }
  }
}

// open_clip's .bin (torch.save) of the same model: the same floats as its safetensors file.
TEST_P(OpenClipCheckpoint, PytorchBinGivesTheSameFloats) {
  const fs::path tmp = fs::temp_directory_path() / ("zs_oc_bin_" + std::to_string(::getpid()) + "_" + GetParam());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  for (const auto& e : fs::directory_iterator(dir()))
    if (e.path().filename() != "open_clip_model.safetensors" && e.path().filename().string().rfind("expected", 0) != 0)
      fs::copy_file(e.path(), tmp / e.path().filename());
  ASSERT_TRUE(fs::exists(tmp / "open_clip_pytorch_model.bin"));
  const auto bin = Model::load(tmp.string());
  const auto st = Model::load(dir());
  const Reference ex(dir());
  EXPECT_EQ(bin->embed_texts(ex.strings("texts")).data, st->embed_texts(ex.strings("texts")).data);
  EXPECT_EQ(bin->embed_image_files({image("chelsea.png")}).data, st->embed_image_files({image("chelsea.png")}).data);
  fs::remove_all(tmp);
}

INSTANTIATE_TEST_SUITE_P(Models, OpenClipCheckpoint,
                         ::testing::Values("from-hf-quickgelu", "from-hf-gelu-f16", "native-gelu-longest",
                                           "native-quickgelu-squash"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

// The shared HF fixtures' weights in the OpenCLIP layout: the HF fixture's text embeddings (same weights, same
// tokenizer, same forward), and image embeddings from the HF fixture's own pixel values.
TEST(OpenClipCopyOfHfWeights, GivesTheHfEmbeddings) {
  for (const auto& [oc, hf] : {std::pair<std::string, std::string>{"from-hf-quickgelu", "clip-tiny-quickgelu"},
                               std::pair<std::string, std::string>{"from-hf-gelu-f16", "clip-tiny-gelu-f16"}}) {
    const auto model = Model::load(reference("open_clip/" + oc));
    const Reference ex(shared_clip(hf));
    std::vector<std::string> texts;
    std::vector<float> want;
    const std::vector<float> all = ex.get("text_embeds");
    const auto all_texts = ex.strings("texts");
    const size_t dim = model->embedding_dim();
    // Texts that spell the special tokens are tokenized as plain text by open_clip (its own spellings differ).
    for (size_t k = 0; k < all_texts.size(); ++k) {
      if (all_texts[k].find("<|") != std::string::npos) continue;
      texts.push_back(all_texts[k]);
      want.insert(want.end(), all.begin() + static_cast<long>(k * dim), all.begin() + static_cast<long>((k + 1) * dim));
    }
    expect_rows(model->embed_texts(texts), want, oc + " vs " + hf + " text_embeds");
    const auto images = ex.strings("images");
    std::vector<float> px;
    for (const auto& n : images) {
      const auto p = ex.get("pixel_values/" + n);
      px.insert(px.end(), p.begin(), p.end());
    }
    expect_rows(model->embed_pixel_values(px.data(), images.size()), ex.get("image_embeds"),
                oc + " vs " + hf + " image_embeds");
  }
}

// ------------------------------------------------------------------------------------------------ registry, refusals

TEST(ModelFamilies, TransformersLayoutWinsWhenBothArePresent) {
  const fs::path tmp = fs::temp_directory_path() / ("zs_both_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  for (const auto& e : fs::directory_iterator(shared_clip("clip-tiny-quickgelu")))
    if (e.path().filename().string().rfind("expected", 0) != 0) fs::copy_file(e.path(), tmp / e.path().filename());
  for (const char* f : {"open_clip_config.json", "open_clip_model.safetensors"})
    fs::copy_file(reference("open_clip/native-gelu-longest/") + f, tmp / f);
  EXPECT_STREQ(Model::load(tmp.string())->model_type(), "clip");
  fs::remove(tmp / "config.json");
  EXPECT_STREQ(Model::load(tmp.string())->model_type(), "open_clip");
  fs::remove(tmp / "open_clip_config.json");
  try {
    Model::load(tmp.string());
    ADD_FAILURE() << "a folder with neither config loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no config.json or open_clip_config.json"), std::string::npos) << e.what();
  }
  fs::remove_all(tmp);
}

TEST(OpenClipRefusals, EachBadFolderIsOneLineNamingTheFile) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not-json", "open_clip_config.json"},       {"timm-tower", "open_clip_config.json"},
      {"resnet-tower", "open_clip_config.json"},   {"coca", "open_clip_config.json"},
      {"hf-text-tower", "open_clip_config.json"},  {"unexpected-tensor", "visual.extra_head.weight"},
      {"missing-tensor", "visual.ln_post.weight"},
  };
  const fs::path tmp = fs::temp_directory_path() / ("zs_oc_bad_" + std::to_string(::getpid()));
  for (const auto& [c, needle] : cases) {
    // The bad config or weights beside a good tokenizer: the folder is refused for what the case is about.
    const std::string src = reference("open_clip-bad/" + c);
    ASSERT_TRUE(fs::exists(src)) << src;
    const std::string d = (tmp / c).string();
    fs::remove_all(d);
    fs::create_directories(d);
    for (const auto& e : fs::directory_iterator(src)) fs::copy_file(e.path(), d / e.path().filename());
    for (const char* f : {"vocab.json", "merges.txt"})
      fs::copy_file(reference("open_clip/native-gelu-longest/") + f, d + "/" + f);
    try {
      Model::load(d);
      ADD_FAILURE() << c << " loaded";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
      EXPECT_NE(m.find(needle), std::string::npos) << c << ": " << m;
      EXPECT_NE(m.find(d), std::string::npos) << c << ": " << m;
    }
  }
  fs::remove_all(tmp);
}

TEST(OpenClipRefusals, NoTokenizerFilesIsAClearError) {
  const fs::path tmp = fs::temp_directory_path() / ("zs_oc_notok_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  for (const char* f : {"open_clip_config.json", "open_clip_model.safetensors"})
    fs::copy_file(reference("open_clip/native-gelu-longest/") + f, tmp / f);
  try {
    Model::load(tmp.string());
    ADD_FAILURE() << "loaded without tokenizer files";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("without CLIP tokenizer files"), std::string::npos) << e.what();
  }
  fs::remove_all(tmp);
}

}  // namespace
