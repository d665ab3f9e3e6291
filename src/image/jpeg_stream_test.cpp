// The streamed JPEG path (ImageProcessor::preprocess_encoded: decoded strip by strip into the resize) against the
// full-size path it replaces (preprocess(decode_memory_stored(...)), the code the Pillow parity tests check): the
// same floats bit for bit, or the same error, for every fixture JPEG and for generated JPEGs of every kind libjpeg
// writes (odd sizes, 4:2:0 / 4:2:2 / 4:4:4, grayscale, CMYK, progressive, EXIF orientations 1-8, truncated), with
// several processor settings (down- and upscaling, crop, fixed size, every filter, the draft decode) and at every
// SIMD level of the resize passes. The same for OpenCLIP's transform (open_clip_transform_encoded against
// open_clip_transform(decode_native_memory(...)): the resize in the image's own mode, L, RGB or CMYK), and for
// SigLIP 2 NaFlex (naflex_preprocess_encoded against naflex_preprocess(decode_memory(...))).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>
// clang-format off
#include <jpeglib.h>
// clang-format on

#include "image/image.h"
#include "image/image_processor.h"
#include "image/naflex_processor.h"
#include "image/open_clip_transform.h"
#include "image/pil_image.h"
#include "image/resample.h"
#include "support/alloc_watch.h"
#include "support/errors.h"
#include "zeroshot/error.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::image;

namespace {

const std::string kImages = std::string(ZEROSHOT_FIXTURES) + "/images";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// An APP1 "Exif" block whose IFD0 holds only the orientation tag (little-endian TIFF).
std::vector<uint8_t> exif_with_orientation(int orientation) {
  // "Exif\0\0", TIFF header (IFD0 at 8), one entry: tag 0x0112 SHORT x1 = orientation, no next IFD.
  static const char kBlock[] = "Exif\0\0II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x01\0\0\0\0\0\0\0";
  std::vector<uint8_t> e(kBlock, kBlock + sizeof kBlock - 1);
  e[24] = static_cast<uint8_t>(orientation);
  return e;
}

struct JpegSpec {
  int width = 0, height = 0;
  int components = 3;          // 1 gray, 3 YCbCr, 4 CMYK
  int h_samp = 2, v_samp = 2;  // luma sampling factors (2, 2: 4:2:0; 2, 1: 4:2:2; 1, 1: 4:4:4)
  bool progressive = false;
  int orientation = 0;  // 0: no EXIF block
};

// Noise over gradients, so every tap's weight matters and the chroma is not flat.
std::vector<uint8_t> make_jpeg(const JpegSpec& s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> px(static_cast<size_t>(s.width) * s.height * s.components);
  for (int y = 0; y < s.height; ++y)
    for (int x = 0; x < s.width; ++x)
      for (int c = 0; c < s.components; ++c)
        px[(static_cast<size_t>(y) * s.width + x) * s.components + c] =
            static_cast<uint8_t>((x * (c + 1) * 7 + y * (3 - c) * 5) / 4 + rng() % 64);
  jpeg_compress_struct ci{};
  jpeg_error_mgr err{};
  ci.err = jpeg_std_error(&err);
  jpeg_create_compress(&ci);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&ci, &buf, &size);
  ci.image_width = static_cast<JDIMENSION>(s.width);
  ci.image_height = static_cast<JDIMENSION>(s.height);
  ci.input_components = s.components;
  ci.in_color_space = s.components == 1 ? JCS_GRAYSCALE : (s.components == 3 ? JCS_RGB : JCS_CMYK);
  jpeg_set_defaults(&ci);
  jpeg_set_quality(&ci, 90, TRUE);
  if (s.components == 3) {
    ci.comp_info[0].h_samp_factor = s.h_samp;
    ci.comp_info[0].v_samp_factor = s.v_samp;
  }
  if (s.progressive) jpeg_simple_progression(&ci);
  jpeg_start_compress(&ci, TRUE);
  if (s.orientation > 0) {
    const std::vector<uint8_t> exif = exif_with_orientation(s.orientation);
    jpeg_write_marker(&ci, JPEG_APP0 + 1, exif.data(), static_cast<unsigned>(exif.size()));
  }
  while (ci.next_scanline < ci.image_height) {
    JSAMPROW row = &px[static_cast<size_t>(ci.next_scanline) * s.width * s.components];
    jpeg_write_scanlines(&ci, &row, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);
  std::vector<uint8_t> out(buf, buf + size);
  std::free(buf);  // NOLINT(cppcoreguidelines-no-malloc): jpeg_mem_dest's buffer is malloc'd
  return out;
}

ImageProcessorConfig config(int shortest, int crop, int resample) {
  ImageProcessorConfig c;
  c.shortest_edge = shortest;
  c.crop_height = c.crop_width = crop;
  c.resample = resample;
  return c;
}

// Settings the checks run with: CLIP's 224 bicubic, a larger crop than the resize (zero padding), upscaling,
// a fixed size without crop, and the other filters.
std::vector<ImageProcessorConfig> configs() {
  std::vector<ImageProcessorConfig> v = {config(224, 224, 3), config(64, 80, 3), config(300, 256, 1),
                                         config(37, 31, 2),   config(50, 50, 4), config(50, 50, 5)};
  ImageProcessorConfig fixed = config(0, 0, 3);
  fixed.do_center_crop = false;
  fixed.resize_height = 61;
  fixed.resize_width = 45;
  v.push_back(fixed);
  return v;
}

// The full-size path and the streamed one give the same floats, or throw the same zeroshot::Error message (anything
// else thrown fails the test); `what` names the case in a failure.
void expect_same_output(const std::function<std::vector<float>()>& full_path,
                        const std::function<std::vector<float>()>& streamed_path, const std::string& what) {
  std::vector<float> full, streamed;
  const std::string full_error = zeroshot::testing::error_of([&] { full = full_path(); });
  const std::string streamed_error = zeroshot::testing::error_of([&] { streamed = streamed_path(); });
  ASSERT_EQ(full_error.rfind("NOT a zeroshot::Error", 0), std::string::npos) << full_error << " " << what;
  ASSERT_EQ(streamed_error, full_error) << what;
  ASSERT_EQ(streamed.size(), full.size()) << what;
  if (full.empty()) return;  // both failed
  EXPECT_EQ(std::memcmp(streamed.data(), full.data(), full.size() * sizeof(float)), 0) << what;
}

void expect_same(const std::vector<uint8_t>& file, const std::string& name, const ImageProcessorConfig& cfg,
                 int draft_size = 0) {
  const ImageProcessor proc(cfg);
  DecodeOptions opt;
  opt.draft_size = draft_size;
  expect_same_output([&] { return proc.preprocess(decode_memory_stored(file.data(), file.size(), name, opt)); },
                     [&] { return proc.preprocess_encoded(file.data(), file.size(), name, opt); },
                     "resize " + std::to_string(cfg.shortest_edge) + " crop " + std::to_string(cfg.crop_width) +
                         " filter " + std::to_string(cfg.resample) + " draft " + std::to_string(draft_size));
}

// Each SIMD level the resize has on this CPU (2 AVX-512, 1 AVX2, 0 scalar); the passes pick what the CPU has.
template <typename Fn>
void at_every_simd_level(const Fn& fn) {
  for (const int level : {2, 1, 0}) {
    SCOPED_TRACE("simd level " + std::to_string(level));
    detail::limit_resample_simd(level);
    fn();
  }
  detail::limit_resample_simd(2);
}

TEST(JpegStream, FixtureJpegsGiveTheFullSizePathsBytes) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(kImages)) {
    const std::string p = e.path().string();
    if (e.path().extension() != ".jpg") continue;
    SCOPED_TRACE(p);
    const std::vector<uint8_t> file = read_bytes(p);
    ++n;
    at_every_simd_level([&] {
      for (const auto& cfg : configs()) expect_same(file, p, cfg);
      expect_same(file, p, config(224, 224, 3), 448);  // the opt-in draft decode streams too
      expect_same(file, p, config(32, 32, 3), 64);
    });
  }
  EXPECT_GE(n, 7);  // baseline, progressive, gray, CMYK, orientation 6, truncated, not a JPEG
}

TEST(JpegStream, GeneratedJpegsGiveTheFullSizePathsBytes) {
  std::vector<JpegSpec> specs;
  for (const auto& [w, h] : std::vector<std::pair<int, int>>{{333, 251}, {251, 333}, {97, 401}, {1, 1}, {7, 5}})
    for (const auto& [hs, vs] : std::vector<std::pair<int, int>>{{2, 2}, {2, 1}, {1, 1}})
      specs.push_back({w, h, 3, hs, vs, false, 0});
  for (int o = 1; o <= 8; ++o) {
    specs.push_back({203, 150, 3, 2, 2, false, o});
    specs.push_back({57, 311, 3, 1, 1, false, o});  // a tall one: the crop takes rows, or (5-8) columns
    specs.push_back({1, 9, 3, 2, 2, false, o});
  }
  for (int o : {0, 3, 6}) {
    specs.push_back({161, 122, 1, 1, 1, false, o});  // grayscale
    specs.push_back({161, 122, 4, 1, 1, false, o});  // CMYK (stored inverted, as Adobe's)
    specs.push_back({161, 122, 3, 2, 2, true, o});   // progressive
  }
  uint32_t seed = 1;
  for (const JpegSpec& s : specs) {
    SCOPED_TRACE(std::to_string(s.width) + "x" + std::to_string(s.height) + " comps " + std::to_string(s.components) +
                 " samp " + std::to_string(s.h_samp) + "x" + std::to_string(s.v_samp) + " progressive " +
                 std::to_string(s.progressive) + " orientation " + std::to_string(s.orientation));
    const std::vector<uint8_t> file = make_jpeg(s, seed++);
    at_every_simd_level([&] {
      for (const auto& cfg : configs()) expect_same(file, "gen.jpg", cfg);
      expect_same(file, "gen.jpg", config(40, 40, 3), 80);
    });
  }
}

TEST(JpegStream, DamagedFilesFailLikeTheFullDecode) {
  // Cut at several points, including past the rows the crop needs (Pillow's load still fails there) and inside
  // the header; and a flipped byte in the entropy-coded data (decodes or fails, the same way on both paths).
  const std::vector<uint8_t> good = make_jpeg({400, 300, 3, 2, 2, false, 1}, 7);
  const std::vector<uint8_t> prog = make_jpeg({400, 300, 3, 2, 2, true, 1}, 8);
  for (const auto* file : {&good, &prog}) {
    for (const double cut : {0.02, 0.3, 0.6, 0.9, 0.995}) {
      SCOPED_TRACE(cut);
      const std::vector<uint8_t> part(file->begin(), file->begin() + static_cast<ptrdiff_t>(file->size() * cut));
      expect_same(part, "cut.jpg", config(224, 224, 3));
      expect_same(part, "cut.jpg", config(100, 60, 3));  // crop rows end well before the cut at 0.9
    }
    std::mt19937 rng(3);
    for (int i = 0; i < 20; ++i) {
      std::vector<uint8_t> bad = *file;
      bad[file->size() / 4 + rng() % (file->size() / 2)] ^= static_cast<uint8_t>(1 + rng() % 255);
      expect_same(bad, "flip.jpg", config(224, 224, 3));
    }
  }
  const ImageProcessor proc(config(224, 224, 3));
  const std::vector<uint8_t> cut(good.begin(), good.begin() + static_cast<ptrdiff_t>(good.size() / 2));
  try {
    (void)proc.preprocess_encoded(cut.data(), cut.size(), "cut.jpg", {});
    FAIL() << "a truncated JPEG decoded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.jpg"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)proc.preprocess_encoded(good.data(), 0, "empty.jpg", {}), Error);
  EXPECT_THROW((void)proc.preprocess_file(kImages + "/no_such_file.jpg", {}), Error);
}

TEST(JpegStream, NoFullSizeBuffer) {
  // The point of the streamed path: a 1600 x 1200 photo (5.8 MB of RGB) is resized without any allocation near its
  // size, in every orientation (the largest block is the first pass's output, e.g. 1200 rows of the 224-pixel
  // window: 0.8 MB); a PNG of the same size still takes the full-size path.
  const ImageProcessor proc(config(224, 224, 3));
  const size_t full = size_t{1600} * 1200 * 3;
  for (const int o : {1, 3, 6, 8}) {
    SCOPED_TRACE(o);
    const std::vector<uint8_t> file = make_jpeg({1600, 1200, 3, 2, 2, false, o}, 11);
    zeroshot::testing::AllocationWatch watch;
    const std::vector<float> v = proc.preprocess_encoded(file.data(), file.size(), "big.jpg", {});
    watch.stop();
    EXPECT_LT(watch.largest(), full / 6);
    const std::vector<float> ref = proc.preprocess(decode_memory_stored(file.data(), file.size(), "big.jpg"));
    EXPECT_EQ(std::memcmp(v.data(), ref.data(), v.size() * sizeof(float)), 0);
  }
  const std::vector<uint8_t> png = read_bytes(kImages + "/astronaut.png");
  zeroshot::testing::AllocationWatch watch;
  (void)proc.preprocess_encoded(png.data(), png.size(), "astronaut.png", {});
  watch.stop();
  EXPECT_GE(watch.largest(), size_t{512} * 512 * 3);  // decoded whole: the streamed path is JPEG only
}

OpenClipTransformConfig oc_config(int height, int width, const std::string& mode, const std::string& interpolation,
                                  int fill = 0) {
  OpenClipTransformConfig c;
  c.height = height;
  c.width = width;
  c.resize_mode = mode;
  c.interpolation = interpolation;
  c.fill_color = fill;
  return c;
}

// OpenCLIP's settings: 224 shortest bicubic (most checkpoints), bilinear, non-square shortest (ResizeKeepRatio, with
// and without open_clip 2.24's forced bicubic), longest with a fill (padding), squash, upscaling.
std::vector<OpenClipTransformConfig> oc_configs() {
  std::vector<OpenClipTransformConfig> v = {
      oc_config(224, 224, "shortest", "bicubic"), oc_config(64, 64, "shortest", "bilinear"),
      oc_config(40, 56, "shortest", "bilinear"),  oc_config(90, 70, "longest", "bicubic", 37),
      oc_config(61, 45, "squash", "bilinear"),    oc_config(300, 300, "shortest", "bicubic")};
  v[2].nonsquare_shortest_always_bicubic = false;
  v.push_back(oc_config(40, 56, "shortest", "bilinear"));  // forced to bicubic, as open_clip 2.24
  return v;
}

void expect_same_open_clip(const std::vector<uint8_t>& file, const std::string& name,
                           const OpenClipTransformConfig& cfg, int draft_size = 0) {
  DecodeOptions opt;
  opt.draft_size = draft_size;
  expect_same_output(
      [&] { return open_clip_transform(decode_native_memory(file.data(), file.size(), name, opt), cfg); },
      [&] { return open_clip_transform_encoded(file.data(), file.size(), name, opt, cfg); },
      cfg.resize_mode + " " + std::to_string(cfg.height) + "x" + std::to_string(cfg.width) + " " + cfg.interpolation +
          " draft " + std::to_string(draft_size));
}

TEST(JpegStream, OpenClipFixtureJpegsGiveTheFullSizePathsBytes) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(kImages)) {
    const std::string p = e.path().string();
    if (e.path().extension() != ".jpg") continue;
    SCOPED_TRACE(p);
    const std::vector<uint8_t> file = read_bytes(p);
    ++n;
    at_every_simd_level([&] {
      for (const auto& cfg : oc_configs()) expect_same_open_clip(file, p, cfg);
      expect_same_open_clip(file, p, oc_config(224, 224, "shortest", "bicubic"), 448);
    });
  }
  EXPECT_GE(n, 7);
}

TEST(JpegStream, OpenClipGeneratedJpegsGiveTheFullSizePathsBytes) {
  std::vector<JpegSpec> specs;
  for (const auto& [w, h] : std::vector<std::pair<int, int>>{{333, 251}, {97, 401}, {1, 1}, {7, 5}})
    specs.push_back({w, h, 3, 2, 2, false, 0});
  for (int o = 1; o <= 8; ++o) {
    specs.push_back({203, 150, 3, 2, 2, false, o});
    specs.push_back({57, 311, 3, 1, 1, false, o});
    specs.push_back({1, 9, 3, 2, 2, false, o});
  }
  for (int o : {0, 3, 6}) {
    specs.push_back({161, 122, 1, 1, 1, false, o});  // grayscale: resized as L
    specs.push_back({161, 122, 4, 1, 1, false, o});  // CMYK: resized as CMYK, converted after the crop
    specs.push_back({161, 122, 3, 2, 2, true, o});   // progressive
  }
  uint32_t seed = 100;
  for (const JpegSpec& s : specs) {
    SCOPED_TRACE(std::to_string(s.width) + "x" + std::to_string(s.height) + " comps " + std::to_string(s.components) +
                 " progressive " + std::to_string(s.progressive) + " orientation " + std::to_string(s.orientation));
    const std::vector<uint8_t> file = make_jpeg(s, seed++);
    at_every_simd_level([&] {
      for (const auto& cfg : oc_configs()) expect_same_open_clip(file, "gen.jpg", cfg);
      expect_same_open_clip(file, "gen.jpg", oc_config(40, 40, "shortest", "bicubic"), 80);
    });
  }
}

TEST(JpegStream, OpenClipDamagedFilesFailLikeTheFullDecode) {
  const std::vector<uint8_t> good = make_jpeg({400, 300, 3, 2, 2, false, 6}, 17);
  const std::vector<uint8_t> prog = make_jpeg({400, 300, 3, 2, 2, true, 1}, 18);
  for (const auto* file : {&good, &prog}) {
    for (const double cut : {0.02, 0.3, 0.6, 0.9, 0.995}) {
      SCOPED_TRACE(cut);
      const std::vector<uint8_t> part(file->begin(), file->begin() + static_cast<ptrdiff_t>(file->size() * cut));
      expect_same_open_clip(part, "cut.jpg", oc_config(224, 224, "shortest", "bicubic"));
      expect_same_open_clip(part, "cut.jpg", oc_config(60, 60, "shortest", "bicubic"));
    }
    std::mt19937 rng(5);
    for (int i = 0; i < 20; ++i) {
      std::vector<uint8_t> bad = *file;
      bad[file->size() / 4 + rng() % (file->size() / 2)] ^= static_cast<uint8_t>(1 + rng() % 255);
      expect_same_open_clip(bad, "flip.jpg", oc_config(224, 224, "shortest", "bicubic"));
    }
  }
  OpenClipTransformConfig bad_cfg = oc_config(224, 224, "shortest", "bicubic");
  bad_cfg.interpolation = "random";  // refused after the decode, on both paths
  expect_same_open_clip(good, "good.jpg", bad_cfg);
  EXPECT_THROW((void)open_clip_transform_encoded(good.data(), 0, "empty.jpg", {}, oc_configs()[0]), Error);
  EXPECT_THROW((void)open_clip_transform_file(kImages + "/no_such_file.jpg", {}, oc_configs()[0]), Error);
}

TEST(JpegStream, OpenClipNoFullSizeBuffer) {
  const size_t full = size_t{1600} * 1200 * 3;
  const OpenClipTransformConfig cfg = oc_config(224, 224, "shortest", "bicubic");
  for (const int o : {1, 3, 6, 8}) {
    SCOPED_TRACE(o);
    const std::vector<uint8_t> file = make_jpeg({1600, 1200, 3, 2, 2, false, o}, 21);
    zeroshot::testing::AllocationWatch watch;
    const std::vector<float> v = open_clip_transform_encoded(file.data(), file.size(), "big.jpg", {}, cfg);
    watch.stop();
    EXPECT_LT(watch.largest(), full / 6);
    const std::vector<float> ref = open_clip_transform(decode_native_memory(file.data(), file.size(), "big.jpg"), cfg);
    EXPECT_EQ(std::memcmp(v.data(), ref.data(), v.size() * sizeof(float)), 0);
  }
}

NaflexConfig nf_config(int patch, int max_patches, int resample) {
  NaflexConfig c;
  c.patch_size = patch;
  c.max_num_patches = max_patches;
  c.resample = resample;
  return c;
}

// Siglip2's default (16, 256, bilinear), a small budget that enlarges tiny images, and other filters.
std::vector<NaflexConfig> nf_configs() {
  return {nf_config(16, 256, 2), nf_config(14, 16, 3), nf_config(8, 1024, 1), nf_config(4, 9, 4)};
}

void expect_same_naflex(const std::vector<uint8_t>& file, const std::string& name, const NaflexConfig& cfg,
                        int draft_size = 0) {
  DecodeOptions opt;
  opt.draft_size = draft_size;
  expect_same_output([&] { return naflex_preprocess(decode_memory(file.data(), file.size(), name, opt), cfg); },
                     [&] { return naflex_preprocess_encoded(file.data(), file.size(), name, opt, cfg); },
                     "patch " + std::to_string(cfg.patch_size) + " max " + std::to_string(cfg.max_num_patches) +
                         " filter " + std::to_string(cfg.resample) + " draft " + std::to_string(draft_size));
}

TEST(JpegStream, NaflexJpegsGiveTheFullSizePathsBytes) {
  for (const auto& e : fs::directory_iterator(kImages)) {
    const std::string p = e.path().string();
    if (e.path().extension() != ".jpg") continue;
    SCOPED_TRACE(p);
    const std::vector<uint8_t> file = read_bytes(p);
    at_every_simd_level([&] {
      for (const auto& cfg : nf_configs()) expect_same_naflex(file, p, cfg);
      expect_same_naflex(file, p, nf_config(16, 256, 2), 256);
    });
  }
  std::vector<JpegSpec> specs;
  for (int o = 1; o <= 8; ++o) {
    specs.push_back({203, 150, 3, 2, 2, false, o});
    specs.push_back({57, 311, 3, 1, 1, false, o});
    specs.push_back({1, 9, 3, 2, 2, false, o});
  }
  for (int o : {0, 6}) {
    specs.push_back({161, 122, 1, 1, 1, false, o});
    specs.push_back({161, 122, 4, 1, 1, false, o});
    specs.push_back({161, 122, 3, 2, 2, true, o});
  }
  uint32_t seed = 200;
  for (const JpegSpec& s : specs) {
    SCOPED_TRACE(std::to_string(s.width) + "x" + std::to_string(s.height) + " comps " + std::to_string(s.components) +
                 " orientation " + std::to_string(s.orientation));
    const std::vector<uint8_t> file = make_jpeg(s, seed++);
    at_every_simd_level([&] {
      for (const auto& cfg : nf_configs()) expect_same_naflex(file, "gen.jpg", cfg);
    });
  }
  const std::vector<uint8_t> good = make_jpeg({400, 300, 3, 2, 2, false, 8}, 27);
  for (const double cut : {0.02, 0.3, 0.9, 0.995}) {
    const std::vector<uint8_t> part(good.begin(), good.begin() + static_cast<ptrdiff_t>(good.size() * cut));
    expect_same_naflex(part, "cut.jpg", nf_config(16, 256, 2));
  }
}

TEST(JpegStream, NaflexNoFullSizeBuffer) {
  const size_t full = size_t{1600} * 1200 * 3;
  for (const int o : {1, 6}) {
    SCOPED_TRACE(o);
    const std::vector<uint8_t> file = make_jpeg({1600, 1200, 3, 2, 2, false, o}, 31);
    zeroshot::testing::AllocationWatch watch;
    const std::vector<float> v =
        naflex_preprocess_encoded(file.data(), file.size(), "big.jpg", {}, nf_config(16, 256, 2));
    watch.stop();
    // The first pass keeps the resized width (288 here) of every stored row: 288 x 1200 x 3 bytes, ~1/5.5 of it.
    EXPECT_LT(watch.largest(), full / 5);
    const std::vector<float> ref =
        naflex_preprocess(decode_memory(file.data(), file.size(), "big.jpg"), nf_config(16, 256, 2));
    EXPECT_EQ(std::memcmp(v.data(), ref.data(), v.size() * sizeof(float)), 0);
  }
}

}  // namespace
