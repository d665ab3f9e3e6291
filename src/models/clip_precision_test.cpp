// bf16 / int8 CLIP against f32 on the fixture models (their 21 images and 26 texts), the portable kernels against
// the AVX-512 ones, and the int8 weights file (written, matched by fingerprint, refused when it does not match).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

#include "io/json.h"
#include "io/safetensors.h"
#include "models/clip.h"
#include "nn/linear.h"
#include "support/compare.h"
#include "support/reference.h"

namespace zeroshot::models {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& model) { return std::string(ZEROSHOT_FIXTURES) + "/clip/" + model; }

struct Inputs {
  std::vector<float> pixels;
  int n_images = 0;
  std::vector<std::vector<int32_t>> ids;
  std::vector<float> image_embeds, text_embeds;  // the reference's
};

Inputs load_inputs(const std::string& dir) {
  const zeroshot::testing::ExpectedOutputs ref(dir);
  Inputs in;
  in.pixels = ref.all_pixel_values();
  in.n_images = static_cast<int>(ref.strings("images").size());
  in.ids = ref.input_ids();
  in.image_embeds = ref.get("image_embeds");
  in.text_embeds = ref.get("text_embeds");
  return in;
}

struct Embeds {
  std::vector<float> image, text;
};

Embeds run(const ClipModel& m, const Inputs& in) {
  Embeds e;
  const size_t d = static_cast<size_t>(m.config().projection_dim);
  e.image.resize(static_cast<size_t>(in.n_images) * d);
  e.text.resize(in.ids.size() * d);
  m.encode_images(in.pixels.data(), in.n_images, e.image.data());
  m.encode_texts(in.ids, e.text.data());
  return e;
}

using zeroshot::testing::min_cosine;
using zeroshot::testing::rel_err;

std::unique_ptr<ClipModel> load(const std::string& dir, Precision p,
                                std::shared_ptr<const io::SafeTensorsFile> int8 = nullptr) {
  ClipOptions o;
  o.threads = 2;
  o.precision = p;
  o.int8_weights = std::move(int8);
  return std::make_unique<ClipModel>(ClipConfig::load(dir + "/config.json"),
                                     std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(dir)), o);
}

class Precisions : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fixture(GetParam());
    in_ = load_inputs(dir_);
    f32_ = load(dir_, Precision::F32);
    ref_ = run(*f32_, in_);
    dim_ = static_cast<size_t>(f32_->config().projection_dim);
  }
  std::string dir_;
  Inputs in_;
  std::unique_ptr<ClipModel> f32_;
  Embeds ref_;
  size_t dim_ = 0;
};

TEST_P(Precisions, Bf16AndInt8StayWithinCosine0999OfF32) {
  for (Precision p : {Precision::BF16, Precision::Int8}) {
    const auto m = load(dir_, p);
    EXPECT_EQ(m->precision(), p);
    const Embeds e = run(*m, in_);
    const double ci = min_cosine(e.image, ref_.image, dim_), ct = min_cosine(e.text, ref_.text, dim_);
    EXPECT_GE(ci, 0.999) << nn::precision_name(p) << " images";
    EXPECT_GE(ct, 0.999) << nn::precision_name(p) << " texts";
    // The precision is really in effect (f32 itself is far closer to the reference than this).
    EXPECT_GT(rel_err(e.image, ref_.image), 1e-5) << nn::precision_name(p);
    std::printf("%s %s: min cosine to f32 images %.6f texts %.6f\n", GetParam().c_str(), nn::precision_name(p), ci, ct);
  }
}

TEST_P(Precisions, PortableKernelsAgreeWithAvx512) {
  // F32 on the portable path still matches the reference at the fixture tolerance; bf16 / int8 compute the same
  // function on both paths: only the f32 summation order differs, which int8 can turn into a one-step difference
  // of a quantized activation in a later layer (hence its looser bound).
  nn::force_generic_kernels(true);
  std::unique_ptr<ClipModel> g[3];
  try {
    for (int i = 0; i < 3; ++i) g[i] = load(dir_, static_cast<Precision>(i));
  } catch (...) {
    nn::force_generic_kernels(false);
    throw;
  }
  Embeds ge[3];
  for (int i = 0; i < 3; ++i) ge[i] = run(*g[i], in_);
  nn::force_generic_kernels(false);
  EXPECT_LE(rel_err(ge[0].image, in_.image_embeds), 1e-4);
  EXPECT_LE(rel_err(ge[0].text, in_.text_embeds), 1e-4);
  for (int i = 1; i < 3; ++i) {
    const Embeds a = run(*load(dir_, static_cast<Precision>(i)), in_);
    const double bound = i == 1 ? 0.99999 : 0.9999;
    EXPECT_GE(min_cosine(a.image, ge[i].image, dim_), bound) << nn::precision_name(static_cast<Precision>(i));
    EXPECT_GE(min_cosine(a.text, ge[i].text, dim_), bound) << nn::precision_name(static_cast<Precision>(i));
  }
}

TEST_P(Precisions, Int8WeightsFileIsUsedWhenItMatches) {
  const fs::path tmp = fs::temp_directory_path() / ("zs_int8_" + GetParam() + "_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  const std::string file = (tmp / kInt8WeightsFile).string();
  const ClipConfig cfg = ClipConfig::load(dir_ + "/config.json");
  save_int8_weights(cfg, io::WeightStore::open_dir(dir_), file);
  auto st = std::make_shared<const io::SafeTensorsFile>(file);
  EXPECT_EQ(st->metadata().at("format"), "zeroshot-int8");
  EXPECT_EQ(st->metadata().at("format_version"), "1");
  EXPECT_EQ(st->metadata().at("source_fingerprint"), weights_fingerprint(io::WeightStore::open_dir(dir_)));
  const auto& q0 = st->tensors().at("vision_model.encoder.layers.0.mlp.fc1.weight");
  EXPECT_EQ(q0.dtype, io::DType::I8);
  EXPECT_EQ(q0.shape, (std::vector<int64_t>{cfg.vision.intermediate_size, cfg.vision.hidden_size}));

  const auto from_file = load(dir_, Precision::Int8, st);
  EXPECT_TRUE(from_file->int8_from_file());
  const auto at_load = load(dir_, Precision::Int8);
  EXPECT_FALSE(at_load->int8_from_file());
  const Embeds a = run(*from_file, in_), b = run(*at_load, in_);
  EXPECT_EQ(a.image, b.image);
  EXPECT_EQ(a.text, b.text);

  // Made from the other fixture's weights: not used (and no error).
  const std::string other = GetParam() == "clip-tiny-quickgelu" ? "clip-tiny-gelu-f16" : "clip-tiny-quickgelu";
  const std::string other_file = (tmp / "other.safetensors").string();
  save_int8_weights(ClipConfig::load(fixture(other) + "/config.json"), io::WeightStore::open_dir(fixture(other)),
                    other_file);
  EXPECT_FALSE(load(dir_, Precision::Int8, std::make_shared<const io::SafeTensorsFile>(other_file))->int8_from_file());
  fs::remove_all(tmp);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Precisions, ::testing::Values("clip-tiny-quickgelu", "clip-tiny-gelu-f16"),
                         [](const auto& info) {
                           return info.param == "clip-tiny-quickgelu" ? std::string("QuickGeluF32")
                                                                      : std::string("GeluF16");
                         });

TEST(WeightsFingerprint, ChangesWithAnyWeight) {
  const std::string dir = fixture("clip-tiny-quickgelu");
  const fs::path tmp = fs::temp_directory_path() / ("zs_fp_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  fs::copy_file(dir + "/model.safetensors", tmp / "model.safetensors");
  const std::string a = weights_fingerprint(io::WeightStore::open_dir(dir));
  EXPECT_EQ(a, weights_fingerprint(io::WeightStore::open_dir(tmp.string())));
  EXPECT_EQ(a.rfind("fnv1a64:", 0), 0u);
  // Flip one bit in the first byte of one weight (found through the header), in the copy.
  std::string bytes;
  {
    std::ifstream in(tmp / "model.safetensors", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
  const io::Json h = io::Json::parse(bytes.substr(8, header));
  const size_t begin =
      8 + header + h.at("text_model.encoder.layers.1.mlp.fc2.weight").at("data_offsets")[0].get<size_t>();
  bytes[begin] = static_cast<char>(bytes[begin] ^ 0x40);
  {
    std::ofstream out(tmp / "model.safetensors", std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  EXPECT_NE(a, weights_fingerprint(io::WeightStore::open_dir(tmp.string())));
  fs::remove_all(tmp);
}

}  // namespace
}  // namespace zeroshot::models
