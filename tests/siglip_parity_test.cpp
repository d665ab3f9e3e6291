// The SigLIP family against its references, one parameterized suite over every fixture: transformers' SiglipModel
// (tests/reference/make_siglip.py: siglip-tiny, siglip-tiny-nomask, siglip-tiny-remainder), SigLIP 2 fixed resolution
// with a Gemma tokenizer.json (make_siglip2.py: siglip2-tiny, siglip2-tiny-left), SigLIP 2 NaFlex (Siglip2Model; the
// committed tests/fixtures-generated/siglip2-naflex, whose generator needs a newer transformers than CI's reference
// venv) and OpenCLIP-format SigLIP (make_open_clip_siglip.py: three timm trunks and a T5Tokenizer folder, each from its
// safetensors and from its .bin).
// Through the public API and the CLI: score head, pixel values (NaFlex: packed records), image and text
// embeddings, token ids, logits, the zero-shot pipeline's sigmoid scores (not renormalized), and --precision
// bf16 / int8 against f32.
// Tolerances (../shared/fixtures/README.md, issue 12): ids exact, pixels <= 1e-5 (cmyk.jpg: mean <= 0.02, Pillow's
// CMYK conversion), embeddings <= 1e-4 x max |value|, logits <= 1e-4 relative, scores <= 1e-4; reduced
// precisions > 0.999 cosine to f32 (the CLIP precision tests' bound).
// Two suites over the same cases: SiglipTexts runs on every fixture, SiglipImages on those with images (the -nomask
// and -left ones hold only texts and zero-shot cases). What a fixture holds is said by its Case, so a fixture that
// loses a key fails instead of skipping.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "support/cli.h"
#include "support/compare.h"
#include "support/fixtures.h"
#include "support/reference.h"
#include "support/temp_dir.h"
#include "zeroshot/tagging.h"
#include "zeroshot/zeroshot.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

const std::string kRef = std::string(ZEROSHOT_BINARY_DIR) + "/reference-fixtures/";
const std::string kNaflex = std::string(ZEROSHOT_SOURCE_DIR) + "/tests/fixtures-generated/siglip2-naflex";
constexpr size_t kPatchFloats = 16 * 16 * 3;  // the NaFlex fixture's patch_size 16, RGB

enum class Pixels { None, Grid, Naflex };  // what the fixture's pixel_values are
// How the fixture's input_ids relate to Model::tokenize (the unpadded ids): cut at "lengths" (transformers padded
// them to 64), strip the trailing <pad> 0s, or padded by open_clip to its context length with id 1 ("</s>").
enum class Ids { None, Lengths, StripPad0, PadTo1 };

struct Case {
  std::string name;
  std::string model;     // the model folder
  std::string expected;  // where expected.json / .safetensors are
  std::string model_type;
  Pixels pixels = Pixels::None;
  Ids ids = Ids::None;
  bool long_texts = false;             // long_texts / long_text_embeds: over 64 tokens, truncated as the reference does
  std::string without;                 // a weights file left out of a copy of the folder (the other one is read)
  std::vector<std::string> cli_modes;  // classify through the CLI: "" (plain), "--multi-label"
};

// A transformers fixture of tests/reference (model and expected outputs in one folder).
Case transformers_case(const std::string& name, const std::string& folder, const std::string& model_type, Pixels pixels,
                       Ids ids, bool long_texts, const std::vector<std::string>& cli_modes) {
  const std::string dir = kRef + "siglip/" + folder;
  return {name, dir, dir, model_type, pixels, ids, long_texts, "", cli_modes};
}

// An OpenCLIP SigLIP fixture, read without one of its two weights files.
Case open_clip_case(const std::string& name, const std::string& folder, const std::string& without,
                    const std::vector<std::string>& cli_modes) {
  const std::string dir = kRef + "open_clip_siglip/" + folder;
  return {name, dir, dir, "open_clip_siglip", Pixels::Grid, Ids::PadTo1, false, without, cli_modes};
}

// Every fixture (SiglipTexts) and those with images (SiglipImages).
std::vector<Case> cases() {
  const std::vector<std::string> both = {"", "--multi-label"}, multi = {"--multi-label"};
  std::vector<Case> c = {
      transformers_case("Siglip", "siglip-tiny", "siglip", Pixels::Grid, Ids::Lengths, true, both),
      // A tokenizer without "attention_mask" in its model_input_names: the pipeline attends to the padding, as we do.
      transformers_case("SiglipNomask", "siglip-tiny-nomask", "siglip", Pixels::None, Ids::None, false, {}),
      // image_size 72 with patch_size 16, as google/siglip-so400m-patch14-384's 384 with 14: the convolution drops
      // the last 8 pixel rows and columns.
      transformers_case("SiglipRemainder", "siglip-tiny-remainder", "siglip", Pixels::Grid, Ids::Lengths, true, {}),
      transformers_case("Siglip2", "siglip2-tiny", "siglip", Pixels::Grid, Ids::Lengths, true, multi),
      // padding_side left (tokenizer_config.json): the texts at the end of the 64 positions.
      transformers_case("Siglip2Left", "siglip2-tiny-left", "siglip", Pixels::None, Ids::None, false, {}),
      {"Siglip2Naflex", kNaflex + "/model", kNaflex, "siglip2", Pixels::Naflex, Ids::StripPad0, false, "", multi},
  };
  // t5-tokenizer: the tokenizer saved as the timm hub repos' (T5Tokenizer over spiece.model).
  for (const auto& [trunk, tag] : std::vector<std::pair<std::string, std::string>>{
           {"gelu", "Gelu"}, {"gelu-tanh", "GeluTanh"}, {"remainder", "Remainder"}, {"t5-tokenizer", "T5Tokenizer"}}) {
    c.push_back(open_clip_case("OpenClipSiglip" + tag, "siglip-test-" + trunk, "open_clip_pytorch_model.bin", both));
    c.push_back(
        open_clip_case("OpenClipSiglip" + tag + "Bin", "siglip-test-" + trunk, "open_clip_model.safetensors", {}));
  }
  return c;
}

// gtest names a failing case by its parameter: the case's name, not its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> image_cases() {
  std::vector<Case> c = cases();
  c.erase(std::remove_if(c.begin(), c.end(), [](const Case& x) { return x.pixels == Pixels::None; }), c.end());
  return c;
}

using Reference = zeroshot::testing::ExpectedOutputs;

ModelOptions options(Precision p = Precision::F32) {
  ModelOptions o;
  o.offline = true;
  o.progress = false;
  o.precision = p;
  return o;
}

ClassifierOptions no_cache() {
  ClassifierOptions c;
  c.cache_dir = "none";
  return c;
}

double min_cosine(const Embeddings& a, const Embeddings& b) {
  EXPECT_EQ(a.dim, b.dim);
  return zeroshot::testing::min_cosine(a.data, b.data, a.dim);
}

class SiglipTexts : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const Case& c = GetParam();
    ref_ = std::make_unique<Reference>(c.expected);
    dir_ = c.model;
    if (!c.without.empty()) {  // a copy (files symlinked) without one weights file
      copy_.emplace("siglip_parity");
      for (const auto& e : fs::directory_iterator(c.model))
        if (e.path().filename() != c.without) fs::create_symlink(e.path(), copy_->path / e.path().filename());
      dir_ = copy_->str();
    }
  }
  // A fixture image: a shared one by name, the NaFlex fixture's own as images/<name>.
  std::string path_of(const std::string& name) const {
    return name.rfind("images/", 0) == 0 ? GetParam().expected + "/" + name : image_path(name);
  }
  std::vector<std::string> images() const { return ref_->json["images"].get<std::vector<std::string>>(); }
  std::vector<std::string> image_paths() const {
    std::vector<std::string> p;
    for (const auto& n : images()) p.push_back(path_of(n));
    return p;
  }
  std::vector<std::string> texts() const { return ref_->json["texts"].get<std::vector<std::string>>(); }
  std::unique_ptr<Model> load(Precision p = Precision::F32) const { return Model::load(dir_, options(p)); }

  std::unique_ptr<Reference> ref_;
  std::optional<TempDir> copy_;
  std::string dir_;
};

class SiglipImages : public SiglipTexts {};

TEST_P(SiglipTexts, ScoreHeadIsTheModelsSigmoid) {
  const Case& c = GetParam();
  const auto model = load();
  EXPECT_EQ(std::string(model->model_type()), c.model_type);
  const ScoreHead head = model->score_head();
  EXPECT_TRUE(head.sigmoid);
  EXPECT_FLOAT_EQ(model->logit_scale(), head.scale);
  if (c.pixels == Pixels::None) return;  // the text-only fixtures do not record the head
  EXPECT_FLOAT_EQ(head.scale, std::exp(ref_->json["logit_scale"].get<float>()));
  EXPECT_FLOAT_EQ(head.bias, ref_->json["logit_bias"].get<float>());
}

TEST_P(SiglipImages, PixelValuesMatch) {
  const Case& c = GetParam();
  const auto model = load();
  if (c.pixels == Pixels::Grid) {
    for (const auto& name : images()) {
      const std::vector<float> want = ref_->get("pixel_values/" + name);
      const std::vector<float> got = model->preprocess_image_file(path_of(name));
      ASSERT_EQ(got.size(), want.size()) << name;
      if (name == "cmyk.jpg") {
        double sum = 0;
        for (size_t i = 0; i < got.size(); ++i) sum += std::fabs(got[i] - want[i]);
        EXPECT_LE(sum / static_cast<double>(got.size()), kCmykPixelMeanTol) << name;
      } else {
        EXPECT_LE(max_abs_diff(got.data(), want.data(), got.size()), kPixelTol) << name;
      }
    }
    return;
  }
  // NaFlex: the packed record (image/naflex_processor.h) holds spatial_shapes, then the real patches, then zeros
  // (where Siglip2ImageProcessor pads to max_num_patches with pixel_attention_mask 0).
  const int side = model->image_size();
  const size_t record = static_cast<size_t>(3) * side * side;
  ASSERT_GE(record, static_cast<size_t>(ref_->json["max_num_patches"].get<int>()) * kPatchFloats + 2);
  const auto names = images();
  const auto pixel_images = ref_->json["pixel_images"].get<std::vector<std::string>>();
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    const std::vector<float> got = model->preprocess_image_file(path_of(name));
    ASSERT_EQ(got.size(), record) << name;
    const auto shape = ref_->json["spatial_shapes"][i].get<std::vector<int>>();
    EXPECT_EQ(got[0], static_cast<float>(shape[0])) << name;
    EXPECT_EQ(got[1], static_cast<float>(shape[1])) << name;
    const int n = ref_->json["num_patches"][i].get<int>();
    EXPECT_EQ(n, shape[0] * shape[1]) << name;
    const size_t used = 2 + static_cast<size_t>(n) * kPatchFloats;
    EXPECT_TRUE(std::all_of(got.begin() + static_cast<long>(used), got.end(), [](float v) { return v == 0.0f; }))
        << name;
    if (std::find(pixel_images.begin(), pixel_images.end(), name) == pixel_images.end()) continue;
    const std::vector<float> want = ref_->get("pixel_values/" + name);
    ASSERT_EQ(want.size(), static_cast<size_t>(n) * kPatchFloats) << name;
    EXPECT_LE(max_abs_diff(got.data() + 2, want.data(), want.size()), kPixelTol) << name;
  }
}

// Every image but cmyk.jpg, whose pixels differ within the CMYK tolerance; then the logits
// (exp(logit_scale) * cos + logit_bias) of every image-text pair, within 1e-4 of the largest logit and of the
// logit itself (at least 1).
TEST_P(SiglipImages, ImageEmbeddingsAndLogitsMatch) {
  const auto model = load();
  const auto names = images();
  const Embeddings img = model->embed_image_files(image_paths());
  const std::vector<float> want_img = ref_->get("image_embeds");
  ASSERT_EQ(img.data.size(), want_img.size());
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == "cmyk.jpg") continue;
    EXPECT_LE(max_abs_diff(img.row(i), want_img.data() + i * img.dim, img.dim), kEmbedRelTol * max_abs(want_img))
        << names[i];
  }
  const auto ts = texts();
  const Embeddings txt = model->embed_texts(ts);
  const std::vector<float> want_logits = ref_->get("logits_per_image");
  ASSERT_EQ(want_logits.size(), names.size() * ts.size());
  const ScoreHead head = model->score_head();
  const double scale = max_abs(want_logits);
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == "cmyk.jpg") continue;
    for (size_t t = 0; t < ts.size(); ++t) {
      const double got = head.scale * cosine(img.row(i), txt.row(t), img.dim) + head.bias;
      EXPECT_NEAR(got, want_logits[i * ts.size() + t], 1e-4 * std::min(scale, std::max(1.0, std::fabs(got))))
          << names[i] << " / " << ts[t];
    }
  }
}

TEST_P(SiglipTexts, TextEmbeddingsMatch) {
  const Case& c = GetParam();
  const auto model = load();
  const Embeddings txt = model->embed_texts(texts());
  const std::vector<float> want = ref_->get("text_embeds");
  ASSERT_EQ(txt.data.size(), want.size());
  EXPECT_LE(max_abs_diff(txt.data, want), kEmbedRelTol * max_abs(want));
  ASSERT_EQ(ref_->has("long_text_embeds"), c.long_texts);
  if (!c.long_texts) return;
  // Over 64 tokens: truncated to 63 + </s> (the pipeline itself would fail on them), as tokenizer(truncation=True).
  const Embeddings lng = model->embed_texts(ref_->json["long_texts"].get<std::vector<std::string>>());
  const std::vector<float> want_lng = ref_->get("long_text_embeds");
  ASSERT_EQ(lng.data.size(), want_lng.size());
  EXPECT_LE(max_abs_diff(lng.data, want_lng), kEmbedRelTol * max_abs(want_lng));
}

TEST_P(SiglipImages, TokenIdsMatch) {
  const Case& c = GetParam();
  const auto model = load();
  const auto ts = texts();
  ASSERT_EQ(ref_->json["input_ids"].size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    std::vector<int32_t> want = ref_->json["input_ids"][i].get<std::vector<int32_t>>();
    std::vector<int32_t> got = model->tokenize(ts[i]);
    if (c.ids == Ids::Lengths) {
      want.resize(ref_->json["lengths"][i].get<size_t>());
    } else if (c.ids == Ids::StripPad0) {
      while (!want.empty() && want.back() == 0) want.pop_back();
    } else {
      ASSERT_LE(got.size(), want.size()) << ts[i];
      got.resize(want.size(), 1);
    }
    EXPECT_EQ(got, want) << ts[i];
  }
}

// Every zero-shot case: the pipeline's (open_clip: its ensembled classifier's) sigmoid scores, sorted, through
// ZeroShotClassifier, MultiLabelClassifier (the same per-label sigmoid, thresholds as probabilities) and the CLI.
TEST_P(SiglipTexts, ZeroShotIsTheSigmoid) {
  const Case& c = GetParam();
  const auto model = load();
  const io::Json& cases = ref_->json["zero_shot"];
  ASSERT_GE(cases.size(), c.name == "SiglipNomask" ? 1u : 3u);
  for (const auto& z : cases) {
    const auto labels = z["labels"].get<std::vector<std::string>>();
    const auto templates = z.contains("templates") ? z["templates"].get<std::vector<std::string>>()
                                                   : std::vector<std::string>{z["template"].get<std::string>()};
    const std::string image = path_of(z["image"].get<std::string>());
    const auto& want = z["result"];
    double total = 0;
    for (const auto& w : want) total += w["score"].get<double>();
    EXPECT_GT(std::fabs(total - 1.0), 1e-3) << "independent sigmoids do not sum to 1 (a softmax would)";

    const ZeroShotClassifier clf(*model, labels, templates, no_cache());
    const auto got = clf.classify_image(image);
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].label, want[k]["label"].get<std::string>()) << image;
      EXPECT_NEAR(got[k].score, want[k]["score"].get<double>(), kScoreTol) << image << " " << got[k].label;
    }

    std::vector<std::vector<std::string>> classes;
    for (const auto& l : labels) classes.push_back({l});
    MultiLabelOptions mo;
    mo.classifier = no_cache();
    const MultiLabelClassifier ml(*model, classes, templates, mo);
    const Embeddings x = model->embed_image_files({image});
    const auto tags = ml.tag(x.row(0));
    ASSERT_EQ(tags.size(), want.size());
    for (size_t k = 0; k < tags.size(); ++k) {
      EXPECT_EQ(tags[k].label, want[k]["label"].get<std::string>());
      EXPECT_NEAR(tags[k].score, want[k]["score"].get<double>(), kScoreTol);
      EXPECT_EQ(tags[k].flagged, tags[k].score >= 0.5f);
    }

    std::string ls;
    for (const auto& l : labels) ls += (ls.empty() ? "" : ",") + l;
    for (const std::string& mode : c.cli_modes) {
      Args args = {"classify", "-m", dir_, "-l", ls, "-f", "json", image};
      for (const auto& t : templates) args.insert(args.end(), {"-t", t});
      if (!mode.empty()) args.push_back(mode);
      const CliResult r = run_cli(args);
      ASSERT_EQ(r.code, 0) << r.err;
      const auto lines = json_lines(r.out);
      ASSERT_EQ(lines.size(), 1u) << r.out;
      const auto& res = lines[0]["result"];
      ASSERT_EQ(res.size(), want.size());
      for (size_t k = 0; k < res.size(); ++k) {
        EXPECT_EQ(res[k]["label"], want[k]["label"]) << mode;
        EXPECT_NEAR(res[k]["score"].get<double>(), want[k]["score"].get<double>(), kScoreTol) << mode;
      }
    }
  }
}

// --precision bf16 / int8: image and text embeddings keep a cosine > 0.999 to f32 (the CLIP precision tests'
// bound), measured and printed; the precision really changed the arithmetic; the CLI takes the flag.
TEST_P(SiglipImages, ReducedPrecisionsKeepTheCosineBound) {
  const Case& c = GetParam();
  const auto paths = image_paths();
  const auto ts = texts();
  const auto f32 = load();
  const Embeddings img32 = f32->embed_image_files(paths), txt32 = f32->embed_texts(ts);
  for (Precision p : {Precision::BF16, Precision::Int8}) {
    const char* pn = p == Precision::BF16 ? "bf16" : "int8";
    const auto m = load(p);
    const double ci = min_cosine(m->embed_image_files(paths), img32), ct = min_cosine(m->embed_texts(ts), txt32);
    std::printf("%s %s: min cosine to f32 images %.6f texts %.6f\n", c.name.c_str(), pn, ci, ct);
    EXPECT_GT(ci, 0.999) << pn;
    EXPECT_GT(ct, 0.999) << pn;
    EXPECT_LT(ci, 1.0 - 1e-9) << pn << ": the precision did change the arithmetic";
    const CliResult r = run_cli({"classify", "-m", dir_, "--precision", pn, "-l", "cat,dog", "-f", "json", paths[0]});
    EXPECT_EQ(r.code, 0) << pn << " " << r.err;
    EXPECT_EQ(json_lines(r.out).size(), 1u) << r.out;
  }
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) { return info.param.name; }
INSTANTIATE_TEST_SUITE_P(Fixtures, SiglipTexts, ::testing::ValuesIn(cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Fixtures, SiglipImages, ::testing::ValuesIn(image_cases()), case_name);

}  // namespace
