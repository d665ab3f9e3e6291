// Pillow-mode decoding, per-mode resize and open_clip's transform against Pillow 9.4 + torchvision 0.14 themselves:
// pil_reference.py (a CTest fixture-setup test) writes what they produce for every fixture image and for images it
// synthesizes in the modes the fixtures lack; this test compares byte for byte (decode, resize) and within 1e-5
// (transform tensors). Without python3-pil / python3-torchvision the setup skips and so do these tests.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "image/image.h"
#include "image/open_clip_transform.h"
#include "image/pil_image.h"
#include "support/reference.h"
#include "zeroshot/error.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::image;

namespace {

const std::string kRef = PIL_REFERENCE_DIR;

using zeroshot::testing::first_diff;
using zeroshot::testing::read_bytes;
const nlohmann::json& manifest() { return zeroshot::testing::reference_manifest(kRef); }
#define REQUIRE_REFERENCE() ZS_REQUIRE_REFERENCE(kRef)

std::string base(const std::string& path) { return fs::path(path).filename().string(); }

OpenClipTransformConfig config_of(const nlohmann::json& j) {
  OpenClipTransformConfig c;
  if (j["image_size"].is_number()) {
    c.height = c.width = j["image_size"].get<int>();
  } else {
    c.height = j["image_size"][0].get<int>();
    c.width = j["image_size"][1].get<int>();
  }
  for (int i = 0; i < 3; ++i) {
    c.mean[i] = static_cast<float>(j["mean"][i].get<double>());
    c.std[i] = static_cast<float>(j["std"][i].get<double>());
  }
  c.resize_mode = j["resize_mode"].get<std::string>();
  c.interpolation = j["interpolation"].get<std::string>();
  c.fill_color = j["fill_color"].get<int>();
  return c;
}

// Index of the first differing byte, or -1.

}  // namespace

TEST(PilImage, DecodesInPillowsModeAndConvertsLikePillow) {
  REQUIRE_REFERENCE();
  const auto& images = manifest()["images"];
  ASSERT_GE(images.size(), 30u);
  for (size_t i = 0; i < images.size(); ++i) {
    const auto& e = images[i];
    const std::string path = e["path"];
    SCOPED_TRACE(base(path));
    const PilImage img = decode_native_file(path);
    EXPECT_EQ(mode_name(img.mode), e["mode"].get<std::string>());
    ASSERT_EQ(img.width, e["width"].get<int>());
    ASSERT_EQ(img.height, e["height"].get<int>());
    EXPECT_EQ(first_diff(img.pixels, read_bytes(kRef + "/native/" + std::to_string(i) + ".bin")), -1);
    const std::vector<uint8_t> rgb = read_bytes(kRef + "/native/" + std::to_string(i) + "_rgb.bin");
    EXPECT_EQ(first_diff(to_rgb(img).pixels, rgb), -1);
    EXPECT_EQ(first_diff(decode_file(path).pixels, rgb), -1);  // the RGB path is native + to_rgb
  }
}

// DecodeOptions::draft_size (the opt-in fast decode) is Pillow's JpegImageFile.draft: same pixels at 1/2..1/8.
TEST(PilImage, JpegDraftMatchesPillowsDraft) {
  REQUIRE_REFERENCE();
  size_t checked = 0;
  for (const auto& e : manifest()["images"]) {
    if (!e.contains("draft")) continue;
    SCOPED_TRACE(base(e["path"]));
    for (const auto& d : e["draft"]) {
      DecodeOptions opt;
      opt.draft_size = d["draft_size"].get<int>();
      const PilImage img = decode_native_file(e["path"], opt);
      EXPECT_EQ(mode_name(img.mode), d["mode"].get<std::string>());
      ASSERT_EQ(img.width, d["width"].get<int>());
      ASSERT_EQ(img.height, d["height"].get<int>());
      EXPECT_EQ(first_diff(img.pixels, read_bytes(kRef + "/" + d["file"].get<std::string>())), -1) << opt.draft_size;
      ++checked;
    }
  }
  EXPECT_GE(checked, 12u);  // every JPEG fixture (gray, CMYK, progressive, EXIF-rotated) at three scales
}

TEST(PilImage, ResizePerModeMatchesPillow) {
  REQUIRE_REFERENCE();
  const auto& images = manifest()["images"];
  for (const auto& e : images) {
    SCOPED_TRACE(base(e["path"]));
    const PilImage img = decode_native_file(e["path"]);
    for (const auto& r : e["resize"]) {
      const int w = r["width"], h = r["height"], filter = r["filter"];
      SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h) + " filter " + std::to_string(filter));
      const PilImage out = resize(img, w, h, filter);
      EXPECT_EQ(out.mode, img.mode);
      EXPECT_EQ(first_diff(out.pixels, read_bytes(kRef + "/" + r["file"].get<std::string>())), -1);
      std::string rgb_file = r["file"].get<std::string>();
      rgb_file.replace(rgb_file.size() - 4, 4, "_rgb.bin");
      EXPECT_EQ(first_diff(to_rgb(out).pixels, read_bytes(kRef + "/" + rgb_file)), -1);

      // A window of the resize holds the same bytes as the full resize there.
      const int x0 = w / 3, y0 = h / 4, ww = std::max(1, w / 2), wh = std::max(1, h / 2);
      const PilImage win = resize_window(img, w, h, filter, x0, y0, ww, wh);
      const size_t bpp = bytes_per_pixel(img.mode);
      bool same = true;
      for (int y = 0; y < wh; ++y)
        same = same && std::memcmp(&win.pixels[y * ww * bpp], &out.pixels[((y0 + y) * w + x0) * bpp], ww * bpp) == 0;
      EXPECT_TRUE(same);
    }
  }
}

TEST(OpenClipTransform, MatchesOpenClipsTransform) {
  REQUIRE_REFERENCE();
  const auto& m = manifest();
  std::vector<OpenClipTransformConfig> configs;
  for (const auto& c : m["configs"]) configs.push_back(config_of(c));
  int cases = 0, exact = 0, refused = 0;
  for (const auto& e : m["images"]) {
    const std::string path = e["path"];
    const PilImage img = decode_native_file(path);
    for (const auto& t : e["transform"]) {
      const OpenClipTransformConfig& cfg = configs[t["config"].get<int>()];
      SCOPED_TRACE(base(path) + " config " + std::to_string(t["config"].get<int>()) + " (" + cfg.resize_mode + ", " +
                   cfg.interpolation + ", " + std::to_string(cfg.height) + "x" + std::to_string(cfg.width) + ")");
      if (t.contains("error")) {  // Pillow refused to resize to 0 pixels: so do we
        EXPECT_THROW(open_clip_transform(img, cfg), Error);
        ++refused;
        continue;
      }
      ASSERT_EQ(t["height"].get<int>(), cfg.height);
      ASSERT_EQ(t["width"].get<int>(), cfg.width);
      const std::vector<uint8_t> raw = read_bytes(kRef + "/" + t["file"].get<std::string>());
      std::vector<float> want(raw.size() / 4);
      std::memcpy(want.data(), raw.data(), raw.size());
      const std::vector<float> got = open_clip_transform(img, cfg);
      ASSERT_EQ(got.size(), want.size());
      double max_abs = 0;
      for (size_t k = 0; k < got.size(); ++k) max_abs = std::max(max_abs, std::fabs(double(got[k]) - want[k]));
      EXPECT_LE(max_abs, 1e-5);
      ++cases;
      exact += max_abs == 0;
    }
  }
  std::printf("open_clip transform: %d cases, %d bit-exact, %d refused like Pillow\n", cases, exact, refused);
  EXPECT_GT(cases, 300);
  EXPECT_GT(refused, 0);
}

TEST(PilImage, BadFixturesAreRefusedNamingTheFile) {
  REQUIRE_REFERENCE();
  for (const auto& b : manifest()["bad"]) {
    const std::string path = b;
    SCOPED_TRACE(path);
    try {
      decode_native_file(path);
      ADD_FAILURE() << "decoded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(base(path)), std::string::npos) << e.what();
    }
  }
}

TEST(OpenClipTransform, RefusesWhatItCannotHonour) {
  PilImage img;
  img.width = img.height = 2;
  img.mode = PilMode::L;
  img.pixels.assign(4, 7);
  auto refused = [&](auto edit, const char* needle) {
    OpenClipTransformConfig cfg;
    edit(cfg);
    try {
      open_clip_transform(img, cfg);
      ADD_FAILURE() << "accepted a config with " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("open_clip transform"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  refused([](auto& c) { c.interpolation = "random"; }, "training");
  refused([](auto& c) { c.interpolation = "lanczos"; }, "lanczos");
  refused([](auto& c) { c.resize_mode = "crop"; }, "crop");
  refused([](auto& c) { c.height = 0; }, "image_size");
  refused([](auto& c) { c.fill_color = 256; }, "fill_color");
  refused([](auto& c) { c.std[1] = 0.0f; }, "std");
  PilImage empty;
  EXPECT_THROW(open_clip_transform(empty, OpenClipTransformConfig{}), Error);
  PilImage bad = img;
  bad.pixels.resize(3);
  EXPECT_THROW(open_clip_transform(bad, OpenClipTransformConfig{}), Error);
  EXPECT_THROW(resize(img, 0, 3, 3), Error);
  EXPECT_THROW(resize(img, 3, 3, 9), Error);
  PilImage p = img;
  p.mode = PilMode::P;  // no palette
  EXPECT_THROW(to_rgb(p), Error);
}
