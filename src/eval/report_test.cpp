// The HTML report's pieces: base64, thumbnails (shrink + JPEG), escaping, and the page's sections.
#include "eval/report.h"

#include <gtest/gtest.h>

#include "eval/thumbnail.h"
#include "zeroshot/error.h"

using namespace zeroshot::eval;

namespace {

std::string b64(const std::string& s) { return base64(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// K classes, one sample each; sample i is predicted as class pred[i].
struct Fixture {
  Dataset data;
  Evaluation ev;
  RunInfo info;
  Fixture(size_t K, const std::vector<int>& pred, const std::string& image) {
    data.source = "/data/set";
    data.layout = Layout::Folder;
    for (size_t k = 0; k < K; ++k) data.classes.push_back({"id" + std::to_string(k), {"class " + std::to_string(k)}});
    std::vector<int> truth;
    for (size_t i = 0; i < pred.size(); ++i) {
      data.samples.push_back({image, {static_cast<int>(i % K)}, 0});
      truth.push_back(static_cast<int>(i % K));
      ev.evaluated.push_back(i);
    }
    std::vector<float> scores(pred.size() * K, 0.f);
    for (size_t i = 0; i < pred.size(); ++i) scores[i * K + static_cast<size_t>(pred[i])] = 1.f;
    SetResult r;
    r.set = {"default", {"This is a photo of {}."}};
    r.single = single_label_metrics(scores.data(), pred.size(), K, truth);
    ev.sets.push_back(r);
    info.model = "tiny <model>";
  }
};

}  // namespace

TEST(Report, Base64Rfc4648Vectors) {
  EXPECT_EQ(b64(""), "");
  EXPECT_EQ(b64("f"), "Zg==");
  EXPECT_EQ(b64("fo"), "Zm8=");
  EXPECT_EQ(b64("foo"), "Zm9v");
  EXPECT_EQ(b64("foob"), "Zm9vYg==");
  EXPECT_EQ(b64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(b64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(b64(std::string("\xff\xfe\x00", 3)), "//4A");
}

TEST(Report, ShrinkAveragesEachOutputPixelsArea) {
  zeroshot::image::RgbImage img{4, 2, {}};
  // Left 2x2 block: values 0, 10, 20, 30 (mean 15); right block 100 everywhere.
  const uint8_t v[2][4] = {{0, 10, 100, 100}, {20, 30, 100, 100}};
  for (const auto& row : v)
    for (uint8_t value : row)
      for (int c = 0; c < 3; ++c) img.pixels.push_back(value);
  const auto s = shrink_to_fit(img, 2);
  ASSERT_EQ(s.width, 2);
  ASSERT_EQ(s.height, 1);
  EXPECT_EQ(s.pixels[0], 15);
  EXPECT_EQ(s.pixels[3], 100);
  // Never enlarges.
  const auto same = shrink_to_fit(img, 100);
  EXPECT_EQ(same.width, 4);
  EXPECT_EQ(same.pixels, img.pixels);
}

TEST(Report, JpegRoundTrip) {
  zeroshot::image::RgbImage img{16, 8, std::vector<uint8_t>(16 * 8 * 3)};
  for (size_t i = 0; i < img.pixels.size(); i += 3) {
    img.pixels[i] = 200;
    img.pixels[i + 1] = 60;
    img.pixels[i + 2] = 30;
  }
  const auto jpeg = encode_jpeg(img, 90);
  ASSERT_GT(jpeg.size(), 100u);
  const auto back = zeroshot::image::decode_memory(jpeg.data(), jpeg.size(), "roundtrip.jpg");
  EXPECT_EQ(back.width, 16);
  EXPECT_EQ(back.height, 8);
  for (size_t i = 0; i < back.pixels.size(); ++i) EXPECT_NEAR(back.pixels[i], img.pixels[i], 4) << i;
  EXPECT_THROW(encode_jpeg({0, 0, {}}, 90), zeroshot::Error);
}

TEST(Report, ThumbnailsOfFixtureImages) {
  const std::string images = std::string(ZEROSHOT_FIXTURES) + "/images/";
  const std::string uri = thumbnail_data_uri(images + "chelsea.png", 64);
  ASSERT_EQ(uri.rfind("data:image/jpeg;base64,/9j/", 0), 0u) << uri.substr(0, 40);  // /9j/ = FF D8 FF
  EXPECT_LT(uri.size(), 10000u);
  EXPECT_EQ(thumbnail_data_uri(images + "bad_truncated.jpg", 64), "");
  EXPECT_EQ(thumbnail_data_uri(images + "bad_bomb_60000x60000.png", 64), "");
  EXPECT_EQ(thumbnail_data_uri(images + "does_not_exist.png", 64), "");
}

TEST(Report, HtmlEscape) {
  EXPECT_EQ(html_escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}

TEST(Report, PageSections) {
  const std::string img = std::string(ZEROSHOT_FIXTURES) + "/images/coffee.png";
  // 3 classes, 6 samples: truths 0,1,2,0,1,2; predictions 0,2,2,1,2,2 -> confusions 1->2 (twice), 0->1 (once).
  Fixture f(3, {0, 2, 2, 1, 2, 2}, img);
  f.data.classes[2].names[0] = "<script>";
  const std::string html = render_report(f.data, f.ev, f.info);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("tiny &lt;model&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_EQ(count(html, "&lt;script&gt;") >= 3, true);  // heatmap labels, pairs, table
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(count(html, "class=\"pair\""), 2u);
  EXPECT_EQ(count(html, "data:image/jpeg;base64,"), 2u);
  EXPECT_NE(html.find("50.00%"), std::string::npos);                         // top-1: 3 of 6
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // nothing fetched from elsewhere
  EXPECT_EQ(html.find("https://"), std::string::npos);

  // Over the heatmap limit: a note instead of the SVG.
  ReportOptions o;
  o.max_heatmap_classes = 2;
  const std::string small = render_report(f.data, f.ev, f.info, o);
  EXPECT_EQ(small.find("<svg"), std::string::npos);
  EXPECT_NE(small.find("drawn for up to 2 classes"), std::string::npos);
}

TEST(Report, MultiLabelAndFailures) {
  Fixture f(2, {0, 1}, "/nonexistent.jpg");
  f.ev.multi_label = true;
  const std::vector<std::vector<int>> labels = {{0, 1}, {1}};
  const std::vector<float> scores = {0.9f, 0.2f, 0.1f, 0.8f};
  f.ev.sets[0].multi = multi_label_metrics(scores.data(), 2, 2, labels);
  f.ev.failed.emplace_back(1, "/x/broken.jpg: not a JPEG, PNG, WebP, GIF or BMP file");
  const std::string html = render_report(f.data, f.ev, f.info);
  EXPECT_NE(html.find("mean average precision"), std::string::npos);
  EXPECT_NE(html.find("broken.jpg: not a JPEG"), std::string::npos);
  EXPECT_EQ(html.find("<svg"), std::string::npos);
}

TEST(Report, WriteFailsClearly) {
  Fixture f(2, {0, 1}, "/nonexistent.jpg");
  try {
    write_report("/nonexistent-dir/r.html", f.data, f.ev, f.info);
    FAIL();
  } catch (const zeroshot::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/r.html: cannot write"), std::string::npos) << e.what();
  }
}
