// The packed weights file: a model over its mapped panels computes bit for bit what a model packing at load
// computes; truncated, damaged and stale files are refused with a one-line error naming the file (the backends
// then rebuild them: tests/packed_weights_test.cpp); a failed write leaves no file behind.
#include "models/packed_weights.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "models/clip.h"
#include "models/int8_weights.h"
#include "nn/linear.h"
#include "support/temp_dir.h"
#include "zeroshot/error.h"

namespace zeroshot::models {
namespace {

namespace fs = std::filesystem;

const std::string kModel = std::string(ZEROSHOT_FIXTURES) + "/clip/clip-tiny-quickgelu";

struct Outputs {
  std::vector<float> images, texts;
};

struct Inputs {
  std::vector<float> pixels;
  int n = 0;
  std::vector<std::vector<int32_t>> ids;
};

Inputs fixture_inputs() {
  Inputs in;
  const io::Json j = io::load_json(kModel + "/expected.json");
  for (const auto& ids : j.at("input_ids")) in.ids.push_back(ids.get<std::vector<int32_t>>());
  io::SafeTensorsFile st(kModel + "/expected.safetensors");
  for (const auto& s : j.at("images")) {
    const auto v = io::to_f32(st.tensors().at("pixel_values/" + s.get<std::string>()));
    in.pixels.insert(in.pixels.end(), v.begin(), v.end());
    ++in.n;
  }
  return in;
}

Outputs run(const ClipModel& m, const Inputs& in) {
  Outputs o;
  const size_t dim = static_cast<size_t>(m.config().projection_dim);
  o.images.resize(dim * static_cast<size_t>(in.n));
  m.encode_images(in.pixels.data(), in.n, o.images.data());
  o.texts.resize(dim * in.ids.size());
  m.encode_texts(in.ids, o.texts.data());
  return o;
}

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class PackedWeights : public ::testing::TestWithParam<nn::Precision> {
 protected:
  void SetUp() override {
    if (!*nn::packed_layout(GetParam())) GTEST_SKIP() << "no AVX-512 panels at this precision on this CPU";
    cfg_ = ClipConfig::load(kModel + "/config.json");
    store_ = std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(kModel));
  }
  ClipOptions options() const {
    ClipOptions o;
    o.threads = 2;
    o.precision = GetParam();
    return o;
  }
  // Packs a model, capturing its layers, and writes them to `path` for `identity`; returns the packing model.
  std::unique_ptr<ClipModel> write(const std::string& path, const std::string& identity) {
    std::vector<PackedRecord> records;
    ClipOptions o = options();
    o.packed_capture = &records;
    auto m = std::make_unique<ClipModel>(cfg_, store_, o);
    write_packed_weights(path, identity, GetParam(), records);
    return m;
  }
  ClipConfig cfg_;
  std::shared_ptr<const io::WeightStore> store_;
  testing::TempDir dir_{"packed"};
};

TEST_P(PackedWeights, MappedPanelsGiveBitIdenticalOutputs) {
  const Inputs in = fixture_inputs();
  const Outputs packed_at_load = run(ClipModel(cfg_, store_, options()), in);
  const std::string path = dir_ / "p.bin";
  const Outputs capturing = run(*write(path, "id"), in);
  EXPECT_TRUE(same_bytes(capturing.images, packed_at_load.images));
  EXPECT_TRUE(same_bytes(capturing.texts, packed_at_load.texts));

  auto file = std::make_shared<const PackedWeightsFile>(path, "id", GetParam());
  // The patch embedding and 4 GEMMs per layer of both towers; at F32 also the two projections (f32 at every
  // precision, so a BF16 file leaves them out).
  const ClipConfig& c = cfg_;
  const size_t blocks = 1 + 4 * static_cast<size_t>(c.vision.num_layers + c.text.num_layers);
  EXPECT_EQ(file->layers(), GetParam() == nn::Precision::F32 ? blocks + 2 : blocks);
  ClipOptions o = options();
  o.packed = file;
  const Outputs mapped = run(ClipModel(cfg_, store_, o), in);
  EXPECT_TRUE(same_bytes(mapped.images, packed_at_load.images));
  EXPECT_TRUE(same_bytes(mapped.texts, packed_at_load.texts));
  EXPECT_EQ(fs::directory_iterator(dir_.path)->path().filename(), "p.bin");  // no temporary file left
}

TEST_P(PackedWeights, TruncatedOrDamagedFileIsRefused) {
  const std::string path = dir_ / "p.bin";
  write(path, "id");
  const auto size = fs::file_size(path);
  auto error_of = [&] {
    try {
      PackedWeightsFile f(path, "id", GetParam());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  fs::resize_file(path, size - 4096);
  EXPECT_EQ(error_of(), path + ": damaged packed weights file (truncated: " + std::to_string(size - 4096) + " of " +
                            std::to_string(size) + " bytes)");
  fs::resize_file(path, 20);
  EXPECT_EQ(error_of(), path + ": damaged packed weights file (not a packed weights file)");
  fs::resize_file(path, 0);
  EXPECT_EQ(error_of(), path + ": damaged packed weights file (not a packed weights file)");

  write(path, "id");
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);  // a byte of the header's strings: only the checksum tells
    f.put('#');
  }
  EXPECT_EQ(error_of(), path + ": damaged packed weights file (header checksum mismatch)");
}

TEST_P(PackedWeights, StaleFileIsRefused) {
  const std::string path = dir_ / "p.bin";
  write(path, "id");
  try {
    PackedWeightsFile f(path, "other weights", GetParam());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path + ": stale packed weights file (made from other weights)");
  }
  const nn::Precision other = GetParam() == nn::Precision::F32 ? nn::Precision::BF16 : nn::Precision::F32;
  if (*nn::packed_layout(other)) {
    EXPECT_THROW(PackedWeightsFile(path, "id", other), Error);
  }
}

TEST_P(PackedWeights, FailedWriteLeavesNoFile) {
  EXPECT_THROW(write(dir_ / "missing-folder/p.bin", "id"), Error);
  // The data is written, then the rename fails (a non-empty folder is in the way): the temporary file goes too.
  dir_.file("p.bin/x", "");
  EXPECT_THROW(write(dir_ / "p.bin", "id"), Error);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir_.path)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"p.bin"});
  EXPECT_TRUE(fs::is_directory(dir_ / "p.bin"));
}

// Int8: the packed file made while the layers come from an int8 weights file (`zeroshot quantize`) holds the same
// panels as one made quantizing at load, and a model over it, with or without that file, computes the same bytes.
TEST_P(PackedWeights, Int8FileAndPackedFileGiveBitIdenticalOutputs) {
  if (GetParam() != nn::Precision::Int8) GTEST_SKIP() << "int8 only";
  const Inputs in = fixture_inputs();
  const Outputs packed_at_load = run(ClipModel(cfg_, store_, options()), in);
  const std::string int8_path = dir_ / "int8.safetensors";
  save_int8_weights(cfg_, *store_, int8_path);
  ClipOptions with_file = options();
  with_file.int8_weights = std::make_shared<const io::SafeTensorsFile>(int8_path);
  {
    const ClipModel m(cfg_, store_, with_file);
    ASSERT_TRUE(m.int8_from_file());
    const Outputs o = run(m, in);
    EXPECT_TRUE(same_bytes(o.images, packed_at_load.images));
    EXPECT_TRUE(same_bytes(o.texts, packed_at_load.texts));
  }
  const std::string quantized_at_load = dir_ / "a.bin", from_file = dir_ / "b.bin";
  write(quantized_at_load, "id");
  {
    std::vector<PackedRecord> records;
    ClipOptions o = with_file;
    o.packed_capture = &records;
    const ClipModel m(cfg_, store_, o);
    write_packed_weights(from_file, "id", GetParam(), records);
  }
  std::ifstream a(quantized_at_load, std::ios::binary), b(from_file, std::ios::binary);
  EXPECT_TRUE(std::equal(std::istreambuf_iterator<char>(a), {}, std::istreambuf_iterator<char>(b), {}));
  for (const ClipOptions& base : {options(), with_file}) {
    ClipOptions o = base;
    o.packed = std::make_shared<const PackedWeightsFile>(from_file, "id", GetParam());
    const Outputs mapped = run(ClipModel(cfg_, store_, o), in);
    EXPECT_TRUE(same_bytes(mapped.images, packed_at_load.images));
    EXPECT_TRUE(same_bytes(mapped.texts, packed_at_load.texts));
  }
}

INSTANTIATE_TEST_SUITE_P(Precisions, PackedWeights,
                         ::testing::Values(nn::Precision::F32, nn::Precision::BF16, nn::Precision::Int8),
                         [](const auto& info) { return std::string(nn::precision_name(info.param)); });

}  // namespace
}  // namespace zeroshot::models
