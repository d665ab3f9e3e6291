// TIFF, HEIC and AVIF decoding against the reference decoders (formats_reference.py, run at test time: Pillow for
// TIFF, the libraries' own tools for HEIC/AVIF), and refusal of malformed files of each type.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "image/heif_geometry.h"
#include "image/image.h"
#include "image/pil_image.h"
#include "support/reference.h"
#include "zeroshot/error.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::image;

namespace {

const std::string kRef = FORMATS_REFERENCE_DIR;

using zeroshot::testing::first_diff;
using zeroshot::testing::read_bytes;
const nlohmann::json& manifest() { return zeroshot::testing::reference_manifest(kRef); }
#define REQUIRE_REFERENCE() ZS_REQUIRE_REFERENCE(kRef)

// Decoding must either succeed or throw a one-line Error that names the file.
void expect_clean(const std::vector<uint8_t>& bytes, const std::string& name, bool must_fail) {
  try {
    PilImage img = decode_native_memory(bytes.data(), bytes.size(), name);
    EXPECT_FALSE(must_fail) << name << " was decoded";
    EXPECT_GT(img.width, 0);
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(name, 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// A minimal little-endian TIFF header + IFD of SHORT/LONG tags and no pixel data.
std::vector<uint8_t> tiff_with_tags(const std::vector<std::pair<uint16_t, uint32_t>>& tags) {
  std::vector<uint8_t> b = {'I', 'I', 42, 0, 8, 0, 0, 0};
  auto put16 = [&](uint16_t v) { b.push_back(v & 0xff), b.push_back(v >> 8); };
  auto put32 = [&](uint32_t v) { put16(v & 0xffff), put16(v >> 16); };
  put16(static_cast<uint16_t>(tags.size()));
  for (const auto& [tag, value] : tags) {
    put16(tag), put16(4), put32(1), put32(value);  // type LONG, one value
  }
  put32(0);
  b.resize(b.size() + 64, 0);
  return b;
}

}  // namespace

TEST(Formats, DecodeLikeTheReference) {
  REQUIRE_REFERENCE();
  size_t n = 0;
  for (const auto& c : manifest()["cases"]) {
    const std::string file = kRef + "/" + c["file"].get<std::string>();
    SCOPED_TRACE(file);
    PilImage img = decode_native_file(file);
    ASSERT_EQ(img.width, c["width"].get<int>());
    ASSERT_EQ(img.height, c["height"].get<int>());
    if (!c["native"].is_null()) {
      const std::string mode = c["mode"].get<std::string>();
      EXPECT_EQ(mode_name(img.mode), mode == "I;16" || mode == "I;16B" ? std::string("I") : mode);
      EXPECT_EQ(first_diff(img.pixels, read_bytes(kRef + "/" + c["native"].get<std::string>())), -1);
    }
    const RgbImage rgb = decode_file(file);
    EXPECT_EQ(first_diff(rgb.pixels, read_bytes(kRef + "/" + c["rgb"].get<std::string>())), -1);
    ++n;
  }
  EXPECT_GT(n, 40u);
  for (const auto& note : manifest()["notes"]) std::printf("note: %s\n", note.get<std::string>().c_str());
}

// heif_geometry's box reader (decode_heif's bomb and dangling-reference checks) on files heif-enc wrote: it finds
// the coded size libheif reports and nothing to refuse.
TEST(Formats, HeifBoxReaderFindsTheSizesOfRealFiles) {
  REQUIRE_REFERENCE();
  size_t n = 0;
  for (const auto& c : manifest()["cases"]) {
    const std::string file = c["file"].get<std::string>();
    if (fs::path(file).extension() != ".heic") continue;
    SCOPED_TRACE(file);
    const std::vector<uint8_t> bytes = read_bytes(kRef + "/" + file);
    const auto sizes = detail::heif_declared_sizes(bytes.data(), bytes.size());
    const auto w = c["width"].get<uint32_t>(), h = c["height"].get<uint32_t>();
    bool found = false;
    for (const auto& s : sizes) {
      EXPECT_LE(uint64_t{s.width} * s.height, 100'000'000u) << s.what;
      found |= std::string(s.what) == "image" && ((s.width == w && s.height == h) || (s.width == h && s.height == w));
    }
    EXPECT_TRUE(found) << "no ispe of " << w << "x" << h;
    EXPECT_TRUE(detail::heif_dangling_references(bytes.data(), bytes.size()).empty());
    ++n;
  }
  EXPECT_GE(n, 4u);
}

TEST(Formats, MalformedFilesAreRefusedNamingTheFile) {
  REQUIRE_REFERENCE();
  std::mt19937 rng(7);
  for (const auto& c : manifest()["cases"]) {
    const std::string file = c["file"].get<std::string>();
    const std::vector<uint8_t> good = read_bytes(kRef + "/" + file);
    const std::string name = fs::path(file).filename().string();
    // Cut short: a header alone is always refused; cuts further in may still decode (what is cut may be metadata
    // such as an ICC profile stored after the pixels) or be refused, but must never crash.
    expect_clean(std::vector<uint8_t>(good.begin(), good.begin() + std::min<size_t>(good.size(), 12)), "head-" + name,
                 true);
    for (const double frac : {0.25, 0.5, 0.9, 0.99}) {
      const auto cut = static_cast<size_t>(static_cast<double>(good.size()) * frac);
      expect_clean(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(cut)),
                   "cut" + std::to_string(static_cast<int>(frac * 100)) + "-" + name, false);
    }
    // Random byte damage.
    for (int k = 0; k < 6; ++k) {
      std::vector<uint8_t> bad = good;
      for (int j = 0; j < 8; ++j) bad[rng() % bad.size()] = static_cast<uint8_t>(rng());
      expect_clean(bad, "damaged-" + name, false);
    }
  }
}

TEST(Formats, HandMadeBadFilesAreRefused) {
  expect_clean({'I', 'I', 42, 0}, "short.tif", true);
  expect_clean({'M', 'M', 0, 42, 0xff, 0xff, 0xff, 0xff, 0, 0}, "bad-ifd.tif", true);
  // 60000 x 60000 8-bit gray: refused before any pixel memory is allocated.
  const std::vector<uint8_t> bomb =
      tiff_with_tags({{256, 60000}, {257, 60000}, {258, 8}, {262, 1}, {273, 8}, {277, 1}, {278, 60000}, {279, 1}});
  try {
    decode_native_memory(bomb.data(), bomb.size(), "bomb.tif");
    ADD_FAILURE() << "bomb decoded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the limit"), std::string::npos) << e.what();
  }
  // A tile buffer far larger than the image (65535 x 65535 tiles on a 16 x 16 image): refused before allocating.
  const std::vector<uint8_t> huge_tile = tiff_with_tags(
      {{256, 16}, {257, 16}, {258, 8}, {262, 1}, {277, 1}, {322, 65520}, {323, 65520}, {324, 8}, {325, 16}});
  try {
    decode_native_memory(huge_tile.data(), huge_tile.size(), "tile.tif");
    ADD_FAILURE() << "huge tile decoded";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("tile.tif: ", 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find("too large"), std::string::npos) << e.what();
  }
  // Pixel data past the end of the file: refused (libtiff alone would leave the missing rows blank).
  const std::vector<uint8_t> truncated =
      tiff_with_tags({{256, 64}, {257, 64}, {258, 8}, {262, 1}, {273, 8}, {277, 1}, {278, 64}, {279, 4096}});
  try {
    decode_native_memory(truncated.data(), truncated.size(), "truncated.tif");
    ADD_FAILURE() << "truncated file decoded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  // Layouts outside Pillow's table: refused with the layout named.
  const std::vector<uint8_t> odd = tiff_with_tags({{256, 4}, {257, 4}, {258, 8}, {262, 8}, {273, 8}, {277, 3}});
  try {
    decode_native_memory(odd.data(), odd.size(), "lab.tif");
    ADD_FAILURE() << "LAB decoded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported"), std::string::npos) << e.what();
  }
  // ISO base media files with an image brand and nothing else.
  for (const char* brand : {"heic", "mif1", "avif"}) {
    std::vector<uint8_t> b = {0, 0, 0, 20, 'f', 't', 'y', 'p'};
    b.insert(b.end(), brand, brand + 4);
    b.insert(b.end(), {0, 0, 0, 0});
    b.insert(b.end(), brand, brand + 4);
    expect_clean(b, std::string("ftyp-") + brand, true);
  }
}

TEST(Formats, ExtensionsArePickedUp) {
  for (const char* p : {"a.tif", "b.TIFF", "c.heic", "d.HEIF", "e.avif"}) EXPECT_TRUE(has_image_extension(p)) << p;
  for (const char* p : {"a.tiffx", "heic", "d.heics", "e.avi"}) EXPECT_FALSE(has_image_extension(p)) << p;
}
