// `zeroshot score` (CLIPScore, RefCLIPScore) and `zeroshot rank`, run as a user runs them, checked against scores
// this test computes itself, in double precision, from the engine's embeddings through the public API (its own
// normalization, cosines, clipping, harmonic mean and ordering). tests/reference/clip_score_check.py checks the same
// command against torchmetrics' CLIPScore.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "support/cli.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "zeroshot/zeroshot.h"

using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

const char* kModel = "clip-tiny-quickgelu";

const TempDir& scratch() {
  static const TempDir d("score");
  return d;
}

using Vec = std::vector<double>;

Vec normalized(const float* v, size_t n) {
  Vec out(v, v + n);
  double s = 0;
  for (double x : out) s += x * x;
  s = std::max(std::sqrt(s), 1e-12);
  for (double& x : out) x /= s;
  return out;
}

double dot(const Vec& a, const Vec& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d += a[i] * b[i];
  return d;
}

const Model& model() {
  static const auto m = Model::load(clip_dir(kModel));
  return *m;
}

Vec image_embedding(const std::string& path) {
  const Embeddings e = model().embed_image_files({path});
  return normalized(e.row(0), e.dim);
}

Vec text_embedding(const std::string& text) {
  const Embeddings e = model().embed_texts({text});
  return normalized(e.row(0), e.dim);
}

// The paper's formulas (Hessel et al. 2021, eq. 1 and 2), written out here independently of classify/clip_score.
double clip_s(double cos, double w) { return w * std::max(cos, 0.0); }
double ref_clip_s(double s, double ref) {
  ref = std::max(ref, 0.0);
  return s + ref > 0 ? 2 * s * ref / (s + ref) : 0.0;
}

CliResult cli(const Args& args) {
  return run_cli(Args{args[0], "-m", clip_dir(kModel), "-q"} + Args(args.begin() + 1, args.end()));
}

constexpr double kTol = 1e-5;  // cosines of f32 embeddings; the CLI and this test run the same encoder

TEST(Score, TextAgainstImagesMatchesEmbeddings) {
  const std::vector<std::string> images = {"chelsea.png", "astronaut.png", "coffee.png", "cmyk.jpg"};
  const std::string text = "a photo of a cat";
  Args args = {"score", "--text", text, "--format", "json"};
  for (const auto& i : images) args.push_back(image_path(i));
  const CliResult r = cli(args);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), images.size() + 1);
  const Vec t = text_embedding(text);
  double sum = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    const double cos = dot(image_embedding(image_path(images[i])), t);
    EXPECT_EQ(lines[i]["image"].get<std::string>(), image_path(images[i]));
    EXPECT_EQ(lines[i]["caption"].get<std::string>(), text);
    EXPECT_NEAR(lines[i]["cosine"].get<double>(), cos, kTol);
    EXPECT_NEAR(lines[i]["clip_score"].get<double>(), clip_s(cos, 2.5), 2.5 * kTol);
    EXPECT_FALSE(lines[i].contains("ref_clip_score"));
    sum += clip_s(cos, 2.5);
  }
  const auto& summary = lines.back();
  EXPECT_EQ(summary["pairs"].get<int>(), 4);
  EXPECT_EQ(summary["failed"].get<int>(), 0);
  EXPECT_NEAR(summary["mean_clip_score"].get<double>(), sum / 4, 2.5 * kTol);
}

// Negative cosines clip to 0 (the gelu-f16 fixture gives negative cosines for these texts), and --scale sets w.
TEST(Score, ScaleAndClipping) {
  const Args base = {"score", "-m", clip_dir("clip-tiny-gelu-f16"), "-q", "--format", "json", "--text", "a photo"};
  const CliResult r = run_cli(base + Args{"--scale", "100", image_path("chelsea.png")});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 2u);
  const auto m = Model::load(clip_dir("clip-tiny-gelu-f16"));
  const Embeddings ie = m->embed_image_files({image_path("chelsea.png")});
  const Embeddings te = m->embed_texts({"a photo"});
  const double cos = dot(normalized(ie.row(0), ie.dim), normalized(te.row(0), te.dim));
  EXPECT_NEAR(lines[0]["cosine"].get<double>(), cos, kTol);
  EXPECT_NEAR(lines[0]["clip_score"].get<double>(), clip_s(cos, 100), 100 * kTol);
  EXPECT_EQ(lines[1]["scale"].get<double>(), 100.0);

  const CliResult q =
      cli({"score", "--format", "json", "--text", "a photo of a cat", "--scale", "100", image_path("chelsea.png")});
  ASSERT_EQ(q.code, 0) << q.err;
  const double c2 = dot(image_embedding(image_path("chelsea.png")), text_embedding("a photo of a cat"));
  ASSERT_GT(c2, 0);  // so the scale is seen
  EXPECT_NEAR(json_lines(q.out)[0]["clip_score"].get<double>(), 100 * c2, 100 * kTol);
}

// A caption file with references (TSV and CSV), a prefix, and RefCLIPScore against the formula.
TEST(Score, CaptionFileWithReferences) {
  const std::string tsv = scratch().file("caps.tsv", "image\tcaption\trefs\n# a comment\n" + image_path("chelsea.png") +
                                                         "\ta cat on a rug\ta photo of a cat\ta tabby cat\n" +
                                                         image_path("coffee.png") + "\ta cup of coffee\n\n" +
                                                         image_path("astronaut.png") + "\ta woman in a suit\ta dog\n");
  const std::string csv = scratch().file("caps.csv", "image,caption,ref\n" + image_path("chelsea.png") +
                                                         ",\"a cat, on a rug\",a photo of a cat,a tabby cat\n" +
                                                         image_path("coffee.png") + ",\"a \"\"cup\"\" of coffee\"\n" +
                                                         image_path("astronaut.png") + ",a woman in a suit,a dog\n");
  struct Row {
    std::string image, caption;
    std::vector<std::string> refs;
  };
  const std::vector<Row> tsv_rows = {{"chelsea.png", "a cat on a rug", {"a photo of a cat", "a tabby cat"}},
                                     {"coffee.png", "a cup of coffee", {}},
                                     {"astronaut.png", "a woman in a suit", {"a dog"}}};
  std::vector<Row> csv_rows = tsv_rows;
  csv_rows[0].caption = "a cat, on a rug";
  csv_rows[1].caption = "a \"cup\" of coffee";
  const std::string prefix = "A photo depicts ";
  for (const auto& [file, rows] : {std::pair{tsv, tsv_rows}, std::pair{csv, csv_rows}}) {
    SCOPED_TRACE(file);
    const CliResult r = cli({"score", "--format", "json", "--captions", file, "--prefix", prefix});
    ASSERT_EQ(r.code, 0) << r.err;
    const auto lines = json_lines(r.out);
    ASSERT_EQ(lines.size(), rows.size() + 1);
    double sum = 0, sum_ref = 0;
    size_t n_ref = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      const Vec c = text_embedding(prefix + rows[i].caption);
      const double cos = dot(image_embedding(image_path(rows[i].image)), c);
      const double s = clip_s(cos, 2.5);
      EXPECT_EQ(lines[i]["caption"].get<std::string>(), rows[i].caption);
      EXPECT_NEAR(lines[i]["clip_score"].get<double>(), s, 2.5 * kTol);
      sum += s;
      if (rows[i].refs.empty()) {
        EXPECT_FALSE(lines[i].contains("ref_clip_score"));
        continue;
      }
      double best = -1;
      for (const auto& ref : rows[i].refs) best = std::max(best, dot(c, text_embedding(prefix + ref)));
      EXPECT_NEAR(lines[i]["ref_clip_score"].get<double>(), ref_clip_s(s, best), 2.5 * kTol);
      sum_ref += ref_clip_s(s, best);
      ++n_ref;
    }
    EXPECT_NEAR(lines.back()["mean_clip_score"].get<double>(), sum / 3, 2.5 * kTol);
    EXPECT_NEAR(lines.back()["mean_ref_clip_score"].get<double>(), sum_ref / n_ref, 2.5 * kTol);
  }
}

// Relative image paths in a caption file are relative to the file's folder.
TEST(Score, CaptionFilePathsRelativeToFile) {
  const std::string dir = scratch() / "rel";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(image_path("horse.png"), dir + "/horse.png",
                             std::filesystem::copy_options::overwrite_existing);
  const std::string f = scratch().file("rel/caps.tsv", "horse.png\ta horse\n");
  const CliResult r = cli({"score", "--format", "json", "--captions", f});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 2u);
  const double cos = dot(image_embedding(image_path("horse.png")), text_embedding("a horse"));
  EXPECT_NEAR(lines[0]["cosine"].get<double>(), cos, kTol);
}

TEST(Score, BadInputIsAOneLineError) {
  struct Case {
    std::string name;
    Args args;
    std::string expect;  // in stderr
  };
  const std::string missing =
      scratch().file("missing.tsv", image_path("chelsea.png") + "\ta cat\n" + scratch() / "nowhere.png" + "\ta dog\n");
  const std::string no_caption = scratch().file("nocap.tsv", image_path("chelsea.png") + "\n");
  const std::string empty_caption = scratch().file("emptycap.tsv", image_path("chelsea.png") + "\t  \n");
  const std::string empty_ref = scratch().file("emptyref.tsv", image_path("chelsea.png") + "\ta cat\t\n");
  const std::string quote = scratch().file("quote.csv", image_path("chelsea.png") + ",\"a cat\n");
  const std::string empty_file = scratch().file("empty.tsv", "# nothing\n");
  const std::vector<Case> cases = {
      {"missing image", {"score", "--captions", missing}, missing + ":2: image not found"},
      {"no caption", {"score", "--captions", no_caption}, no_caption + ":1: expected IMAGE<TAB>CAPTION"},
      {"empty caption", {"score", "--captions", empty_caption}, empty_caption + ":1: empty caption"},
      {"empty reference", {"score", "--captions", empty_ref}, empty_ref + ":1: empty reference caption"},
      {"unterminated quote", {"score", "--captions", quote}, quote + ":1: unterminated quoted field"},
      {"no rows", {"score", "--captions", empty_file}, empty_file + ": no (image, caption) rows"},
      {"no caption file", {"score", "--captions", scratch() / "none.tsv"}, "cannot open caption file"},
      {"empty text", {"score", "--text", "", image_path("chelsea.png")}, "--text: empty text"},
      {"empty ref", {"score", "--text", "a", "--ref", " ", image_path("chelsea.png")}, "--ref: empty reference"},
      {"neither", {"score", image_path("chelsea.png")}, "give --text T IMAGES... or --captions FILE"},
      {"both", {"score", "--captions", missing, "--text", "a"}, "--captions: takes the images"},
      {"missing path", {"score", "--text", "a", scratch() / "nowhere.png"}, "nowhere.png"},
      {"rank empty text", {"rank", "--text", " ", image_path("chelsea.png")}, "--text: empty text"},
      {"audio model",
       {"score", "--text", "a", "-m", clap_dir("clap-tiny-unfused"), image_path("chelsea.png")},
       "needs an image-text model"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const bool own_model = std::find(c.args.begin(), c.args.end(), "-m") != c.args.end();
    const CliResult r = own_model ? run_cli(c.args) : cli(c.args);
    EXPECT_NE(r.code, 0);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

// An unreadable image is a per-row error (JSON line, stderr, exit code 1); the other rows are scored.
TEST(Score, UnreadableImageIsARowError) {
  const std::string f = scratch().file(
      "bad.tsv", image_path("bad_truncated.jpg") + "\ta cat\n" + image_path("chelsea.png") + "\ta cat\n");
  const CliResult r = cli({"score", "--format", "json", "--captions", f});
  EXPECT_EQ(r.code, 1);
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_TRUE(lines[0].contains("error"));
  EXPECT_NE(lines[0]["error"].get<std::string>().find(f + ":1: "), std::string::npos);
  EXPECT_TRUE(lines[1].contains("clip_score"));
  EXPECT_EQ(lines[2]["pairs"].get<int>(), 1);
  EXPECT_EQ(lines[2]["failed"].get<int>(), 1);
  EXPECT_NE(r.err.find("bad_truncated.jpg"), std::string::npos);
}

TEST(Rank, BestFirstByCosine) {
  const std::vector<std::string> images = {"chelsea.png", "astronaut.png", "coffee.png", "horse.png", "rocket.jpg"};
  const std::string prompt = "a rocket on the launch pad";
  Args args = {"rank", "--text", prompt, "--format", "json"};
  for (const auto& i : images) args.push_back(image_path(i));
  const CliResult r = cli(args);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), images.size());
  const Vec t = text_embedding(prompt);
  std::vector<double> cos;
  for (const auto& i : images) cos.push_back(dot(image_embedding(image_path(i)), t));
  std::vector<size_t> order(images.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cos[a] > cos[b]; });
  for (size_t k = 0; k < order.size(); ++k) {
    EXPECT_EQ(lines[k]["rank"].get<int>(), static_cast<int>(k + 1));
    EXPECT_EQ(lines[k]["path"].get<std::string>(), image_path(images[order[k]]));
    EXPECT_NEAR(lines[k]["score"].get<double>(), cos[order[k]], kTol);
  }

  const CliResult top = cli(args + Args{"--top", "2"});
  ASSERT_EQ(top.code, 0) << top.err;
  const auto tl = json_lines(top.out);
  ASSERT_EQ(tl.size(), 2u);
  EXPECT_EQ(tl[1]["path"].get<std::string>(), image_path(images[order[1]]));
}

TEST(Rank, UnreadableImageIsReportedAndTheRestRanked) {
  const CliResult r = cli({"rank", "--text", "a cat", "--format", "json", image_path("bad_empty.png"),
                           image_path("chelsea.png"), image_path("coffee.png")});
  EXPECT_EQ(r.code, 1);
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["path"].get<std::string>(), image_path("bad_empty.png"));
  EXPECT_TRUE(lines[0].contains("error"));
  EXPECT_EQ(lines[1]["rank"].get<int>(), 1);
  EXPECT_EQ(lines[2]["rank"].get<int>(), 2);
}

}  // namespace
