// SigLIP 2 NaFlex (transformers Siglip2Model, model_type "siglip2") through the public API and the CLI, against what
// transformers 4.51 computed on the random-weight checkpoint it saved (tests/fixtures-generated/siglip2-naflex/,
// committed with its generator make_siglip2_naflex.py: CI's reference venv has no Siglip2Model):
// target sizes and the positional-embedding resize; then the documented behaviour for images smaller than a patch,
// bench on packed records, and the errors for bad configs and records. The parity of patches, embeddings, logits,
// ids and zero-shot scores is in siglip_parity_test.cpp (case Siglip2Naflex).
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
  io::Json json = io::load_json(kRoot + "/expected.json");
};

ModelOptions no_hub() {
  ModelOptions o;
  o.offline = true;
  return o;
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

// --fast-decode has no draft for NaFlex (its size depends on the image): the exact pixel values, and no crash (it
// dereferenced the fixed-size processor NaFlex does not have).
TEST(Siglip2Naflex, FastDecodeDecodesExactly) {
  ModelOptions fast = no_hub();
  fast.fast_decode = true;
  const std::string jpeg = std::string(ZEROSHOT_FIXTURES) + "/images/exif_orientation6.jpg";
  EXPECT_EQ(Model::load(kDir, fast)->preprocess_image_file(jpeg),
            Model::load(kDir, no_hub())->preprocess_image_file(jpeg));
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
