// SigLIP 2 NaFlex (transformers Siglip2Model, model_type "siglip2") through the public API and the CLI, against what
// transformers 4.51 computed on the random-weight checkpoint it saved (tests/fixtures-generated/siglip2-naflex/,
// committed with its generator make_siglip2_naflex.py: CI's reference venv has no Siglip2Model):
// Siglip2ImageProcessor's patches, spatial shapes and mask sizes, image and text embeddings, logits, ids, and the
// zero-shot pipeline's scores; then the documented behaviour for images smaller than a patch and the errors for bad
// configs and records.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "image/naflex_processor.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/siglip2_naflex.h"
#include "support/cli.h"
#include "support/compare.h"
#include "support/fixtures.h"
#include "zeroshot/zeroshot.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

const std::string kRoot = std::string(ZEROSHOT_SOURCE_DIR) + "/tests/fixtures-generated/siglip2-naflex";
const std::string kDir = kRoot + "/model";
constexpr int kPatchFloats = 16 * 16 * 3;

struct Expected {
  Expected() : json(io::load_json(kRoot + "/expected.json")), tensors(kRoot + "/expected.safetensors") {}
  io::Json json;
  io::SafeTensorsFile tensors;
  std::vector<float> get(const std::string& name) const { return io::to_f32(tensors.tensors().at(name)); }
};

// Shared images by name, the fixture's own as images/<name>.
std::string path_of(const std::string& name) {
  return name.rfind("images/", 0) == 0 ? kRoot + "/" + name : image_path(name);
}

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

float cosine(const float* a, const float* b, size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return static_cast<float>(ab / std::sqrt(aa * bb));
}

TEST(Siglip2Naflex, PatchesShapesEmbeddingsLogitsAndIdsMatchTransformers) {
  const Expected e;
  const auto model = Model::load(kDir, no_hub());
  EXPECT_STREQ(model->model_type(), "siglip2");
  EXPECT_TRUE(model->score_head().sigmoid);
  const int side = model->image_size();
  const size_t record = static_cast<size_t>(3) * side * side;
  ASSERT_GE(record, static_cast<size_t>(e.json["max_num_patches"].get<int>()) * kPatchFloats + 2);

  const auto images = e.json["images"].get<std::vector<std::string>>();
  const auto pixel_images = e.json["pixel_images"].get<std::vector<std::string>>();
  std::vector<std::string> paths;
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string& name = images[i];
    paths.push_back(path_of(name));
    const std::vector<float> got = model->preprocess_image_file(paths.back());
    ASSERT_EQ(got.size(), record) << name;
    // spatial_shapes and the mask (its first num_patches entries are 1) exactly.
    const auto shape = e.json["spatial_shapes"][i].get<std::vector<int>>();
    EXPECT_EQ(got[0], static_cast<float>(shape[0])) << name;
    EXPECT_EQ(got[1], static_cast<float>(shape[1])) << name;
    const int n = e.json["num_patches"][i].get<int>();
    EXPECT_EQ(n, shape[0] * shape[1]) << name;
    const size_t used = 2 + static_cast<size_t>(n) * kPatchFloats;
    EXPECT_TRUE(std::all_of(got.begin() + static_cast<long>(used), got.end(), [](float v) { return v == 0.0f; }))
        << name;
    if (std::find(pixel_images.begin(), pixel_images.end(), name) == pixel_images.end()) continue;
    const std::vector<float> want = e.get("pixel_values/" + name);
    ASSERT_EQ(want.size(), static_cast<size_t>(n) * kPatchFloats) << name;
    EXPECT_LE(max_abs_diff(got.data() + 2, want.data(), want.size()), 1e-5f) << name;
  }

  const Embeddings img = model->embed_image_files(paths);
  const std::vector<float> want_img = e.get("image_embeds");
  ASSERT_EQ(img.data.size(), want_img.size());
  for (size_t i = 0; i < images.size(); ++i) {
    if (images[i] == "cmyk.jpg") continue;  // fixtures/README.md: Pillow's CMYK conversion is not bit-exact
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
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> want = e.json["input_ids"][i].get<std::vector<int32_t>>();
    while (!want.empty() && want.back() == 0) want.pop_back();  // the pipeline's <pad> (id 0) removed
    EXPECT_EQ(model->tokenize(texts[i]), want) << texts[i];
  }

  // logits_per_image = exp(logit_scale) * cos + logit_bias.
  const std::vector<float> want_logits = e.get("logits_per_image");
  ASSERT_EQ(want_logits.size(), images.size() * texts.size());
  const ScoreHead head = model->score_head();
  std::vector<float> logits;
  for (size_t i = 0; i < images.size(); ++i)
    for (size_t t = 0; t < texts.size(); ++t)
      logits.push_back(images[i] == "cmyk.jpg" ? want_logits[i * texts.size() + t]
                                               : head.scale * cosine(img.row(i), txt.row(t), img.dim) + head.bias);
  EXPECT_LE(max_abs_diff(logits, want_logits), 1e-4f * max_abs(want_logits));
}

// get_image_size_for_max_num_patches on sizes from 1 x 1 to 100000000 x 1 (whose trial scales overflow an int),
// several budgets and patch sizes.
TEST(Siglip2Naflex, TargetSizesMatchTransformers) {
  const Expected e;
  ASSERT_GE(e.json["target_sizes"].size(), 50u);
  for (const auto& row : e.json["target_sizes"]) {
    const auto v = row.get<std::vector<int>>();
    const image::NaflexSize s = image::naflex_target_size(v[0], v[1], v[2], v[3]);
    EXPECT_EQ(s.height, v[4]) << row.dump();
    EXPECT_EQ(s.width, v[5]) << row.dump();
  }
}

// resize_positional_embeddings (F.interpolate bilinear, antialias) of a random 8 x 8 grid, shrinking and growing.
TEST(Siglip2Naflex, PositionResizeMatchesTransformers) {
  const io::SafeTensorsFile t(kRoot + "/positions.safetensors");
  const std::vector<float> grid = io::to_f32(t.tensors().at("grid"));
  ASSERT_EQ(grid.size(), 8u * 8 * 4);
  const Expected e;
  ASSERT_GE(e.json["position_grids"].size(), 5u);
  for (const auto& g : e.json["position_grids"]) {
    const int gh = g[0].get<int>(), gw = g[1].get<int>();
    const std::vector<float> want =
        io::to_f32(t.tensors().at("resized/" + std::to_string(gh) + "x" + std::to_string(gw)));
    std::vector<float> got(static_cast<size_t>(gh) * gw * 4);
    ASSERT_EQ(got.size(), want.size());
    models::resize_positions(grid.data(), 8, 4, gh, gw, got.data());
    EXPECT_LE(max_abs_diff(got, want), 1e-6f * max_abs(grid)) << gh << "x" << gw;
  }
}

// The zero-shot pipeline's sigmoid scores, sorted, through the API and the CLI (one case is an image narrower than
// a patch).
TEST(Siglip2Naflex, ZeroShotIsThePipelinesSigmoid) {
  const Expected e;
  const auto model = Model::load(kDir, no_hub());
  ASSERT_GE(e.json["zero_shot"].size(), 3u);
  for (const auto& c : e.json["zero_shot"]) {
    const auto labels = c["labels"].get<std::vector<std::string>>();
    const std::string tmpl = c["template"].get<std::string>();
    const std::string image = path_of(c["image"].get<std::string>());
    const auto& want = c["result"];
    const ZeroShotClassifier clf(*model, labels, {tmpl}, no_cache());
    const auto got = clf.classify_image(image);
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].label, want[k]["label"].get<std::string>()) << image;
      EXPECT_NEAR(got[k].score, want[k]["score"].get<double>(), 1e-4) << image << " " << got[k].label;
    }
    std::string ls;
    for (const auto& l : labels) ls += (ls.empty() ? "" : ",") + l;
    const CliResult r = run_cli({"classify", "-m", kDir, "-l", ls, "-t", tmpl, "-f", "json", "--multi-label", image});
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

// Smaller than one patch is not an error: Siglip2ImageProcessor enlarges it (at least one patch a side, as many as
// the budget allows at its aspect ratio). A 1 x 1 image given as RGB is the fixture's dot.png.
TEST(Siglip2Naflex, ImageSmallerThanAPatchIsEnlarged) {
  const auto model = Model::load(kDir, no_hub());
  const uint8_t dot[3] = {200, 30, 90};
  const std::vector<float> rgb = model->preprocess_rgb(dot, 1, 1, "dot");
  const std::vector<float> file = model->preprocess_image_file(kRoot + "/images/dot.png");
  EXPECT_EQ(rgb, file);
  EXPECT_EQ(rgb[0], 7.0f);
  EXPECT_EQ(rgb[1], 7.0f);
}

// bench feeds a NaFlex model packed records of random images (a pixel grid is not a record), and its texts stay
// inside the fixture's small vocabulary.
TEST(Siglip2Naflex, BenchRuns) {
  for (const std::string precision : {"f32", "bf16"}) {
    Args args = {"bench", "-m", kDir, "--iters", "1"};
    if (precision != "f32") args.insert(args.end(), {"--batch", "2", "--no-imagenet", "--precision", precision});
    const CliResult r = run_cli(args);
    ASSERT_EQ(r.code, 0) << r.err;
    const auto lines = json_lines(r.out);
    ASSERT_EQ(lines.size(), 1u) << r.out;
    EXPECT_GT(lines[0]["images_per_s"].get<double>(), 0) << r.out;
    EXPECT_GT(lines[0]["texts_per_s"].get<double>(), 0) << r.out;
    if (precision == "bf16") {
      EXPECT_EQ(lines[0]["cosine_inputs"], "random 512 x 384 RGB images") << r.out;
      EXPECT_GE(lines[0]["min_cosine_vs_f32"].get<double>(), 0.999) << r.out;
    }
  }
}

// A copy of the fixture (files symlinked) with one file replaced.
fs::path variant(const std::string& tag, const std::string& file, const std::string& bytes) {
  fs::path dir = fs::temp_directory_path() / ("zs_naflex_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& f : fs::directory_iterator(kDir))
    if (f.path().filename() != file) fs::create_symlink(f.path(), dir / f.path().filename());
  if (bytes != "-") std::ofstream(dir / file, std::ios::binary) << bytes;
  return dir;
}

void expect_one_line_error(const fs::path& dir, const std::string& file, const std::string& what) {
  const CliResult r = run_cli({"classify", "-m", dir.string(), "-l", "cat,dog", "-f", "json", image_path("wide.png")});
  EXPECT_NE(r.code, 0);
  EXPECT_LT(r.code, 128);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find((dir / file).string() + ": "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
}

TEST(Siglip2Naflex, BadMaxNumPatchesIsAOneLineError) {
  const io::Json pre = io::load_json(kDir + "/preprocessor_config.json");
  for (const io::Json& bad : {io::Json(0), io::Json(-4), io::Json("64"), io::Json(2.5), io::Json(1 << 20)}) {
    io::Json j = pre;
    j["max_num_patches"] = bad;
    const fs::path dir = variant("pre", "preprocessor_config.json", j.dump());
    expect_one_line_error(dir, "preprocessor_config.json", "max_num_patches");
    fs::remove_all(dir);
  }
}

// Without max_num_patches the processor's default budget, 256 patches, applies (the record grows to hold them).
TEST(Siglip2Naflex, MissingMaxNumPatchesIsTheDefault256) {
  io::Json j = io::load_json(kDir + "/preprocessor_config.json");
  j.erase("max_num_patches");
  const fs::path dir = variant("pre256", "preprocessor_config.json", j.dump());
  const auto model = Model::load(dir.string(), no_hub());
  EXPECT_GE(3 * model->image_size() * model->image_size(), 256 * kPatchFloats + 2);
  const std::vector<float> px = model->preprocess_image_file(image_path("astronaut.png"));
  EXPECT_EQ(px[0], 16.0f);
  EXPECT_EQ(px[1], 16.0f);
  EXPECT_EQ(model->embed_pixel_values(px.data(), 1).dim, model->embedding_dim());
  fs::remove_all(dir);
}

TEST(Siglip2Naflex, NonSquarePositionGridIsAOneLineError) {
  io::Json j = io::load_json(kDir + "/config.json");
  j["vision_config"]["num_patches"] = 60;
  const fs::path dir = variant("cfg", "config.json", j.dump());
  expect_one_line_error(dir, "config.json", "num_patches 60");
  fs::remove_all(dir);
}

// pixel_values that are not a record this model wrote: an error, never a read past the buffer.
TEST(Siglip2Naflex, BadRecordIsAnError) {
  const auto model = Model::load(kDir, no_hub());
  std::vector<float> px = model->preprocess_image_file(image_path("wide.png"));
  for (const auto& grid : std::vector<std::pair<float, float>>{{0, 5}, {2.5f, 4}, {NAN, 1}, {100, 100}, {-1, -1}}) {
    px[0] = grid.first;
    px[1] = grid.second;
    EXPECT_THROW(model->embed_pixel_values(px.data(), 1), Error) << grid.first << " x " << grid.second;
  }
}

}  // namespace
