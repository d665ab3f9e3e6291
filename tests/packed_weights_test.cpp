// The packed weights cache through the public API (api/backend.h, PackedWeightsPlan): the first F32 load writes
// $XDG_CACHE_HOME/zeroshot/packed-weights/<fingerprint>-<paths hash>-f32.bin, later loads map it; every load embeds
// bit for bit what a load without the cache embeds; a truncated or stale file is rebuilt silently; an unusable cache
// folder only costs the speed-up; the model folder is never written; two folders of the same weights keep a file
// each; a file under an earlier version's name is replaced. The same for CLAP (HTSAT + RoBERTa, also at bf16,
// where the file holds only the bf16 layers), at int8 for both (also with an int8 weights file in the model folder),
// and `--no-cache` writes nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "api/backend.h"
#include "models/int8_weights.h"
#include "models/packed_weights.h"
#include "nn/linear.h"
#include "support/cli.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "zeroshot/zeroshot.h"

using namespace zeroshot;
using namespace zeroshot::testing;
namespace fs = std::filesystem;

namespace {

const std::string kModel = clip_dir("clip-tiny-quickgelu");
const std::string kClap = clap_dir("clap-tiny-unfused");

// The cache in a fresh XDG_CACHE_HOME, and reference_: what embed() gives with the cache off. A subclass names the
// model and what it embeds.
class PackedCacheTest : public ::testing::Test {
 protected:
  virtual std::vector<float> embed() const = 0;
  virtual nn::Precision precision() const { return nn::Precision::F32; }

  void SetUp() override {
    if (!*nn::packed_layout(precision())) GTEST_SKIP() << "no AVX-512 panels at this precision on this CPU";
    if (const char* old = std::getenv("XDG_CACHE_HOME")) old_xdg_ = old;
    ::setenv("XDG_CACHE_HOME", cache_.str().c_str(), 1);
    ::setenv("ZEROSHOT_PACKED_WEIGHTS", "0", 1);
    reference_ = embed();
    ::unsetenv("ZEROSHOT_PACKED_WEIGHTS");
    EXPECT_FALSE(fs::exists(folder())) << "written with ZEROSHOT_PACKED_WEIGHTS=0";
  }
  void TearDown() override {
    ::unsetenv("ZEROSHOT_PACKED_WEIGHTS");
    if (old_xdg_.empty()) ::unsetenv("XDG_CACHE_HOME");
    else ::setenv("XDG_CACHE_HOME", old_xdg_.c_str(), 1);
  }

  bool same_as_reference(const std::vector<float>& v) const {
    return v.size() == reference_.size() && std::memcmp(v.data(), reference_.data(), v.size() * sizeof(float)) == 0;
  }
  fs::path folder() const { return cache_.path / "zeroshot" / "packed-weights"; }
  // The one file in the cache folder.
  fs::path cached_file() const {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(folder())) files.push_back(e.path());
    EXPECT_EQ(files.size(), 1u);
    return files.empty() ? fs::path() : files[0];
  }

  TempDir cache_{"xdg"};
  std::string old_xdg_;
  std::vector<float> reference_;
};

// Non-text inputs and two texts, embedded by a freshly loaded model.
std::vector<float> embed_with(const std::string& model, Precision p, const std::vector<std::string>& files) {
  ModelOptions o;
  o.threads = 2;
  o.precision = p;
  const auto m = Model::load(model, o);
  std::vector<float> v =
      m->modality() == Modality::Audio ? m->embed_audio_files(files).data : m->embed_image_files(files).data;
  const std::vector<float> t = m->embed_texts({"a photo of a cat", "a dog"}).data;
  v.insert(v.end(), t.begin(), t.end());
  return v;
}

class PackedCache : public PackedCacheTest {
 protected:
  std::vector<float> embed() const override { return embed_with(kModel, Precision::F32, {image_path("chelsea.png")}); }
};

// CLAP (the HTSAT audio tower and the RoBERTa text tower through the same plan).
class ClapPackedCache : public PackedCacheTest {
 protected:
  std::vector<float> embed() const override {
    return embed_with(kClap, Precision::F32, {audio_path("tone_440hz_3s.wav"), audio_path("speech_espeak.wav")});
  }
};

// At bf16 the file holds the bf16 layers; the f32 ones (patch embedding, projections) are packed at load.
class ClapPackedCacheBf16 : public ClapPackedCache {
 protected:
  nn::Precision precision() const override { return nn::Precision::BF16; }
  std::vector<float> embed() const override {
    return embed_with(kClap, Precision::BF16, {audio_path("tone_440hz_3s.wav"), audio_path("speech_espeak.wav")});
  }
};

// At int8 the file holds the int8 layers (panels, column scales and sums); the f32 projections are packed at load.
class PackedCacheInt8 : public PackedCacheTest {
 protected:
  nn::Precision precision() const override { return nn::Precision::Int8; }
  std::vector<float> embed() const override { return embed_with(model_, Precision::Int8, {image_path("chelsea.png")}); }
  std::string model_ = kModel;
};

class ClapPackedCacheInt8 : public ClapPackedCache {
 protected:
  nn::Precision precision() const override { return nn::Precision::Int8; }
  std::vector<float> embed() const override {
    return embed_with(kClap, Precision::Int8, {audio_path("tone_440hz_3s.wav"), audio_path("speech_espeak.wav")});
  }
};

// "<16 hex>-<8 hex>-<precision>.bin" (models::packed_weights_cache_name).
void expect_cache_name(const fs::path& file, const std::string& precision) {
  const std::string name = file.filename().string();
  EXPECT_TRUE(std::regex_match(name, std::regex("[0-9a-f]{16}-[0-9a-f]{8}-" + precision + "\\.bin"))) << name;
  EXPECT_TRUE(models::is_packed_weights_cache_name(name)) << name;
}

std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST_F(PackedCache, FirstLoadWritesItLaterLoadsMapItBitIdentical) {
  const auto model_files = listing(kModel);
  EXPECT_TRUE(same_as_reference(embed()));
  const fs::path file = cached_file();
  expect_cache_name(file, "f32");
  const auto written = fs::last_write_time(file);
  EXPECT_TRUE(same_as_reference(embed()));
  EXPECT_EQ(fs::last_write_time(file), written) << "rewritten instead of mapped";
  EXPECT_EQ(listing(kModel), model_files);  // the model folder is never written
}

TEST_F(PackedCache, TruncatedFileIsRebuilt) {
  embed();
  const fs::path file = cached_file();
  const auto size = fs::file_size(file);
  fs::resize_file(file, size / 2);
  EXPECT_TRUE(same_as_reference(embed()));
  EXPECT_EQ(fs::file_size(file), size);
  fs::resize_file(file, 0);
  EXPECT_TRUE(same_as_reference(embed()));
  EXPECT_EQ(fs::file_size(file), size);
}

TEST_F(PackedCache, StaleFileIsRebuilt) {
  embed();
  const fs::path file = cached_file();
  const auto size = fs::file_size(file);
  // A valid file made from other weights (none of its layers would fit these anyway).
  models::write_packed_weights(file.string(), "fnv1a64:0000000000000000", nn::Precision::F32, {});
  ASSERT_LT(fs::file_size(file), size);
  EXPECT_TRUE(same_as_reference(embed()));
  EXPECT_EQ(fs::file_size(file), size);
  EXPECT_EQ(cached_file(), file);
}

// A copy of the model folder (same weights, other files): each folder keeps its own file, mapped on every later load.
// With one file per fingerprint, each folder's load found the other's file stale (its sources differ) and rewrote it.
TEST_F(PackedCache, TwoFoldersWithTheSameWeightsKeepAFileEach) {
  TempDir a{"model-a"}, b{"model-b"};
  for (const auto& e : fs::directory_iterator(kModel)) {
    fs::copy_file(e.path(), a.path / e.path().filename());
    fs::copy_file(e.path(), b.path / e.path().filename());
  }
  const auto embed_from = [](const TempDir& m) {
    return embed_with(m.str(), Precision::F32, {image_path("chelsea.png")});
  };
  EXPECT_TRUE(same_as_reference(embed_from(a)));
  EXPECT_TRUE(same_as_reference(embed_from(b)));
  const auto files = listing(folder().string());
  ASSERT_EQ(files.size(), 2u);
  const auto a_written = fs::last_write_time(folder() / files[0]), b_written = fs::last_write_time(folder() / files[1]);
  for (int round = 0; round < 2; ++round) {
    EXPECT_TRUE(same_as_reference(embed_from(a)));
    EXPECT_TRUE(same_as_reference(embed_from(b)));
  }
  EXPECT_EQ(listing(folder().string()), files);
  EXPECT_EQ(fs::last_write_time(folder() / files[0]), a_written) << "rewritten instead of mapped";
  EXPECT_EQ(fs::last_write_time(folder() / files[1]), b_written) << "rewritten instead of mapped";
}

// A file of this format under the name earlier versions gave it ("<fingerprint>-f32.bin") is never read again: the
// next load writes the file under its name now and removes the old one.
TEST_F(PackedCache, FileUnderAnEarlierNameIsReplaced) {
  embed();
  const fs::path file = cached_file();
  const fs::path old_name = folder() / (file.filename().string().substr(0, 16) + "-f32.bin");
  ASSERT_TRUE(models::is_packed_weights_cache_name(old_name.filename().string()));
  fs::rename(file, old_name);
  EXPECT_TRUE(same_as_reference(embed()));
  EXPECT_EQ(cached_file(), file);
}

TEST_F(PackedCache, UnusableCacheFolderOnlyCostsTheSpeedUp) {
  const std::string not_a_folder = cache_.file("blocked", "a file where the cache folder would be");
  ::setenv("XDG_CACHE_HOME", not_a_folder.c_str(), 1);
  EXPECT_TRUE(same_as_reference(embed()));
  EXPECT_TRUE(same_as_reference(embed()));
  EXPECT_TRUE(fs::is_regular_file(not_a_folder));
}

TEST_F(ClapPackedCache, FirstLoadWritesItLaterLoadsMapItBitIdentical) {
  const auto model_files = listing(kClap);
  EXPECT_TRUE(same_as_reference(embed()));
  const fs::path file = cached_file();
  expect_cache_name(file, "f32");
  const auto written = fs::last_write_time(file);
  // Every linear layer of both towers is in it (a CLAP without any would still write a header-only file).
  EXPECT_GT(fs::file_size(file), 100000u);
  EXPECT_TRUE(same_as_reference(embed()));
  EXPECT_EQ(fs::last_write_time(file), written) << "rewritten instead of mapped";
  EXPECT_EQ(listing(kClap), model_files);
}

TEST_F(ClapPackedCache, TruncatedFileIsRebuilt) {
  embed();
  const fs::path file = cached_file();
  const auto size = fs::file_size(file);
  fs::resize_file(file, size - 1);
  EXPECT_TRUE(same_as_reference(embed()));
  EXPECT_EQ(fs::file_size(file), size);
}

TEST_F(ClapPackedCacheBf16, MappedBitIdentical) {
  EXPECT_TRUE(same_as_reference(embed()));
  const fs::path file = cached_file();
  expect_cache_name(file, "bf16");
  const auto written = fs::last_write_time(file);
  EXPECT_TRUE(same_as_reference(embed()));
  EXPECT_EQ(fs::last_write_time(file), written) << "rewritten instead of mapped";
}

TEST_F(PackedCacheInt8, MappedBitIdentical) {
  EXPECT_TRUE(same_as_reference(embed()));
  const fs::path file = cached_file();
  expect_cache_name(file, "int8");
  const auto written = fs::last_write_time(file);
  EXPECT_TRUE(same_as_reference(embed()));
  EXPECT_EQ(fs::last_write_time(file), written) << "rewritten instead of mapped";
}

TEST_F(PackedCacheInt8, TruncatedFileIsRebuilt) {
  embed();
  const fs::path file = cached_file();
  const auto size = fs::file_size(file);
  fs::resize_file(file, size - 1);
  EXPECT_TRUE(same_as_reference(embed()));
  EXPECT_EQ(fs::file_size(file), size);
}

// With an int8 weights file in the model folder (`zeroshot quantize`): the packed file is made from its layers and
// then used before it; every load embeds what a load with neither file embeds.
TEST_F(PackedCacheInt8, WithInt8WeightsFileBitIdentical) {
  TempDir model{"model"};  // the fixture's files, linked, and the int8 weights file beside them
  for (const auto& e : fs::directory_iterator(kModel)) fs::create_symlink(e.path(), model.path / e.path().filename());
  api::save_int8_weights(model.str(), (model.path / models::kInt8WeightsFile).string());
  model_ = model.str();
  EXPECT_TRUE(same_as_reference(embed()));
  const fs::path file = cached_file();
  expect_cache_name(file, "int8");
  const auto written = fs::last_write_time(file);
  EXPECT_TRUE(same_as_reference(embed()));
  EXPECT_EQ(fs::last_write_time(file), written) << "rewritten instead of mapped";
  fs::remove(model.path / models::kInt8WeightsFile);
  EXPECT_TRUE(same_as_reference(embed()));  // the same file, made from the int8 weights file, without it
  EXPECT_EQ(fs::last_write_time(file), written) << "rewritten instead of mapped";
}

TEST_F(ClapPackedCacheInt8, MappedBitIdentical) {
  EXPECT_TRUE(same_as_reference(embed()));
  const fs::path file = cached_file();
  expect_cache_name(file, "int8");
  const auto written = fs::last_write_time(file);
  EXPECT_TRUE(same_as_reference(embed()));
  EXPECT_EQ(fs::last_write_time(file), written) << "rewritten instead of mapped";
}

// `zeroshot classify --no-cache` (ModelOptions::weights_cache = false): no packed weights file, no label cache,
// the same scores as a run with the caches.
TEST(ClapPackedCacheCli, NoCacheLeavesNoFile) {
  TempDir home;
  const Args args = {"classify", "-q", "-m", kClap, "-l", "tone,speech,rain", "-f", "json", audio_path("chord_3s.wav")};
  const CliResult nocache = run_cli_in(home.str(), args + Args{"--no-cache"});
  ASSERT_EQ(nocache.code, 0) << nocache.err;
  const fs::path folder = home.path / "xdg" / "zeroshot" / "packed-weights";
  EXPECT_FALSE(fs::exists(folder));
  if (!*nn::packed_layout(nn::Precision::F32)) return;  // nothing to cache on this CPU
  const CliResult cached = run_cli_in(home.str(), args);
  ASSERT_EQ(cached.code, 0) << cached.err;
  EXPECT_EQ(std::distance(fs::directory_iterator(folder), fs::directory_iterator()), 1);
  EXPECT_EQ(cached.out, nocache.out);
}

}  // namespace
