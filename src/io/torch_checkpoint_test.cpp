// Tests of the PyTorch checkpoint reader against checkpoints written by torch.save itself
// (testdata/make_torch_checkpoints.py, run by the CTest fixture io_torch_checkpoints_make into TORCH_CKPT_DIR):
// every tensor's dtype, shape and bytes must equal what torch wrote to expected/<name>.raw.
#include "io/torch_checkpoint.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "support/errors.h"
#include "zeroshot/error.h"

namespace zeroshot::io {
namespace {

namespace fs = std::filesystem;

const fs::path kDir = TORCH_CKPT_DIR;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_all(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

using zeroshot::testing::error_of;

class TorchCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kDir / "done")) << kDir << " is missing: run the tests through ctest (its fixture "
                                           << "io_torch_checkpoints_make runs make_torch_checkpoints.py)";
    manifest_ = load_json((kDir / "expected" / "manifest.json").string());
    char tmpl[] = "/tmp/zs_torch_ckpt_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    if (!tmp_.empty()) fs::remove_all(tmp_, ec);
  }

  // Every tensor of the manifest, with torch's dtype, shape and bytes; nothing else.
  void expect_all(const WeightStore& ws, const std::string& what) {
    EXPECT_EQ(ws.names().size(), manifest_.size()) << what;
    for (const auto& [name, m] : manifest_.items()) {
      ASSERT_TRUE(ws.has(name)) << what << ": " << name;
      const TensorView& t = ws.get(name);
      EXPECT_EQ(dtype_name(t.dtype), m["dtype"].get<std::string>()) << what << ": " << name;
      EXPECT_EQ(t.shape, m["shape"].get<std::vector<int64_t>>()) << what << ": " << name;
      std::string want = read_all(kDir / "expected" / (name + ".raw"));
      ASSERT_EQ(t.nbytes, want.size()) << what << ": " << name;
      EXPECT_EQ(std::memcmp(t.data, want.data(), want.size()), 0) << what << ": " << name << " values differ";
    }
  }

  Json manifest_;
  fs::path tmp_;
};

TEST_F(TorchCheckpoint, ZipFormatMatchesTorch) {
  expect_all(WeightStore::open((kDir / "zip.bin").string()), "zip");
  // Values too, through the float conversion the models use.
  WeightStore ws = WeightStore::open((kDir / "zip.bin").string());
  std::vector<float> tr = to_f32(ws.get("transposed"));
  EXPECT_EQ(tr.size(), 12u);
}

TEST_F(TorchCheckpoint, LegacyFormatMatchesTorch) {
  expect_all(WeightStore::open((kDir / "legacy.bin").string()), "legacy");
}

TEST_F(TorchCheckpoint, PickleProtocol4MatchesTorch) {
  expect_all(WeightStore::open((kDir / "zip_proto4.bin").string()), "zip, protocol 4");
  expect_all(WeightStore::open((kDir / "legacy_proto4.bin").string()), "legacy, protocol 4");
}

TEST_F(TorchCheckpoint, RewrittenZipsMatchTorch) {
  expect_all(WeightStore::open((kDir / "deflated.bin").string()), "deflated");
  expect_all(WeightStore::open((kDir / "restored.bin").string()), "stored by zipfile");
  expect_all(WeightStore::open((kDir / "little_endian.bin").string()), "byteorder little");
}

TEST_F(TorchCheckpoint, WrappedStateDictIsAccepted) {
  expect_all(WeightStore::open((kDir / "wrapped.bin").string()), "wrapped");
}

TEST_F(TorchCheckpoint, StoragesAreUsedInPlaceWhenStoredAlignedAndCopiedOtherwise) {
  // torch aligns its stored records (64 bytes): contiguous tensors point into the mapped file.
  for (const auto& t : read_torch_checkpoint((kDir / "zip.bin").string())) {
    const bool strided = t.view.name == "transposed";
    const bool empty = t.view.name == "empty";
    EXPECT_EQ(t.in_place, !strided && !empty) << t.view.name;
  }
  for (const auto& t : read_torch_checkpoint((kDir / "deflated.bin").string())) EXPECT_FALSE(t.in_place) << t.view.name;
}

TEST_F(TorchCheckpoint, ShardedIndexAndOpenDir) {
  expect_all(WeightStore::open((kDir / "sharded" / "pytorch_model.bin.index.json").string()), "index");

  // open_dir follows transformers' order: safetensors first, then pytorch_model.bin, then the .bin index.
  fs::path dir = tmp_ / "model";
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kDir / "sharded")) fs::copy_file(e.path(), dir / e.path().filename());
  expect_all(WeightStore::open_dir(dir.string()), "open_dir index");
  fs::copy_file(kDir / "legacy.bin", dir / "pytorch_model.bin");
  WeightStore ws = WeightStore::open_dir(dir.string());
  EXPECT_EQ(ws.origin(), (dir / "pytorch_model.bin").string());
  const float v[] = {1, 2};
  write_safetensors((dir / "model.safetensors").string(), {{"only", DType::F32, {2}, v}});
  EXPECT_EQ(WeightStore::open_dir(dir.string()).names(), std::vector<std::string>{"only"});

  // An index naming a shard that is not there.
  Json idx = load_json((kDir / "sharded" / "pytorch_model.bin.index.json").string());
  idx["weight_map"]["f32"] = "pytorch_model-00003-of-00002.bin";
  write_all(dir / "pytorch_model.bin.index.json", idx.dump());
  std::string msg = error_of([&] { WeightStore::open((dir / "pytorch_model.bin.index.json").string()); });
  EXPECT_EQ(msg, (dir / "pytorch_model.bin.index.json").string() +
                     ": weight_map names pytorch_model-00003-of-00002.bin, which is missing (" +
                     (dir / "pytorch_model-00003-of-00002.bin").string() + ")");
  // An index promising a tensor its shard lacks.
  idx = load_json((kDir / "sharded" / "pytorch_model.bin.index.json").string());
  idx["weight_map"]["ghost"] = "pytorch_model-00001-of-00002.bin";
  write_all(dir / "pytorch_model.bin.index.json", idx.dump());
  msg = error_of([&] { WeightStore::open((dir / "pytorch_model.bin.index.json").string()); });
  EXPECT_NE(msg.find("missing tensor ghost"), std::string::npos) << msg;

  fs::path none = tmp_ / "none";
  fs::create_directories(none);
  EXPECT_EQ(
      error_of([&] { WeightStore::open_dir(none.string()); }),
      none.string() +
          ": no model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json");
}

// The shared CLIP and CLAP fixtures re-saved by torch.save: the same tensors, byte for byte, as their
// model.safetensors, so the models built from them give the fixtures' expected outputs.
TEST_F(TorchCheckpoint, SharedFixturesResavedByTorchHoldTheSameTensors) {
  int compared = 0;
  for (const char* family : {"clip", "clap"}) {
    const fs::path root = fs::path(ZEROSHOT_FIXTURES) / family;
    if (!fs::is_directory(root)) continue;
    for (const auto& e : fs::directory_iterator(root)) {
      if (!fs::exists(e.path() / "model.safetensors")) continue;
      const fs::path copy = kDir / "fixtures" / family / e.path().filename();
      ASSERT_TRUE(fs::exists(copy / "pytorch_model.bin")) << copy;
      const WeightStore ref = WeightStore::open_dir(e.path().string());
      for (const char* file : {"pytorch_model.bin", "legacy.bin"}) {
        SCOPED_TRACE((copy / file).string());
        const WeightStore bin = WeightStore::open((copy / file).string());
        ASSERT_EQ(bin.names(), ref.names());
        for (const auto& name : ref.names()) {
          const TensorView &a = ref.get(name), &b = bin.get(name);
          EXPECT_EQ(a.dtype, b.dtype) << name;
          EXPECT_EQ(a.shape, b.shape) << name;
          ASSERT_EQ(a.nbytes, b.nbytes) << name;
          EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << name;
        }
        ++compared;
      }
    }
  }
  EXPECT_GE(compared, 8);  // clip-tiny-quickgelu, clip-tiny-gelu-f16, clap-tiny-fused, clap-tiny-unfused
}

// WeightStore::open tells the formats apart by content, not by name, including a safetensors file whose header
// length (640 = 0x280) begins with the bytes of a protocol-2 pickle.
TEST_F(TorchCheckpoint, WeightStoreDispatchesOnContent) {
  fs::copy_file(kDir / "zip.bin", tmp_ / "weights.safetensors");
  expect_all(WeightStore::open((tmp_ / "weights.safetensors").string()), "zip named .safetensors");
  fs::copy_file(kDir / "legacy.bin", tmp_ / "weights");
  expect_all(WeightStore::open((tmp_ / "weights").string()), "legacy without extension");

  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.resize(640, ' ');
  std::string file = std::string("\x80\x02\0\0\0\0\0\0", 8) + header + std::string("\0\0\x80\x3f\0\0\0\x40", 8);
  write_all(tmp_ / "pickle_like.bin", file);
  ASSERT_TRUE(file[0] == '\x80' && file[1] == 2);
  const WeightStore ws = WeightStore::open((tmp_ / "pickle_like.bin").string());
  EXPECT_EQ(to_f32(ws.get("x")), (std::vector<float>{1, 2}));
}

TEST_F(TorchCheckpoint, MaliciousPicklesAreRefusedWithoutRunningAnything) {
  const fs::path marker = kDir / "bad" / "PWNED";
  for (const char* f : {"os_system.bin", "os_system_legacy.bin"}) {
    const std::string path = (kDir / "bad" / f).string();
    std::string msg = error_of([&] { WeightStore::open(path); });
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find("the pickle refers to posix.system"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
    EXPECT_FALSE(fs::exists(marker));
  }
  const std::string path = (kDir / "bad" / "eval.bin").string();
  std::string msg = error_of([&] { WeightStore::open(path); });
  EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
  EXPECT_NE(msg.find("builtins.eval"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(TorchCheckpoint, BadCheckpointsAreOneLineErrors) {
  auto expect_error = [&](const fs::path& p, const std::string& needle) {
    std::string msg = error_of([&] { WeightStore::open(p.string()); });
    EXPECT_EQ(msg.rfind(p.string() + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << p << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  };
  expect_error(kDir / "bad" / "complex.bin", "unknown storage type torch.ComplexFloatStorage");
  expect_error(kDir / "bad" / "oversized.bin", "reach element 99 of a storage of 4 elements");
  expect_error(kDir / "bad" / "missing_record.bin",
               "data record zip/data/1 named by the pickle is missing from the zip");
  expect_error(kDir / "bad" / "big_endian.bin", "big-endian");
  expect_error(kDir / "nested.bin", "nested under \"model\"");

  const std::string zip = read_all(kDir / "zip.bin");
  const std::string legacy = read_all(kDir / "legacy.bin");
  write_all(tmp_ / "truncated_zip.bin", zip.substr(0, zip.size() / 2));
  expect_error(tmp_ / "truncated_zip.bin", "truncated or corrupt zip");
  write_all(tmp_ / "truncated_legacy.bin", legacy.substr(0, legacy.size() - 100));
  expect_error(tmp_ / "truncated_legacy.bin", "(60000 F32 elements at offset");
  expect_error(tmp_ / "truncated_legacy.bin", "runs past the end of the");
  write_all(tmp_ / "legacy_pickle_only.bin", legacy.substr(0, 300));
  expect_error(tmp_ / "legacy_pickle_only.bin", "truncated pickle");
  write_all(tmp_ / "empty.bin", "");
  std::string msg = error_of([&] { read_torch_checkpoint((tmp_ / "empty.bin").string()); });
  EXPECT_EQ(msg, (tmp_ / "empty.bin").string() + ": empty file");
  expect_error(tmp_ / "empty.bin", "0 bytes");  // WeightStore: not a checkpoint, so read as (too short) safetensors
  std::string noise(4096, '\0');
  uint32_t seed = 7;
  for (char& c : noise) c = static_cast<char>((seed = seed * 1664525u + 1013904223u) >> 24);
  write_all(tmp_ / "noise.bin", noise);
  msg = error_of([&] { read_torch_checkpoint((tmp_ / "noise.bin").string()); });
  EXPECT_NE(msg.find("not a PyTorch checkpoint"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { WeightStore::open((tmp_ / "noise.bin").string()); }), "(no error)");
}

// Truncations and bit flips of valid checkpoints: an Error or a valid result, never a crash (run under ASan).
TEST_F(TorchCheckpoint, FuzzedCheckpointsNeverCrash) {
  for (const char* name : {"zip.bin", "legacy.bin", "deflated.bin"}) {
    std::string good = read_all(kDir / name);
    // The pickles and headers are in the first and last few KB; the large tensor's bytes are in the middle.
    uint32_t seed = 12345;
    for (int trial = 0; trial < 300; ++trial) {
      std::string b = good;
      seed = seed * 1664525u + 1013904223u;
      const bool head = trial % 2 == 0;
      for (int k = 0; k < 1 + trial % 3; ++k) {
        seed = seed * 1664525u + 1013904223u;
        size_t window = std::min<size_t>(b.size(), 2048);
        size_t at = head ? seed % window : b.size() - 1 - seed % window;
        b[at] = static_cast<char>(b[at] ^ (1u << (seed >> 29)));
      }
      if (trial % 5 == 0) b.resize(seed % b.size());
      write_all(tmp_ / "f.bin", b);
      try {
        for (const auto& t : read_torch_checkpoint((tmp_ / "f.bin").string()))
          if (t.view.is_float()) (void)to_f32(t.view);
      } catch (const Error&) {
      }
    }
  }
}

}  // namespace
}  // namespace zeroshot::io
