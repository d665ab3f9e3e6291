// Image decoding and CLIPImageProcessor against the fixtures (pixel_values produced by the reference pipeline:
// Pillow load + exif_transpose + convert("RGB"), CLIPImageProcessor), plus refusal of bad input and robustness.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "image/decode_internal.h"
#include "image/image.h"
#include "image/image_processor.h"
#include "image/resample.h"
#include "image/resample_avx2.h"
#include "image/resample_avx512.h"
#include "io/safetensors.h"
#include "support/alloc_watch.h"
#include "zeroshot/error.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::image;

namespace {

const std::string kFixtures = ZEROSHOT_FIXTURES;
const std::string kImages = kFixtures + "/images";
const char* kModels[] = {"clip-tiny-quickgelu", "clip-tiny-gelu-f16"};

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::vector<std::string> fixture_images(const std::string& model) {
  std::ifstream f(kFixtures + "/clip/" + model + "/expected.json");
  const auto j = nlohmann::json::parse(f);
  return j.at("images").get<std::vector<std::string>>();
}

// ---- tiny encoders for test inputs whose pixels are known by construction ----------------------------------

uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc = 0) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void put_be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}
void put_le16(std::vector<uint8_t>& v, uint32_t x) {
  v.push_back(static_cast<uint8_t>(x));
  v.push_back(static_cast<uint8_t>(x >> 8));
}
void put_le32(std::vector<uint8_t>& v, uint32_t x) {
  put_le16(v, x & 0xffff);
  put_le16(v, x >> 16);
}

void png_chunk(std::vector<uint8_t>& out, const char* type, const std::vector<uint8_t>& data) {
  put_be32(out, static_cast<uint32_t>(data.size()));
  std::vector<uint8_t> td(type, type + 4);
  td.insert(td.end(), data.begin(), data.end());
  out.insert(out.end(), td.begin(), td.end());
  put_be32(out, crc32(td.data(), td.size()));
}

// 8-bit RGB PNG (zlib "stored" blocks), optional eXIf chunk holding a big-endian TIFF with one Orientation entry.
std::vector<uint8_t> make_png(int w, int h, const std::vector<uint8_t>& rgb, int orientation = 0) {
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, w);
  put_be32(ihdr, h);
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});
  png_chunk(out, "IHDR", ihdr);
  if (orientation) {
    std::vector<uint8_t> tiff = {'M',  'M',
                                 0,    42,
                                 0,    0,
                                 0,    8,
                                 0,    1,  // header, IFD at 8 with 1 entry
                                 0x01, 0x12,
                                 0,    3,
                                 0,    0,
                                 0,    1,  // tag 0x0112, SHORT, count 1
                                 0,    static_cast<uint8_t>(orientation),
                                 0,    0,
                                 0,    0,
                                 0,    0};
    png_chunk(out, "eXIf", tiff);
  }
  std::vector<uint8_t> raw;
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), rgb.begin() + y * w * 3, rgb.begin() + (y + 1) * w * 3);
  }
  std::vector<uint8_t> z = {0x78, 0x01, 0x01};  // zlib header; one final stored block
  put_le16(z, static_cast<uint32_t>(raw.size()));
  put_le16(z, ~static_cast<uint32_t>(raw.size()) & 0xffff);
  z.insert(z.end(), raw.begin(), raw.end());
  uint32_t a = 1, b = 0;
  for (uint8_t c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  put_be32(z, (b << 16) | a);
  png_chunk(out, "IDAT", z);
  png_chunk(out, "IEND", {});
  return out;
}

// Uncompressed BMP: 24-bit (bottom-up) or 8-bit with a palette (top-down when `top_down`).
std::vector<uint8_t> make_bmp(int w, int h, int bits, const std::vector<uint8_t>& pixels,
                              const std::vector<uint8_t>& palette_bgrx, bool top_down) {
  const int stride = ((w * bits + 31) / 32) * 4;
  const int colors = static_cast<int>(palette_bgrx.size() / 4);
  const uint32_t offset = 14 + 40 + palette_bgrx.size();
  std::vector<uint8_t> out = {'B', 'M'};
  put_le32(out, offset + stride * h);
  put_le32(out, 0);
  put_le32(out, offset);
  put_le32(out, 40);
  put_le32(out, w);
  put_le32(out, top_down ? static_cast<uint32_t>(-h) : static_cast<uint32_t>(h));
  put_le16(out, 1);
  put_le16(out, bits);
  put_le32(out, 0);
  put_le32(out, stride * h);
  put_le32(out, 2835);
  put_le32(out, 2835);
  put_le32(out, colors);
  put_le32(out, 0);
  out.insert(out.end(), palette_bgrx.begin(), palette_bgrx.end());
  const int bpp = bits / 8;
  for (int r = 0; r < h; ++r) {
    const int y = top_down ? r : h - 1 - r;
    std::vector<uint8_t> row(pixels.begin() + y * w * bpp, pixels.begin() + (y + 1) * w * bpp);
    row.resize(stride, 0);
    out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

void expect_refused(const std::vector<uint8_t>& bytes, const std::string& name) {
  try {
    decode_memory(bytes.data(), bytes.size(), name);
    ADD_FAILURE() << name << ": decoded, expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------------------

TEST(ImageFixtures, PixelValuesMatchBothModels) {
  for (const char* model : kModels) {
    const std::string dir = kFixtures + "/clip/" + model;
    const ImageProcessor proc(ImageProcessorConfig::load(dir + "/preprocessor_config.json"));
    const io::SafeTensorsFile expected(dir + "/expected.safetensors");
    const auto names = fixture_images(model);
    ASSERT_GE(names.size(), 20u);
    for (const auto& name : names) {
      SCOPED_TRACE(std::string(model) + " " + name);
      const auto it = expected.tensors().find("pixel_values/" + name);
      ASSERT_NE(it, expected.tensors().end());
      ASSERT_EQ(it->second.shape, (std::vector<int64_t>{3, proc.out_height(), proc.out_width()}));
      const std::vector<float> want = io::to_f32(it->second);
      const RgbImage img = decode_file(kImages + "/" + name);
      const std::vector<float> got = proc.preprocess(img);
      ASSERT_EQ(got.size(), want.size());
      double max_diff = 0, sum_diff = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
        max_diff = std::max(max_diff, d);
        sum_diff += d;
      }
      if (name == "cmyk.jpg") {
        EXPECT_LE(sum_diff / got.size(), 0.02);
      } else {
        EXPECT_LE(max_diff, 1e-5);
      }
    }
  }
}

TEST(ImageFixtures, ExifOrientation6IsTransposed) {
  // Pillow reports the stored JPEG as 300x451 (width x height); orientation 6 turns it to 451x300.
  const RgbImage img = decode_file(kImages + "/exif_orientation6.jpg");
  EXPECT_EQ(img.width, 451);
  EXPECT_EQ(img.height, 300);
  // Parity of that image is part of PixelValuesMatchBothModels; check it here too for the 224 model.
  const std::string dir = kFixtures + "/clip/clip-tiny-quickgelu";
  const ImageProcessor proc(ImageProcessorConfig::load(dir + "/preprocessor_config.json"));
  const io::SafeTensorsFile expected(dir + "/expected.safetensors");
  const std::vector<float> want = io::to_f32(expected.tensors().at("pixel_values/exif_orientation6.jpg"));
  const std::vector<float> got = proc.preprocess(img);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5) << i;
  // The stored pixels with the orientation read, resampled in displayed order (the model's path): same values.
  const StoredRgbImage stored = decode_file_stored(kImages + "/exif_orientation6.jpg");
  EXPECT_EQ(stored.orientation, 6);
  EXPECT_EQ(stored.image.width, 300);
  EXPECT_EQ(proc.preprocess(stored), got);
}

TEST(ImageDecode, EveryOrientationAsExifTranspose) {
  // A 3x2 image whose pixel (x, y) holds (x, y, 7); after each orientation the pixel at output (x', y') must come
  // from the source position given by PIL.ImageOps.exif_transpose (Image.transpose methods) for that value.
  const int w = 3, h = 2;
  std::vector<uint8_t> rgb;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) rgb.insert(rgb.end(), {static_cast<uint8_t>(x), static_cast<uint8_t>(y), 7});
  for (int o = 0; o <= 9; ++o) {
    SCOPED_TRACE(o);
    const auto png = make_png(w, h, rgb, o);
    const RgbImage img = decode_memory(png.data(), png.size(), "o.png");
    const bool swap = o >= 5 && o <= 8;
    ASSERT_EQ(img.width, swap ? h : w);
    ASSERT_EQ(img.height, swap ? w : h);
    for (int y = 0; y < img.height; ++y) {
      for (int x = 0; x < img.width; ++x) {
        int sx = x, sy = y;
        if (o == 2) sx = w - 1 - x;                  // mirror horizontal
        if (o == 3) sx = w - 1 - x, sy = h - 1 - y;  // rotate 180
        if (o == 4) sy = h - 1 - y;                  // mirror vertical
        if (o == 5) sx = y, sy = x;                  // transpose
        if (o == 6) sx = y, sy = h - 1 - x;          // rotate 90 clockwise
        if (o == 7) sx = w - 1 - y, sy = h - 1 - x;  // transverse
        if (o == 8) sx = w - 1 - y, sy = x;          // rotate 90 counter-clockwise
        const uint8_t* p = &img.pixels[(static_cast<size_t>(y) * img.width + x) * 3];
        EXPECT_EQ(p[0], sx) << x << "," << y;
        EXPECT_EQ(p[1], sy) << x << "," << y;
        EXPECT_EQ(p[2], 7);
      }
    }
  }
}

TEST(ImageDecode, BmpUncompressed) {
  const int w = 3, h = 2;
  // 24-bit BGR, bottom-up: pixel (x, y) = RGB(10x + y, 100 + x, 200 + y).
  std::vector<uint8_t> bgr;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      bgr.insert(bgr.end(),
                 {static_cast<uint8_t>(200 + y), static_cast<uint8_t>(100 + x), static_cast<uint8_t>(10 * x + y)});
  auto bmp = make_bmp(w, h, 24, bgr, {}, false);
  RgbImage img = decode_memory(bmp.data(), bmp.size(), "a.bmp");
  ASSERT_EQ(img.width, w);
  ASSERT_EQ(img.height, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const uint8_t* p = &img.pixels[(y * w + x) * 3];
      EXPECT_EQ(p[0], 10 * x + y);
      EXPECT_EQ(p[1], 100 + x);
      EXPECT_EQ(p[2], 200 + y);
    }
  // 8-bit palette, top-down: index (x + y) % 3, palette entry i = RGB(i, 50 + i, 90 + i) stored as BGRX.
  std::vector<uint8_t> idx, pal;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) idx.push_back(static_cast<uint8_t>((x + y) % 3));
  for (int i = 0; i < 3; ++i)
    pal.insert(pal.end(), {static_cast<uint8_t>(90 + i), static_cast<uint8_t>(50 + i), static_cast<uint8_t>(i), 0});
  bmp = make_bmp(w, h, 8, idx, pal, true);
  img = decode_memory(bmp.data(), bmp.size(), "p.bmp");
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const int i = (x + y) % 3;
      const uint8_t* p = &img.pixels[(y * w + x) * 3];
      EXPECT_EQ(p[0], i);
      EXPECT_EQ(p[1], 50 + i);
      EXPECT_EQ(p[2], 90 + i);
    }
  // Pixel data cut short.
  bmp.resize(bmp.size() - 1);
  expect_refused(bmp, "short.bmp");
}

TEST(ImageDecode, BadFixturesAreRefusedNamingTheFile) {
  int n = 0;
  for (const auto& entry : fs::directory_iterator(kImages)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind("bad_", 0) != 0) continue;
    ++n;
    SCOPED_TRACE(file);
    try {
      decode_file(entry.path().string());
      ADD_FAILURE() << "decoded";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(file), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
  EXPECT_GE(n, 4);
  EXPECT_THROW(decode_file(kImages + "/no_such_file.png"), Error);
  EXPECT_THROW(decode_file(kImages), Error);  // a directory
}

TEST(ImageDecode, BombRefusedBeforeAllocating) {
  zeroshot::testing::AllocationWatch watch;
  bool refused = false;
  try {
    decode_file(kImages + "/bad_bomb_60000x60000.png");
  } catch (const Error& e) {
    refused = std::string(e.what()).find("60000x60000") != std::string::npos;
  }
  watch.stop();
  EXPECT_TRUE(refused);
  EXPECT_LT(watch.largest(), size_t{1} << 20);  // nothing near 60000 * 60000 * 3 bytes was requested
}

// A chunk before the image data declaring far more bytes than the file holds (a 1.5 GB tEXt in a 55-byte file, as
// image_fuzz found): refused as truncated, as before, but libpng no longer allocates (and touches) the declared size
// first: it did, 1.5 GB of RSS. libpng's malloc is not seen by AllocationWatch, so the process's peak RSS is.
TEST(ImageDecode, PngChunkLongerThanTheFileIsNotAllocated) {
  const std::vector<uint8_t> good = read_bytes(kImages + "/block.png");
  std::vector<uint8_t> bad(good.begin(), good.begin() + 33);            // the signature and IHDR
  const std::string text_chunk("\x5c\x00\x00\x19tEXtComment\x00", 16);  // length 0x5c000019, then 12 bytes
  bad.insert(bad.end(), text_chunk.begin(), text_chunk.end());
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  try {
    decode_memory(bad.data(), bad.size(), "text.png");
    ADD_FAILURE() << "decoded";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "text.png: PNG: file is truncated");
  }
  getrusage(RUSAGE_SELF, &after);
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 256 * 1024) << "KB";
}

TEST(ImageDecode, PixelLimitOption) {
  DecodeOptions opt;
  opt.max_pixels = 99;  // block.png is 10x10
  try {
    decode_file(kImages + "/block.png", opt);
    ADD_FAILURE() << "decoded past the limit";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("block.png"), std::string::npos) << e.what();
  }
  opt.max_pixels = 100;
  const RgbImage img = decode_file(kImages + "/block.png", opt);
  EXPECT_EQ(img.width * img.height, 100);
  // Every decoder applies the limit.
  opt.max_pixels = 10;
  for (const char* f : {"rocket.jpg", "coins.png", "lossy.webp", "no_time_for_that_tiny.gif"})
    EXPECT_THROW(decode_file(kImages + "/" + f, opt), Error) << f;
  const auto bmp = make_bmp(4, 4, 24, std::vector<uint8_t>(48, 1), {}, false);
  EXPECT_THROW(decode_memory(bmp.data(), bmp.size(), "x.bmp", opt), Error);
}

TEST(ImageDecode, ZeroSizeImagesRefused) {
  expect_refused(make_png(0, 1, {}), "zero.png");
  // BMP 0x2.
  expect_refused(make_bmp(0, 2, 24, {}, {}, false), "zero.bmp");
  // GIF with a 0x0 screen and a 0x0 frame.
  const std::vector<uint8_t> gif = {'G',  'I', 'F', '8', '9', 'a', 0, 0, 0, 0, 0, 0, 0,  // screen 0x0, no palette
                                    0x2C, 0,   0,   0,   0,   0,   0, 0, 0, 0,           // frame 0x0 at 0,0
                                    2,    0,   0x3B};
  expect_refused(gif, "zero.gif");
  // Text and junk.
  const std::string text = "hello, not an image";
  expect_refused(std::vector<uint8_t>(text.begin(), text.end()), "text.jpg");
  expect_refused({0xFF, 0xD8, 0xFF}, "stub.jpg");
  expect_refused({'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P'}, "stub.webp");
}

TEST(ImageDecode, CorruptVariantsDecodeOrThrow) {
  // Truncations and byte flips of good files: each must either decode to a consistent image or throw Error.
  std::mt19937 rng(12345);
  std::vector<std::pair<std::string, std::vector<uint8_t>>> inputs;
  for (const char* f : {"block.png", "foo3x5x4indexed.png", "green_palette.png", "horse.png", "page.png", "gray.jpg",
                        "progressive.jpg", "cmyk.jpg", "exif_orientation6.jpg", "tall.webp",
                        "no_time_for_that_tiny.gif", "wide.png", "rocket.jpg", "lossy.webp"})
    inputs.emplace_back(f, read_bytes(kImages + "/" + f));
  std::vector<uint8_t> pal;
  for (int i = 0; i < 16; ++i) pal.insert(pal.end(), {uint8_t(i * 9), uint8_t(i * 5), uint8_t(i), 0});
  inputs.emplace_back("gen.bmp", make_bmp(9, 7, 8, std::vector<uint8_t>(63, 3), pal, false));
  inputs.emplace_back("gen24.bmp", make_bmp(9, 7, 24, std::vector<uint8_t>(189, 200), {}, true));
  int decoded = 0, refused = 0;
  for (const auto& [name, good] : inputs) {
    ASSERT_FALSE(good.empty()) << name;
    std::vector<std::vector<uint8_t>> variants;
    for (double frac : {0.0, 0.05, 0.3, 0.6, 0.9, 0.99})
      variants.emplace_back(good.begin(), good.begin() + size_t(good.size() * frac));
    variants.emplace_back(good.begin(), good.end() - 1);
    for (int k = 0; k < 24; ++k) {
      auto v = good;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int j = 0; j < flips; ++j) {
        // Half of the flips hit the first 64 bytes, where the headers are.
        const size_t pos = (k % 2) ? rng() % std::min<size_t>(64, v.size()) : rng() % v.size();
        v[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
        if (k % 3 == 0) v[pos] = static_cast<uint8_t>(rng());
      }
      variants.push_back(std::move(v));
    }
    for (size_t i = 0; i < variants.size(); ++i) {
      const auto& v = variants[i];
      const std::string label = name + "#" + std::to_string(i);
      try {
        const RgbImage img = decode_memory(v.data(), v.size(), label);
        ASSERT_GT(img.width, 0) << label;
        ASSERT_GT(img.height, 0) << label;
        ASSERT_EQ(img.pixels.size(), size_t(img.width) * img.height * 3) << label;
        ++decoded;
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(label), std::string::npos) << e.what();
        ++refused;
      }
    }
  }
  std::printf("corrupt variants: %d decoded, %d refused\n", decoded, refused);
  EXPECT_GT(refused, 0);
}

TEST(ImageDecode, HasImageExtension) {
  for (const char* p : {"a.jpg", "b.JPEG", "dir/c.png", "d.WebP", "e.gif", "f.bmp", "x.y/z.Jpg", "photo.heic"})
    EXPECT_TRUE(has_image_extension(p)) << p;
  for (const char* p : {"a.txt", "png", "dir.png/file", "a.jpg.txt", "", "a.", ".tiff", "dir/.png"})
    EXPECT_FALSE(has_image_extension(p)) << p;
}

// ------------------------------------------------------------------------------------------------------------

TEST(ImageProcessorConfig, LoadsBothStyles) {
  const auto old_style = ImageProcessorConfig::load(kFixtures + "/clip/clip-tiny-quickgelu/preprocessor_config.json");
  EXPECT_EQ(old_style.shortest_edge, 224);
  EXPECT_EQ(old_style.crop_height, 224);
  EXPECT_EQ(old_style.crop_width, 224);
  EXPECT_EQ(old_style.resample, 3);
  EXPECT_TRUE(old_style.do_rescale);  // absent: HF default
  EXPECT_DOUBLE_EQ(old_style.rescale_factor, 1.0 / 255.0);
  const auto new_style = ImageProcessorConfig::load(kFixtures + "/clip/clip-tiny-gelu-f16/preprocessor_config.json");
  EXPECT_EQ(new_style.shortest_edge, 96);
  EXPECT_EQ(new_style.crop_height, 96);
  EXPECT_EQ(new_style.crop_width, 96);
  EXPECT_FLOAT_EQ(new_style.mean[0], 0.48145466f);
  EXPECT_FLOAT_EQ(new_style.std[2], 0.27577711f);
  EXPECT_EQ(ImageProcessor(new_style).out_height(), 96);
}

TEST(ImageProcessorConfig, MalformedValuesNameTheFile) {
  const fs::path dir = fs::path(ZEROSHOT_BINARY_DIR) / "image_test_tmp";
  fs::create_directories(dir);
  const char* bad[] = {
      R"({"size": "big"})",
      R"({"size": {"longest_edge": 5}})",
      R"({"size": 0})",
      R"({"crop_size": [224]})",
      R"({"resample": 0})",
      R"({"resample": 9})",
      R"({"image_mean": [0.5, 0.5]})",
      R"({"image_std": [1, 0, 1]})",
      R"({"do_resize": "yes"})",
      R"({"rescale_factor": "x"})",
      R"({"do_center_crop": false})",
      R"([1, 2])",
      R"({"size": )",
  };
  int i = 0;
  for (const char* text : bad) {
    const fs::path p = dir / ("bad_" + std::to_string(i++) + ".json");
    std::ofstream(p) << text;
    try {
      ImageProcessorConfig::load(p.string());
      ADD_FAILURE() << "accepted " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p.filename().string()), std::string::npos) << e.what();
    }
  }
  const fs::path ok = dir / "ok.json";
  std::ofstream(ok) << R"({"size": {"height": 20, "width": 30}, "crop_size": {"height": 10, "width": 12},
                           "image_mean": 0.5, "image_std": 0.25, "resample": 2})";
  const auto c = ImageProcessorConfig::load(ok.string());
  EXPECT_EQ(c.resize_height, 20);
  EXPECT_EQ(c.resize_width, 30);
  EXPECT_EQ(c.crop_width, 12);
  EXPECT_EQ(c.resample, 2);
  EXPECT_FLOAT_EQ(c.mean[1], 0.5f);
  EXPECT_FLOAT_EQ(c.std[2], 0.25f);
  EXPECT_THROW(ImageProcessorConfig::load((dir / "missing.json").string()), Error);
}

TEST(ImageProcessor, ResizeBasics) {
  RgbImage flat;
  flat.width = 7;
  flat.height = 5;
  flat.pixels.assign(7 * 5 * 3, 77);
  for (int f : {1, 2, 3, 4, 5}) {
    const RgbImage up = resize(flat, 23, 11, f);  // a constant image stays constant (coefficients sum to 1)
    ASSERT_EQ(up.pixels.size(), 23u * 11 * 3);
    for (uint8_t v : up.pixels) ASSERT_EQ(v, 77) << f;
    const RgbImage down = resize(flat, 2, 1, f);
    for (uint8_t v : down.pixels) ASSERT_EQ(v, 77) << f;
  }
  const RgbImage same = resize(flat, 7, 5, 3);
  EXPECT_EQ(same.pixels, flat.pixels);
  EXPECT_THROW(resize(flat, 3, 3, 0), Error);
  EXPECT_THROW(resize(flat, 0, 3, 3), Error);
  EXPECT_THROW(resize(RgbImage{}, 3, 3, 3), Error);
}

// A photo-sized pass is split by rows across threads; small windows of the same resize run on one thread. Each
// output pixel depends only on its own coefficients, so the two must agree byte for byte (the small windows are
// the code the Pillow parity tests check).
TEST(ImageProcessor, ResizeSplitAcrossThreadsIsExact) {
  RgbImage big;
  big.width = 2400;
  big.height = 1800;
  big.pixels.resize(static_cast<size_t>(big.width) * big.height * 3);
  std::mt19937 rng(15);
  for (auto& v : big.pixels) v = static_cast<uint8_t>(rng() >> 24);
  for (const auto& [w, h, f] : {std::tuple{1100, 770, 3}, std::tuple{300, 1799, 1}, std::tuple{2399, 224, 2}}) {
    SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h) + " filter " + std::to_string(f));
    const RgbImage whole = resize(big, w, h, f);
    std::vector<uint8_t> band;
    constexpr int kRows = 8;
    for (int y = 0; y < h; y += kRows) {
      const int n = std::min(kRows, h - y);
      band.assign(static_cast<size_t>(n) * w * 3, 0);
      detail::resample_window_u8(big.pixels.data(), big.width, big.height, 3, w, h, f, 0, y, w, n, band.data());
      ASSERT_TRUE(std::equal(band.begin(), band.end(), whole.pixels.begin() + static_cast<ptrdiff_t>(y) * w * 3))
          << "rows " << y << ".." << y + n;
    }
  }
}

// The AVX-512 and AVX2 passes (where the CPU has them) against the scalar ones, which the Pillow parity tests check on
// the fixtures: every band count, every filter, down- and upscaling in both directions, widths that leave partial
// vectors, and edge
// pixels with fewer taps; extreme pixel values (0 / 255 noise) to reach the clamps of both ends.
TEST(ImageProcessor, SimdPassesAreExact) {
  std::vector<int> levels;
  if (detail::resample_avx512_available()) levels.push_back(2);
  if (detail::resample_avx2_available()) levels.push_back(1);
  if (levels.empty()) GTEST_SKIP() << "neither AVX-512 nor AVX2 on this CPU";
  std::mt19937 rng(16);
  for (int channels = 1; channels <= 4; ++channels) {
    for (const auto& [sw, sh, w, h] :
         {std::tuple{403, 37, 29, 11}, std::tuple{17, 9, 61, 9}, std::tuple{1000, 6, 7, 6}, std::tuple{5, 3, 4, 3},
          std::tuple{64, 5, 64, 2}, std::tuple{3001, 4, 223, 4}, std::tuple{7, 300, 5, 41}, std::tuple{70, 5, 70, 23},
          std::tuple{90, 1000, 90, 77}}) {
      std::vector<uint8_t> src(static_cast<size_t>(sw) * sh * channels);
      for (auto& v : src)
        v = (rng() & 1) ? static_cast<uint8_t>(rng() >> 24) : static_cast<uint8_t>(rng() & 1 ? 255 : 0);
      for (int f = 1; f <= 5; ++f) {
        SCOPED_TRACE(std::to_string(channels) + " bands " + std::to_string(sw) + "->" + std::to_string(w) + " filter " +
                     std::to_string(f));
        std::vector<uint8_t> simd(static_cast<size_t>(w) * h * channels), scalar(simd.size());
        detail::limit_resample_simd(0);
        detail::resample_window_u8(src.data(), sw, sh, channels, w, h, f, 0, 0, w, h, scalar.data());
        for (const int level : levels) {
          detail::limit_resample_simd(level);
          detail::resample_window_u8(src.data(), sw, sh, channels, w, h, f, 0, 0, w, h, simd.data());
          ASSERT_EQ(simd, scalar) << "SIMD level " << level;
        }
        detail::limit_resample_simd(2);
      }
    }
  }
}

// Resampling in the stored orientation against Pillow's order (exif_transpose first, then resize; apply_orientation
// is checked against Pillow's transposes above): every orientation, band count and filter, windows inside the
// result, sizes that keep one axis (Pillow skips that pass), with and without the SIMD passes.
TEST(ImageProcessor, ResampleInStoredOrientationIsExact) {
  std::mt19937 rng(17);
  const PilMode modes[] = {PilMode::L, PilMode::LA, PilMode::RGB, PilMode::RGBA};
  for (const int simd : {2, 1, 0}) {
    detail::limit_resample_simd(simd);
    for (int channels = 1; channels <= 4; ++channels) {
      PilImage stored;
      stored.mode = modes[channels - 1];
      stored.width = 203;
      stored.height = 131;
      stored.pixels.resize(static_cast<size_t>(stored.width) * stored.height * channels);
      for (auto& v : stored.pixels) v = static_cast<uint8_t>(rng() >> 24);
      for (int o = 1; o <= 8; ++o) {
        const PilImage shown = detail::apply_orientation(stored, o);
        for (const auto& [w, h, x0, y0, ww, wh] :
             {std::tuple{17, 23, 0, 0, 17, 23}, std::tuple{shown.width / 3, 40, 5, 7, 20, 30},
              std::tuple{shown.width, 29, 3, 2, shown.width - 9, 20}, std::tuple{31, shown.height, 0, 9, 31, 50},
              std::tuple{shown.width, shown.height, 4, 4, 60, 60}, std::tuple{400, 333, 100, 90, 210, 200}}) {
          for (int f = 1; f <= 5; ++f) {
            SCOPED_TRACE("orientation " + std::to_string(o) + " bands " + std::to_string(channels) + " " +
                         std::to_string(w) + "x" + std::to_string(h) + " filter " + std::to_string(f) + " SIMD level " +
                         std::to_string(simd));
            std::vector<uint8_t> want(static_cast<size_t>(ww) * wh * channels), got(want.size());
            detail::resample_window_u8(shown.pixels.data(), shown.width, shown.height, channels, w, h, f, x0, y0, ww,
                                       wh, want.data());
            detail::resample_window_u8_oriented(stored.pixels.data(), stored.width, stored.height, channels, o, w, h, f,
                                                x0, y0, ww, wh, got.data());
            ASSERT_EQ(got, want);
          }
        }
      }
    }
  }
  detail::limit_resample_simd(2);
}

TEST(ImageProcessor, CropPadsSmallImagesWithNormalizedZeros) {
  // No resize, crop 4x4 of a 2x1 image: HF pads with zeros around (top = (1-4)//2 = -2, left = (2-4)//2 = -1),
  // and the zeros are normalized like pixels.
  ImageProcessorConfig cfg;
  cfg.do_resize = false;
  cfg.crop_height = cfg.crop_width = 4;
  RgbImage img;
  img.width = 2;
  img.height = 1;
  img.pixels = {255, 255, 255, 255, 255, 255};
  const std::vector<float> out = ImageProcessor(cfg).preprocess(img);
  ASSERT_EQ(out.size(), 3u * 16);
  for (int c = 0; c < 3; ++c) {
    const float zero = (0.0f - cfg.mean[c]) / cfg.std[c];
    const float one = (1.0f - cfg.mean[c]) / cfg.std[c];
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x) {
        const bool inside = y == 2 && (x == 1 || x == 2);
        EXPECT_FLOAT_EQ(out[c * 16 + y * 4 + x], inside ? one : zero) << c << " " << y << " " << x;
      }
  }
}

TEST(ImageSamples, ThousandPhotosDecodeAndPreprocess) {
  const fs::path dir = fs::path(ZEROSHOT_SHARED) / "datasets" / "imagenet-samples";
  if (!fs::exists(dir)) GTEST_SKIP() << dir << " not present";
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (has_image_extension(e.path().string())) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 1000u);
  const ImageProcessor proc(
      ImageProcessorConfig::load(kFixtures + "/clip/clip-tiny-quickgelu/preprocessor_config.json"));
  std::vector<float> out(3 * 224 * 224);
  const auto t0 = std::chrono::steady_clock::now();
  double decode_s = 0;
  for (const auto& f : files) {
    const auto a = std::chrono::steady_clock::now();
    const RgbImage img = decode_file(f.string());
    decode_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
    ASSERT_GT(img.width, 0);
    proc.preprocess(img, out.data());
    ASSERT_TRUE(std::isfinite(out.front()) && std::isfinite(out.back())) << f;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%zu photos: %.2f s (%.1f images/s, one thread; decode %.2f s, preprocess %.2f s)\n", files.size(), s,
              files.size() / s, decode_s, s - decode_s);
}
