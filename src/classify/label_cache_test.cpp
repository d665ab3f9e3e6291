// Label-embedding disk cache (classify/label_cache.h) and its use by ZeroShotClassifier; Model::fingerprint().
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "classify/label_cache.h"
#include "support/temp_dir.h"
#include "zeroshot/zeroshot.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::classify;

namespace {

std::string fixture_model(const std::string& name) { return std::string(ZEROSHOT_FIXTURES) + "/clip/" + name; }

using zeroshot::testing::TempDir;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}
void spit(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

std::vector<float> ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * std::sin(static_cast<float>(i) * 0.37f);
  return v;
}

const std::array<uint8_t, 32> kKey = label_cache_key("model-a", {{"cat"}, {"dog"}}, {"a photo of a {}."});

}  // namespace

TEST(LabelCacheFile, RoundTripAndHeaderChecks) {
  TempDir dir;
  const std::string path = label_cache_path(dir.str(), kKey);
  const auto data = ramp(3 * 8, 1.f);
  std::vector<float> out;
  EXPECT_FALSE(load_label_embeddings(path, kKey, 3, 8, &out));         // absent
  ASSERT_TRUE(store_label_embeddings(path, kKey, 3, 8, data.data()));  // creates the folders
  ASSERT_TRUE(load_label_embeddings(path, kKey, 3, 8, &out));
  EXPECT_EQ(out, data);

  const auto other = label_cache_key("model-b", {{"cat"}, {"dog"}}, {"a photo of a {}."});
  EXPECT_FALSE(load_label_embeddings(path, other, 3, 8, &out));  // another key in this file
  EXPECT_FALSE(load_label_embeddings(path, kKey, 3, 9, &out));   // other dims
  EXPECT_FALSE(load_label_embeddings(path, kKey, 4, 8, &out));
  // No temporary files are left behind.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(fs::path(path).parent_path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
}

TEST(LabelCacheFile, CorruptFilesAreIgnored) {
  TempDir dir;
  const std::string path = label_cache_path(dir.str(), kKey);
  const auto data = ramp(2 * 16, 0.5f);
  ASSERT_TRUE(store_label_embeddings(path, kKey, 2, 16, data.data()));
  const std::string good = slurp(path);
  std::vector<float> out;

  auto expect_rejected = [&](const std::string& bytes, const char* what) {
    spit(path, bytes);
    out.clear();
    EXPECT_FALSE(load_label_embeddings(path, kKey, 2, 16, &out)) << what;
    EXPECT_TRUE(out.empty()) << what;
  };
  expect_rejected(good.substr(0, good.size() - 1), "truncated");
  expect_rejected(good + "x", "trailing byte");
  expect_rejected("", "empty");
  expect_rejected(good.substr(0, 40), "header only, cut");
  for (size_t at : {size_t(0), size_t(9), size_t(20), size_t(50), size_t(70), good.size() - 3}) {
    std::string bad = good;
    bad[at] = static_cast<char>(bad[at] ^ 0x5A);
    expect_rejected(bad, ("byte flipped at " + std::to_string(at)).c_str());
  }
  // A NaN with a matching checksum (a writer bug, not corruption) is refused too.
  std::vector<float> nan = data;
  nan[5] = std::numeric_limits<float>::quiet_NaN();
  ASSERT_TRUE(store_label_embeddings(path, kKey, 2, 16, nan.data()));
  EXPECT_FALSE(load_label_embeddings(path, kKey, 2, 16, &out));
  // A folder where the file should be, and an unwritable place: no crash, just no cache.
  fs::remove(path);
  fs::create_directories(path);
  EXPECT_FALSE(load_label_embeddings(path, kKey, 2, 16, &out));
  EXPECT_FALSE(store_label_embeddings(path, kKey, 2, 16, data.data()));
  spit(dir.str() + "/plain-file", "x");
  EXPECT_FALSE(store_label_embeddings(dir.str() + "/plain-file/sub/x.bin", kKey, 2, 16, data.data()));
}

TEST(LabelCacheFile, KeyCoversModelLabelsAndTemplates) {
  const std::vector<std::vector<std::string>> classes = {{"cat"}, {"dog"}};
  const std::vector<std::string> templates = {"a photo of a {}."};
  const auto base = label_cache_key("m", classes, templates);
  EXPECT_EQ(base, label_cache_key("m", classes, templates));  // deterministic
  EXPECT_NE(base, label_cache_key("m2", classes, templates));
  EXPECT_NE(base, label_cache_key("m", {{"dog"}, {"cat"}}, templates));  // order is meaning
  EXPECT_NE(base, label_cache_key("m", {{"cat"}, {"dog"}, {"car"}}, templates));
  EXPECT_NE(base, label_cache_key("m", {{"cat", "kitty"}, {"dog"}}, templates));  // synonyms
  EXPECT_NE(base, label_cache_key("m", {{"cat"}, {"dog"}}, {"a photo of a {}.", "a {}."}));
  EXPECT_NE(base, label_cache_key("m", {{"cat"}, {"dog"}}, {"a photo of the {}."}));
  // Field boundaries are part of the key.
  EXPECT_NE(label_cache_key("m", {{"ab"}, {"c"}}, templates), label_cache_key("m", {{"a"}, {"bc"}}, templates));
  EXPECT_NE(label_cache_key("m", {{"a", "b"}}, templates), label_cache_key("m", {{"a"}, {"b"}}, templates));
}

TEST(LabelCacheFile, ConcurrentWritersAndReaders) {
  TempDir dir;
  const std::string path = label_cache_path(dir.str(), kKey);
  const size_t rows = 64, dim = 512;  // 128 KiB: large enough for writes to interleave
  // Each writer writes its own payload, so a reader that got a mix of two files would be caught.
  std::vector<std::vector<float>> payloads;
  payloads.reserve(4);
  for (int w = 0; w < 4; ++w) payloads.push_back(ramp(rows * dim, 1.f + static_cast<float>(w)));
  const auto& data = payloads[0];
  std::atomic<bool> stop{false};
  std::atomic<int> bad_reads{0}, good_reads{0}, failed_writes{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int w = 0; w < 4; ++w)
    threads.emplace_back([&, w] {
      for (int i = 0; i < 25; ++i)
        if (!store_label_embeddings(path, kKey, rows, dim, payloads[static_cast<size_t>(w)].data())) ++failed_writes;
    });
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&] {
      std::vector<float> out;
      while (!stop) {
        if (load_label_embeddings(path, kKey, rows, dim, &out)) {
          if (std::find(payloads.begin(), payloads.end(), out) != payloads.end()) ++good_reads;
          else ++bad_reads;
        }
      }
    });
  for (int w = 0; w < 4; ++w) threads[static_cast<size_t>(w)].join();
  for (int i = 0; i < 500 && good_reads == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop = true;
  for (size_t t = 4; t < threads.size(); ++t) threads[t].join();
  EXPECT_EQ(failed_writes, 0);
  EXPECT_EQ(bad_reads, 0);
  EXPECT_GT(good_reads, 0);
  ASSERT_TRUE(store_label_embeddings(path, kKey, rows, dim, data.data()));
  std::vector<float> out;
  ASSERT_TRUE(load_label_embeddings(path, kKey, rows, dim, &out));
  EXPECT_EQ(out, data);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(fs::path(path).parent_path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);  // every temporary file was renamed
}

TEST(LabelCacheDir, Resolution) {
  EXPECT_EQ(resolve_cache_dir("none"), "");
  EXPECT_EQ(resolve_cache_dir("/some/where"), "/some/where");
  const char* old_xdg = std::getenv("XDG_CACHE_HOME");
  const std::string saved = old_xdg ? old_xdg : "";
  ::setenv("XDG_CACHE_HOME", "/xdg/cache", 1);
  EXPECT_EQ(resolve_cache_dir(""), "/xdg/cache/zeroshot");
  ::setenv("XDG_CACHE_HOME", "relative/path", 1);  // the XDG spec says to ignore relative paths
  const char* home = std::getenv("HOME");
  if (home && *home) {
    EXPECT_EQ(resolve_cache_dir(""), std::string(home) + "/.cache/zeroshot");
  }
  if (old_xdg) ::setenv("XDG_CACHE_HOME", saved.c_str(), 1);
  else ::unsetenv("XDG_CACHE_HOME");
}

// ---- through the public API ---------------------------------------------------------------------------------------

namespace {

size_t cache_files(const fs::path& dir) {
  size_t n = 0;
  if (fs::exists(dir / "label-embeddings"))
    for (const auto& e : fs::directory_iterator(dir / "label-embeddings")) n += e.is_regular_file();
  return n;
}

}  // namespace

TEST(LabelCacheClassifier, HitAfterMissWithIdenticalEmbeddings) {
  TempDir dir;
  auto model = Model::load(fixture_model("clip-tiny-quickgelu"));
  ClassifierOptions on;
  on.cache_dir = dir.str();
  ClassifierOptions off;
  off.cache_dir = "none";
  const std::vector<std::string> labels = {"a cat", "a dog", "a red car"};
  const std::vector<std::string> templates = {"a photo of {}.", "a drawing of {}."};

  const ZeroShotClassifier computed(*model, labels, templates, off);
  EXPECT_FALSE(computed.label_embeddings_cached());
  EXPECT_EQ(cache_files(dir.path), 0u);

  const ZeroShotClassifier miss(*model, labels, templates, on);
  EXPECT_FALSE(miss.label_embeddings_cached());
  EXPECT_EQ(cache_files(dir.path), 1u);
  const ZeroShotClassifier hit(*model, labels, templates, on);
  EXPECT_TRUE(hit.label_embeddings_cached());
  EXPECT_EQ(hit.labels(), computed.labels());
  EXPECT_EQ(hit.label_embeddings().rows, 3u);
  EXPECT_EQ(hit.label_embeddings().data, computed.label_embeddings().data);  // bit for bit
  EXPECT_EQ(miss.label_embeddings().data, computed.label_embeddings().data);

  // A new Model object (another process, in effect) hits too.
  auto again = Model::load(fixture_model("clip-tiny-quickgelu"));
  EXPECT_TRUE(ZeroShotClassifier(*again, labels, templates, on).label_embeddings_cached());

  // Other labels, templates or model: other entries.
  EXPECT_FALSE(
      ZeroShotClassifier(*model, std::vector<std::string>{"a cat", "a dog"}, templates, on).label_embeddings_cached());
  EXPECT_FALSE(ZeroShotClassifier(*model, labels, {"a photo of {}."}, on).label_embeddings_cached());
  auto other = Model::load(fixture_model("clip-tiny-gelu-f16"));
  const ZeroShotClassifier other_model(*other, labels, templates, on);
  EXPECT_FALSE(other_model.label_embeddings_cached());
  EXPECT_EQ(cache_files(dir.path), 4u);
  EXPECT_NE(other_model.label_embeddings().data, computed.label_embeddings().data);

  // Bad input is still refused on a hit.
  EXPECT_THROW(ZeroShotClassifier(*model, labels, {"no placeholder"}, on), Error);
}

TEST(LabelCacheClassifier, CorruptEntryIsRecomputedAndRewritten) {
  TempDir dir;
  auto model = Model::load(fixture_model("clip-tiny-quickgelu"));
  ClassifierOptions on;
  on.cache_dir = dir.str();
  const std::vector<std::string> labels = {"tench", "goldfish"};
  const ZeroShotClassifier first(*model, labels, {}, on);
  ASSERT_EQ(cache_files(dir.path), 1u);
  const fs::path file = fs::directory_iterator(dir.path / "label-embeddings")->path();
  std::string bytes = slurp(file.string());
  bytes[bytes.size() - 2] = static_cast<char>(bytes[bytes.size() - 2] ^ 1);  // a payload bit
  spit(file.string(), bytes);

  const ZeroShotClassifier second(*model, labels, {}, on);
  EXPECT_FALSE(second.label_embeddings_cached());
  EXPECT_EQ(second.label_embeddings().data, first.label_embeddings().data);
  const ZeroShotClassifier third(*model, labels, {}, on);
  EXPECT_TRUE(third.label_embeddings_cached());  // rewritten
  EXPECT_EQ(third.label_embeddings().data, first.label_embeddings().data);
}

// ---- Model::fingerprint -------------------------------------------------------------------------------------------

namespace {

// A copy of a fixture model whose files can be edited (real copies, not links).
struct ModelCopy {
  TempDir dir;
  explicit ModelCopy(const std::string& model) {
    for (const auto& e : fs::directory_iterator(fixture_model(model)))
      fs::copy_file(e.path(), dir.path / e.path().filename());
    for (const auto& e : fs::directory_iterator(dir.path))
      fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  }
  std::string path() const { return dir.str(); }
  size_t size(const std::string& name) const { return static_cast<size_t>(fs::file_size(dir.path / name)); }
  void flip_byte(const std::string& name, size_t at) {
    const std::string p = (dir.path / name).string();
    std::string b = slurp(p);
    b[at] = static_cast<char>(b[at] ^ 0x10);
    spit(p, b);
  }
};

}  // namespace

TEST(ModelFingerprint, StableAndContentBased) {
  const std::string fp = Model::load(fixture_model("clip-tiny-quickgelu"))->fingerprint();
  EXPECT_EQ(fp.size(), 32u);
  EXPECT_EQ(fp.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(Model::load(fixture_model("clip-tiny-quickgelu"))->fingerprint(), fp);
  EXPECT_NE(Model::load(fixture_model("clip-tiny-gelu-f16"))->fingerprint(), fp);
  ModelCopy copy("clip-tiny-quickgelu");  // the same bytes elsewhere: the same id
  EXPECT_EQ(Model::load(copy.path())->fingerprint(), fp);
  ModelOptions int8;  // another precision computes other embeddings
  int8.precision = Precision::Int8;
  EXPECT_NE(Model::load(fixture_model("clip-tiny-quickgelu"), int8)->fingerprint(), fp);
  ModelOptions fast;  // so does the opt-in draft decoding of JPEGs: an index never mixes the two
  fast.fast_decode = true;
  EXPECT_NE(Model::load(fixture_model("clip-tiny-quickgelu"), fast)->fingerprint(), fp);
}

TEST(ModelFingerprint, ChangesWhenTheWeightsChange) {
  const std::string fp = Model::load(fixture_model("clip-tiny-quickgelu"))->fingerprint();
  {
    ModelCopy copy("clip-tiny-quickgelu");
    copy.flip_byte("model.safetensors", copy.size("model.safetensors") - 1);  // the last byte (always sampled)
    EXPECT_NE(Model::load(copy.path())->fingerprint(), fp);
  }
  {
    ModelCopy copy("clip-tiny-quickgelu");
    // Inside the second of the 64 evenly spaced 4 KiB samples (past this file's 9 KB header).
    copy.flip_byte("model.safetensors", (copy.size("model.safetensors") - 4096) / 63 + 100);
    EXPECT_NE(Model::load(copy.path())->fingerprint(), fp);
  }
  {
    ModelCopy copy("clip-tiny-quickgelu");
    copy.flip_byte("merges.txt", 1000);  // the tokenizer changes the text embeddings
    EXPECT_NE(Model::load(copy.path())->fingerprint(), fp);
  }
  {
    ModelCopy copy("clip-tiny-quickgelu");
    std::string cfg = slurp(copy.path() + "/config.json");
    cfg += "\n";
    spit(copy.path() + "/config.json", cfg);
    EXPECT_NE(Model::load(copy.path())->fingerprint(), fp);
  }
}
