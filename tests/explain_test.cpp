// Explanation maps (zeroshot/explain.h, `zeroshot explain`): what the engine guarantees beyond the numbers, which
// tests/reference/explain_check.py checks against PyTorch. Row 0 of the patch tokens is the image embedding; the
// feature-surgery maps of a patch sum to zero over the labels; the CLI writes one overlay per label at the image's
// size (the model's square in colour, the rest dimmed) and maps.json; bad input is a one-line error naming it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "image/heatmap.h"
#include "image/image.h"
#include "io/json.h"
#include "support/cli.h"
#include "support/errors.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "zeroshot/explain.h"

using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

const Model& model() {
  static const auto m = Model::load(clip_dir("clip-tiny-quickgelu"));
  return *m;
}

bool one_line(const std::string& s) { return !s.empty() && s.find('\n') == s.size() - 1; }

TEST(ExplainApi, FirstRowIsTheImageEmbedding) {
  for (const std::string& name : clip_models()) {
    const auto m = Model::load(clip_dir(name));
    const std::vector<float> px = m->preprocess_image_file(image_path("chelsea.png"));
    const Embeddings image = m->embed_pixel_values(px.data(), 1);
    const int g = m->patch_grid();
    for (int vv : {1, 2}) {
      const Embeddings t = m->embed_patch_tokens(px.data(), vv);
      ASSERT_EQ(t.rows, 1 + static_cast<size_t>(g) * g) << name;
      ASSERT_EQ(t.dim, image.dim);
      float scale = 0, diff = 0;
      for (size_t c = 0; c < t.dim; ++c) {
        scale = std::max(scale, std::fabs(image.data[c]));
        diff = std::max(diff, std::fabs(image.data[c] - t.data[c]));
      }
      EXPECT_LE(diff, 1e-5f * scale) << name << " vv " << vv;
    }
  }
}

TEST(ExplainApi, SurgeryMapsSumToZeroOverLabelsAndScoresAreClassify) {
  const ZeroShotClassifier clf(model(), {"cat", "a rocket", "coffee"}, {}, {"none"});
  const std::vector<float> px = model().preprocess_image_file(image_path("astronaut.png"));
  const std::vector<LabelMap> maps = explain(model(), clf, px.data());
  ASSERT_EQ(maps.size(), 3u);
  const size_t n = maps[0].values.size();
  ASSERT_EQ(n, static_cast<size_t>(maps[0].grid * maps[0].grid));
  for (size_t i = 0; i < n; ++i) {
    double s = 0, mag = 0;
    for (const LabelMap& m : maps) s += m.values[i], mag += std::fabs(m.values[i]);
    EXPECT_LE(std::fabs(s), 1e-6 * std::max(mag, 1e-3)) << "patch " << i;
  }
  for (const LabelScore& s : clf.classify_image(image_path("astronaut.png"))) {
    const auto it = std::find_if(maps.begin(), maps.end(), [&](const LabelMap& m) { return m.label == s.label; });
    ASSERT_NE(it, maps.end());
    EXPECT_NEAR(it->score, s.score, 1e-6);
  }
  for (const LabelMap& m : maps) {
    EXPECT_EQ(m.min, *std::min_element(m.values.begin(), m.values.end()));
    EXPECT_EQ(m.max, *std::max_element(m.values.begin(), m.values.end()));
    EXPECT_LT(m.min, m.max);
  }
}

TEST(ExplainApi, BadArguments) {
  const std::vector<float> px = model().preprocess_image_file(image_path("chelsea.png"));
  EXPECT_NE(error_of([&] { model().embed_patch_tokens(px.data(), 0); }).find("vv_blocks"), std::string::npos);
  EXPECT_NE(error_of([&] { model().embed_patch_tokens(px.data(), 3); }).find("outside 1..2"), std::string::npos);
  const auto clap = Model::load(clap_dir("clap-tiny-unfused"));
  EXPECT_EQ(clap->patch_grid(), 0);
  const ZeroShotClassifier clf(*clap, {"dog"}, {}, {"none"});
  EXPECT_NE(error_of([&] { explain(*clap, clf, px.data()); }).find("no patch tokens"), std::string::npos);
}

TEST(Heatmap, PngRoundTripsAndOverlayStaysInTheSquare) {
  const image::RgbImage img = image::decode_file(image_path("wide.png"));  // 741 x 60: the square is 60 wide
  const float grid[4] = {0, 1, 2, 3};
  const image::RgbImage o = image::heatmap_overlay(img, grid, 2, 0, 3);
  const std::vector<uint8_t> png = image::encode_png(o);
  const image::RgbImage back = image::decode_memory(png.data(), png.size(), "overlay.png");
  ASSERT_EQ(back.width, img.width);
  ASSERT_EQ(back.height, img.height);
  EXPECT_EQ(back.pixels, o.pixels);
  const image::Square sq = image::center_square(img.width, img.height);
  EXPECT_EQ(sq.side, 60);
  // Outside the square: the image, dimmed. Inside: blended, so the top-left (value 0, blue) is bluer than the image.
  const size_t left = 0, inside = (static_cast<size_t>(2) * img.width + static_cast<size_t>(sq.x0) + 2) * 3;
  for (int c = 0; c < 3; ++c)
    EXPECT_EQ(o.pixels[left + c], static_cast<uint8_t>(std::lround(img.pixels[left + c] * 0.35f)));
  EXPECT_GT(o.pixels[inside + 2] - o.pixels[inside], img.pixels[inside + 2] - img.pixels[inside]);
  EXPECT_NE(error_of([&] { image::heatmap_overlay(img, grid, 0, 0, 1); }), "");
}

Args explain_args(const std::string& out) {
  return {"explain", image_path("chelsea.png"), "-m", clip_dir("clip-tiny-quickgelu"), "-q", "-o", out};
}

TEST(ExplainCli, WritesOverlaysAndJson) {
  const TempDir tmp("explain");
  const std::string out = tmp / "maps";
  const CliResult r = run_cli(explain_args(out) + Args{"--labels", "cat,a/b", "--label", "a_b", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const io::Json j = io::Json::parse(r.out);
  EXPECT_EQ(j, io::Json::parse(read_file(std::filesystem::path(out) / "maps.json")));
  const image::RgbImage src = image::decode_file(image_path("chelsea.png"));
  EXPECT_EQ(j["width"].get<int>(), src.width);
  EXPECT_EQ(j["grid"][0].get<int>(), 7);  // 224 / 32
  ASSERT_EQ(j["maps"].size(), 3u);
  // Labels become file names: '/' -> '_', and a name taken twice gets -2.
  const std::vector<std::string> pngs = {"cat.png", "a_b.png", "a_b-2.png"};
  for (size_t k = 0; k < 3; ++k) {
    const io::Json& m = j["maps"][k];
    EXPECT_EQ(m["png"].get<std::string>(), pngs[k]);
    ASSERT_EQ(m["values"].size(), 7u);
    EXPECT_EQ(m["values"][0].size(), 7u);
    const image::RgbImage png = image::decode_file((std::filesystem::path(out) / pngs[k]).string());
    EXPECT_EQ(png.width, src.width);
    EXPECT_EQ(png.height, src.height);
  }
  // --top: the best labels only, best first, with the scores and maps of the full run (surgery used every label).
  const CliResult best =
      run_cli(explain_args(tmp / "top") + Args{"--labels", "cat,a/b", "--label", "a_b", "--json", "--top", "1"});
  ASSERT_EQ(best.code, 0) << best.err;
  const io::Json jt = io::Json::parse(best.out);
  ASSERT_EQ(jt["maps"].size(), 1u);
  size_t top = 0;
  for (size_t k = 1; k < 3; ++k)
    if (j["maps"][k]["score"].get<float>() > j["maps"][top]["score"].get<float>()) top = k;
  EXPECT_EQ(jt["maps"][0]["label"], j["maps"][top]["label"]);
  EXPECT_EQ(jt["maps"][0]["values"], j["maps"][top]["values"]);
  EXPECT_EQ(std::filesystem::exists(tmp / "top/cat.png"), top == 0);
  // The table form names each PNG.
  const CliResult t = run_cli(explain_args(tmp / "t") + Args{"--labels", "cat", "--method", "cosine"});
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("cat.png"), std::string::npos);
}

TEST(ExplainCli, BadInputIsAOneLineError) {
  const TempDir tmp("explain");
  const std::string blocker = tmp.file("a_file", "x");
  struct Case {
    Args args;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{"explain", image_path("bad_truncated.jpg"), "-m", clip_dir("clip-tiny-quickgelu"), "-q", "-o", tmp / "o",
        "--labels", "cat"},
       "bad_truncated.jpg"},
      {{"explain", tmp / "missing.png", "-m", clip_dir("clip-tiny-quickgelu"), "-q", "-o", tmp / "o", "--labels",
        "cat"},
       "missing.png"},
      {explain_args(tmp / "o") + Args{"--labels", ""}, "label"},
      {explain_args(tmp / "o") + Args{"--labels", "cat", "--method", "gradcam"}, "gradcam"},
      {explain_args(tmp / "o") + Args{"--labels", "cat", "--vv-blocks", "5"}, "vv_blocks"},
      {explain_args(blocker + "/o") + Args{"--labels", "cat"}, "a_file"},
      {{"explain", image_path("chelsea.png"), "-m", clap_dir("clap-tiny-unfused"), "-q", "-o", tmp / "o", "--labels",
        "dog"},
       "no patch tokens"},
  };
  for (const Case& c : cases) {
    const CliResult r = run_cli(c.args);
    EXPECT_EQ(r.code, 2) << c.expect << ": " << r.err;
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
  }
}

}  // namespace
