#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "zeroshot/error.h"

namespace fs = std::filesystem;
using namespace zeroshot::io;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("zs_st_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& n) const { return (path / n).string(); }
};

// A raw file: 8-byte length, header text, payload.
void write_raw(const std::string& path, const std::string& header, const std::string& payload,
               int64_t len_override = -1) {
  std::ofstream f(path, std::ios::binary);
  uint64_t n = len_override >= 0 ? static_cast<uint64_t>(len_override) : header.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>(n >> (8 * i)));
  f << header << payload;
}

std::string error_of(const std::string& path) {
  try {
    SafeTensorsFile f(path);
  } catch (const zeroshot::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SafeTensors, RoundTripAllFloatTypes) {
  TempDir d;
  const float f32[] = {1.5f, -2.f, 0.f, 3.25f, 1e-3f, 7.f};
  const uint16_t f16[] = {0x3C00, 0xC000, 0x0001, 0x7BFF, 0x7C00, 0x8000};  // 1, -2, 2^-24, 65504, inf, -0
  const uint16_t bf16[] = {0x3F80, 0xC040};                                 // 1, -3
  write_safetensors(d.file("m.safetensors"),
                    {{"a", DType::F32, {2, 3}, f32}, {"h", DType::F16, {6}, f16}, {"b", DType::BF16, {2}, bf16}},
                    {{"format", "pt"}});
  SafeTensorsFile f(d.file("m.safetensors"));
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const auto& a = f.tensors().at("a");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(to_f32(a), std::vector<float>(f32, f32 + 6));
  auto h = to_f32(f.tensors().at("h"));
  EXPECT_EQ(h[0], 1.f);
  EXPECT_EQ(h[1], -2.f);
  EXPECT_EQ(h[2], std::ldexp(1.f, -24));
  EXPECT_EQ(h[3], 65504.f);
  EXPECT_TRUE(std::isinf(h[4]));
  EXPECT_TRUE(std::signbit(h[5]) && h[5] == 0.f);
  auto b = to_f32(f.tensors().at("b"));
  EXPECT_EQ(b[0], 1.f);
  EXPECT_EQ(b[1], -3.f);
  // Data starts 8-aligned after the padded header.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data) % 8, 0u);  // the mapping is page-aligned
}

TEST(SafeTensors, HalfConversionCoversEveryFiniteValueMonotonically) {
  // Every positive finite half, in bit order, converts to a strictly increasing float, and back by rounding.
  float prev = -1.f;
  for (uint32_t bits = 0; bits < 0x7C00; ++bits) {
    float v = f16_to_f32(static_cast<uint16_t>(bits));
    ASSERT_GT(v, prev) << bits;
    prev = v;
  }
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
}

TEST(SafeTensors, RefusesMalformedFiles) {
  TempDir d;
  const std::string ok_header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string eight(8, '\0');

  std::ofstream(d.file("empty"), std::ios::binary).close();
  EXPECT_NE(error_of(d.file("empty")).find("0 bytes"), std::string::npos);
  std::ofstream(d.file("tiny"), std::ios::binary) << "abc";
  EXPECT_NE(error_of(d.file("tiny")).find("shorter than the 8-byte header"), std::string::npos);

  write_raw(d.file("huge_len"), ok_header, eight, int64_t(1) << 40);
  EXPECT_NE(error_of(d.file("huge_len")).find("absurd"), std::string::npos);

  write_raw(d.file("len_past_end"), ok_header, eight, static_cast<int64_t>(ok_header.size() + 100));
  EXPECT_NE(error_of(d.file("len_past_end")).find("runs past the end"), std::string::npos);

  write_raw(d.file("not_json"), "{not json at all", eight);
  EXPECT_NE(error_of(d.file("not_json")).find("not valid JSON"), std::string::npos);

  write_raw(d.file("array"), "[1,2,3]", eight);
  EXPECT_NE(error_of(d.file("array")).find("not a JSON object"), std::string::npos);

  write_raw(d.file("past_end"), R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight);
  EXPECT_NE(error_of(d.file("past_end")).find("past the end of the data"), std::string::npos);

  write_raw(d.file("truncated"), ok_header, std::string(5, '\0'));
  EXPECT_NE(error_of(d.file("truncated")).find("truncated"), std::string::npos);

  write_raw(d.file("size_mismatch"), R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight);
  EXPECT_NE(error_of(d.file("size_mismatch")).find("needs 12 bytes"), std::string::npos);

  write_raw(
      d.file("overlap"),
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
      eight);
  EXPECT_NE(error_of(d.file("overlap")).find("overlap"), std::string::npos);

  write_raw(d.file("backwards"), R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", eight);
  EXPECT_NE(error_of(d.file("backwards")).find("begin 8 > end 0"), std::string::npos);

  write_raw(d.file("dtype"), R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", eight);
  EXPECT_NE(error_of(d.file("dtype")).find("unknown dtype Q4"), std::string::npos);

  write_raw(d.file("negdim"), R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight);
  EXPECT_NE(error_of(d.file("negdim")).find("invalid dimension"), std::string::npos);

  write_raw(d.file("bigshape"), R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})",
            eight);
  EXPECT_NE(error_of(d.file("bigshape")).find("absurdly large"), std::string::npos);

  // Every message names the file.
  for (const char* n : {"tiny", "huge_len", "not_json", "past_end", "overlap"})
    EXPECT_NE(error_of(d.file(n)).find(d.file(n)), std::string::npos) << n;
}

TEST(SafeTensors, FuzzedHeadersNeverCrash) {
  TempDir d;
  const float v[] = {1, 2, 3, 4};
  write_safetensors(d.file("good.safetensors"), {{"x", DType::F32, {4}, v}, {"y", DType::F32, {2, 2}, v}});
  std::ifstream in(d.file("good.safetensors"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  uint32_t seed = 12345;
  for (int trial = 0; trial < 500; ++trial) {
    std::string b = bytes;
    for (int k = 0; k < 3; ++k) {
      seed = seed * 1664525u + 1013904223u;
      b[seed % b.size()] = static_cast<char>(seed >> 24);
    }
    if (trial % 7 == 0) b.resize(seed % b.size());
    std::ofstream(d.file("f.safetensors"), std::ios::binary) << b;
    try {
      SafeTensorsFile f(d.file("f.safetensors"));
      for (const auto& [n, t] : f.tensors())
        if (t.is_float()) (void)to_f32(t);
    } catch (const zeroshot::Error&) {
    }
  }
}

TEST(WeightStore, ShardedIndexAndChecks) {
  TempDir d;
  const float v[] = {1, 2, 3, 4};
  write_safetensors(d.file("model-00001-of-00002.safetensors"), {{"a", DType::F32, {2}, v}});
  write_safetensors(d.file("model-00002-of-00002.safetensors"), {{"b", DType::F32, {2, 2}, v}});
  std::ofstream(d.file("model.safetensors.index.json"))
      << R"({"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}})";
  WeightStore ws = WeightStore::open_dir(d.path.string());
  EXPECT_TRUE(ws.has("a"));
  EXPECT_TRUE(ws.has("b"));
  EXPECT_EQ(ws.get("b", {2, 2}).numel(), 4);
  EXPECT_THROW(ws.get("c"), zeroshot::Error);
  try {
    ws.get("b", {4});
    FAIL();
  } catch (const zeroshot::Error& e) {
    EXPECT_NE(std::string(e.what()).find("has shape [2, 2], expected [4]"), std::string::npos);
  }

  std::ofstream(d.file("model.safetensors.index.json"), std::ios::trunc)
      << R"({"weight_map":{"a":"model-00001-of-00002.safetensors","zz":"model-00002-of-00002.safetensors"}})";
  EXPECT_THROW(WeightStore::open_dir(d.path.string()), zeroshot::Error);
  std::ofstream(d.file("model.safetensors.index.json"), std::ios::trunc)
      << R"({"weight_map":{"a":"../../etc/passwd"}})";
  EXPECT_THROW(WeightStore::open_dir(d.path.string()), zeroshot::Error);

  fs::remove(d.file("model.safetensors.index.json"));
  try {
    WeightStore::open_dir(d.path.string());
    FAIL();
  } catch (const zeroshot::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no model.safetensors"), std::string::npos);
  }
}

TEST(WeightStore, ReadsTheFixtureCheckpoints) {
  for (const char* m : {"clip-tiny-quickgelu", "clip-tiny-gelu-f16"}) {
    WeightStore ws = WeightStore::open_dir(std::string(ZEROSHOT_FIXTURES) + "/clip/" + m);
    EXPECT_TRUE(ws.has("logit_scale")) << m;
    EXPECT_TRUE(ws.has("text_model.embeddings.token_embedding.weight")) << m;
  }
}
