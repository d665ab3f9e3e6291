// `zeroshot cache` (tools/cmd_cache.cpp) on a cache in a temporary XDG_CACHE_HOME: the listing (table and JSON) of
// packed weights and label embeddings with their status; a packed file going stale when its source weight file
// changes or vanishes; prune (stale and damaged files, --older-than, --max-size least recently used first,
// --dry-run) and clear (--kind); the automatic removal of the packed file of an older version of the same weights
// when a load writes a new one; corrupt files listed and pruned, never a crash; files that are not zeroshot's
// (foreign names, links, folders) never touched.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "classify/label_cache.h"
#include "io/json.h"
#include "models/packed_weights.h"
#include "nn/linear.h"
#include "support/cli.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "support/temp_model.h"
#include "zeroshot/zeroshot.h"

using namespace zeroshot;
using namespace zeroshot::testing;
namespace fs = std::filesystem;

namespace {

const std::string kModel = clip_dir("clip-tiny-quickgelu");

class CacheCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* old = std::getenv("XDG_CACHE_HOME")) old_xdg_ = old;
    ::setenv("XDG_CACHE_HOME", (home_.path / "xdg").c_str(), 1);  // what run_cli_in gives the CLI
  }
  void TearDown() override {
    if (old_xdg_.empty()) ::unsetenv("XDG_CACHE_HOME");
    else ::setenv("XDG_CACHE_HOME", old_xdg_.c_str(), 1);
  }

  fs::path root() const { return home_.path / "xdg" / "zeroshot"; }
  fs::path packed_dir() const { return root() / "packed-weights"; }
  fs::path labels_dir() const { return root() / "label-embeddings"; }

  CliResult cache(const Args& args) const { return run_cli_in(home_.str(), Args{"cache"} + args); }
  io::Json cache_json(const Args& args) const {
    const CliResult r = cache(args + Args{"-f", "json"});
    EXPECT_EQ(r.code, 0) << r.err;
    const auto lines = json_lines(r.out);
    EXPECT_EQ(lines.size(), 1u) << r.out;
    return lines.empty() ? io::Json() : lines[0];
  }
  // The listed entry of `path` (null when not listed).
  io::Json entry(const io::Json& list, const fs::path& path) const {
    for (const auto& e : list["entries"])
      if (e["path"] == path.string()) return e;
    return io::Json();
  }

  // A label-embedding file of `rows` x 8 floats, as the classifier writes it.
  fs::path label_file(const std::string& tag, size_t rows) const {
    const auto key = classify::label_cache_key(tag, {{"cat"}}, {"{}"});
    const std::string path = classify::label_cache_path(root().string(), key);
    const std::vector<float> data(rows * 8, 0.5f);
    EXPECT_TRUE(classify::store_label_embeddings(path, key, rows, 8, data.data()));
    return path;
  }
  // Loads `dir` with the packed weights cache on (F32), which writes its packed file.
  static void load(const std::string& dir) {
    ModelOptions o;
    o.threads = 1;
    const auto m = Model::load(dir, o);
    ASSERT_GT(m->embed_texts({"a cat"}).data.size(), 0u);
  }
  std::vector<fs::path> packed_files() const {
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(packed_dir(), ec)) out.push_back(e.path());
    return out;
  }
  // A writable copy of the fixture model (every file), so its weights can change.
  std::unique_ptr<TempModel> model_copy() const {
    auto m = std::make_unique<TempModel>(kModel);
    for (const auto& e : fs::directory_iterator(kModel))
      if (!fs::exists(fs::path(m->dir()) / e.path().filename())) fs::copy(e.path(), fs::path(m->dir()));
    return m;
  }
  static void set_last_use(const fs::path& p, int64_t days_ago) {
    const struct timespec t = {std::time(nullptr) - days_ago * 86400, 0};
    const struct timespec both[2] = {t, t};
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), both, 0), 0);
  }
  static bool packed_available() { return *nn::packed_layout(nn::Precision::F32) != '\0'; }

  TempDir home_{"cachecmd"};
  std::string old_xdg_;
};

TEST_F(CacheCommand, MissingCacheFolderIsAnEmptyCache) {
  const io::Json j = cache_json({});
  EXPECT_EQ(j["cache_dir"], root().string());
  EXPECT_TRUE(j["entries"].empty());
  EXPECT_EQ(j["totals"]["files"], 0);
  const CliResult r = cache({"prune", "-f", "table"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("freed 0 B in 0 files"), std::string::npos) << r.out;
  EXPECT_EQ(cache({"clear"}).code, 0);
  EXPECT_FALSE(fs::exists(root()));  // nothing created
}

TEST_F(CacheCommand, ListsPackedAndLabelFilesThenStaleWhenTheSourceChanges) {
  if (!packed_available()) GTEST_SKIP() << "no AVX-512 panels on this CPU";
  const auto m = model_copy();
  load(m->dir());
  const fs::path labels = label_file("model", 3);
  ASSERT_EQ(packed_files().size(), 1u);
  const fs::path packed = packed_files()[0];

  io::Json j = cache_json({"list"});
  ASSERT_EQ(j["entries"].size(), 2u);
  io::Json p = entry(j, packed);
  EXPECT_EQ(p["kind"], "packed");
  EXPECT_EQ(p["status"], "ok");
  EXPECT_EQ(p["precision"], "f32");
  EXPECT_EQ(p["sources"], io::Json::array({fs::absolute(m->weights_path()).string()}));
  EXPECT_GT(p["bytes"].get<uint64_t>(), 0u);
  const io::Json l = entry(j, labels);
  EXPECT_EQ(l["kind"], "labels");
  EXPECT_EQ(l["status"], "ok");
  EXPECT_EQ(j["totals"]["files"], 2);
  EXPECT_EQ(j["totals"]["bytes"], p["bytes"].get<uint64_t>() + l["bytes"].get<uint64_t>());
  EXPECT_EQ(j["totals"]["stale_or_damaged"]["files"], 0);

  const CliResult table = cache({"-f", "table"});
  EXPECT_EQ(table.code, 0);
  EXPECT_NE(table.out.find(m->dir()), std::string::npos) << table.out;  // the model, by its folder
  EXPECT_NE(table.out.find("total: 2 files"), std::string::npos) << table.out;

  // The weights edited in place (a new modification time is what a load checks): stale.
  fs::last_write_time(m->weights_path(), fs::last_write_time(m->weights_path()) - std::chrono::hours(1));
  p = entry(cache_json({}), packed);
  EXPECT_EQ(p["status"], "stale");
  EXPECT_NE(p["reason"].get<std::string>().find("source changed"), std::string::npos) << p.dump();

  // --dry-run names it and keeps it; prune removes it and leaves the label file.
  const io::Json dry = cache_json({"prune", "--dry-run"});
  EXPECT_EQ(dry["dry_run"], true);
  ASSERT_EQ(dry["removed"].size(), 1u);
  EXPECT_EQ(dry["removed"][0]["path"], packed.string());
  EXPECT_EQ(dry["freed_bytes"], p["bytes"]);
  EXPECT_TRUE(fs::exists(packed));
  const CliResult pruned = cache({"prune", "-f", "table"});
  EXPECT_EQ(pruned.code, 0) << pruned.err;
  EXPECT_NE(pruned.out.find("removed " + packed.string()), std::string::npos) << pruned.out;
  EXPECT_NE(pruned.out.find("freed "), std::string::npos) << pruned.out;
  EXPECT_FALSE(fs::exists(packed));
  EXPECT_TRUE(fs::exists(labels));

  // A source that vanished: stale too.
  load(m->dir());
  ASSERT_EQ(packed_files().size(), 1u);
  EXPECT_EQ(entry(cache_json({}), packed_files()[0])["status"], "ok");
  fs::remove(m->weights_path());
  p = entry(cache_json({}), packed_files()[0]);
  EXPECT_EQ(p["status"], "stale");
  EXPECT_NE(p["reason"].get<std::string>().find("source gone"), std::string::npos) << p.dump();
}

TEST_F(CacheCommand, ALoadRemovesThePackedFileOfAnOlderVersionOfItsWeights) {
  if (!packed_available()) GTEST_SKIP() << "no AVX-512 panels on this CPU";
  const auto m = model_copy();
  load(m->dir());
  load(clip_dir("clip-tiny-gelu-f16"));  // another model's file: never removed for this one
  ASSERT_EQ(packed_files().size(), 2u);
  const fs::path other =
      entry(cache_json({}), packed_files()[0])["sources"][0] == fs::absolute(m->weights_path()).string()
          ? packed_files()[1]
          : packed_files()[0];
  std::vector<fs::path> before = packed_files();

  // New weights in place: another fingerprint, so another file name; the old one can never be used again.
  auto& scale = m->tensors().at("logit_scale");
  for (auto& b : scale.bytes) b ^= 0x5a;
  m->write_weights();
  load(m->dir());
  const std::vector<fs::path> after = packed_files();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_TRUE(fs::exists(other));
  for (const fs::path& f : before)
    if (f != other) {
      EXPECT_FALSE(fs::exists(f)) << f << " was not removed";
    }
  for (const fs::path& f : after) EXPECT_EQ(entry(cache_json({}), f)["status"], "ok");
}

TEST_F(CacheCommand, CorruptFilesAreListedAsDamagedAndPruned) {
  const fs::path packed = packed_dir() / "0123456789abcdef-f32.bin";
  const fs::path empty = packed_dir() / "fedcba9876543210-bf16.bin";
  write_file(packed, std::string(100, 'x'));
  write_file(empty, "");
  const fs::path labels = label_file("model", 2);
  const fs::path bad_labels = labels_dir() / "0123456789abcdef0123456789abcdef.bin";
  write_file(bad_labels, "ZSLABELS" + std::string(200, '\0'));
  fs::resize_file(labels, fs::file_size(labels) - 4);  // truncated

  const io::Json j = cache_json({});
  ASSERT_EQ(j["entries"].size(), 4u) << j.dump();
  for (const auto& e : j["entries"]) EXPECT_EQ(e["status"], "damaged") << e.dump();
  EXPECT_NE(entry(j, packed)["reason"].get<std::string>().find("not a packed weights file"), std::string::npos);
  EXPECT_EQ(j["totals"]["stale_or_damaged"]["files"], 4);
  EXPECT_EQ(cache({"-f", "table"}).code, 0);

  const io::Json pruned = cache_json({"prune"});
  EXPECT_EQ(pruned["freed_files"], 4);
  for (const fs::path& f : {packed, empty, labels, bad_labels}) EXPECT_FALSE(fs::exists(f)) << f;
}

TEST_F(CacheCommand, ForeignFilesLinksAndFoldersAreNeverTouched) {
  const fs::path ours = label_file("model", 2);
  const TempDir outside("outside");
  const std::string target = outside.file("0123456789abcdef-f32.bin", "precious");
  const std::vector<fs::path> foreign = {
      root() / "README.txt",
      packed_dir() / "notes.txt",
      packed_dir() / "0123456789abcdef-f32.bin.bak",
      packed_dir() / "0123456789ABCDEFG-f32.bin",
      labels_dir() / "0123456789abcdef.bin",
      labels_dir() / "sub" / "0123456789abcdef0123456789abcdef.bin",
  };
  for (const fs::path& f : foreign) write_file(f, "not zeroshot's");
  const fs::path link = packed_dir() / "fedcba9876543210-f32.bin";
  fs::create_symlink(target, link);
  // A kind folder that is a link out of the cache is not entered.
  const TempDir elsewhere("elsewhere");
  write_file(elsewhere.path / "00000000000000000000000000000000.bin", "x");
  fs::create_directories(root() / "moved");
  fs::rename(labels_dir(), root() / "moved" / "label-embeddings");
  fs::create_symlink(root() / "moved" / "label-embeddings", labels_dir());  // inside the cache: entered

  const io::Json j = cache_json({});
  ASSERT_EQ(j["entries"].size(), 1u) << j.dump();
  EXPECT_EQ(j["entries"][0]["path"], (labels_dir() / ours.filename()).string());

  const io::Json cleared = cache_json({"clear"});
  EXPECT_EQ(cleared["freed_files"], 1);
  EXPECT_FALSE(fs::exists(labels_dir() / ours.filename()));
  for (const fs::path& f : foreign) EXPECT_TRUE(fs::exists(f)) << f;  // (through the link for the label folder)
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(read_file(target), "precious");

  // The label folder a link to outside the cache: not listed, not cleared.
  fs::remove(labels_dir());
  fs::create_symlink(elsewhere.path, labels_dir());
  EXPECT_TRUE(cache_json({})["entries"].empty());
  EXPECT_EQ(cache_json({"clear"})["freed_files"], 0);
  EXPECT_TRUE(fs::exists(elsewhere.path / "00000000000000000000000000000000.bin"));
}

TEST_F(CacheCommand, PruneByAgeAndSizeLeastRecentlyUsedFirst) {
  const fs::path old_file = label_file("old", 100);  // 3.3 kB each
  const fs::path middle = label_file("middle", 100);
  const fs::path recent = label_file("recent", 100);
  set_last_use(old_file, 40);
  set_last_use(middle, 20);
  set_last_use(recent, 1);

  const io::Json dry = cache_json({"prune", "--older-than", "30", "-n"});
  ASSERT_EQ(dry["removed"].size(), 1u);
  EXPECT_EQ(dry["removed"][0]["path"], old_file.string());
  EXPECT_TRUE(fs::exists(old_file));
  EXPECT_EQ(cache_json({"prune", "--older-than", "30"})["freed_files"], 1);
  EXPECT_FALSE(fs::exists(old_file));
  EXPECT_TRUE(fs::exists(middle));

  // Room for one file: the least recently used goes.
  const io::Json list = cache_json({});
  const uint64_t both = entry(list, middle)["bytes"].get<uint64_t>() + entry(list, recent)["bytes"].get<uint64_t>();
  const io::Json sized = cache_json({"prune", "--max-size", std::to_string(both - 1)});
  ASSERT_EQ(sized["removed"].size(), 1u) << sized.dump();
  EXPECT_EQ(sized["removed"][0]["path"], middle.string());
  EXPECT_FALSE(fs::exists(middle));
  EXPECT_TRUE(fs::exists(recent));

  // A label file that is read again counts as used now.
  set_last_use(recent, 50);
  std::vector<float> out;
  ASSERT_TRUE(classify::load_label_embeddings(recent.string(), classify::label_cache_key("recent", {{"cat"}}, {"{}"}),
                                              100, 8, &out));
  EXPECT_EQ(cache_json({"prune", "--older-than", "30"})["freed_files"], 0);

  const CliResult bad = cache({"prune", "--max-size", "lots"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(bad.err, "zeroshot: --max-size: cannot read \"lots\" as a size (e.g. 500M, 2G, 1.5GB, 4Gi)\n");
  EXPECT_EQ(cache({"prune", "--older-than", "-1"}).code, 2);
}

TEST_F(CacheCommand, ClearByKindAndDryRun) {
  const fs::path labels = label_file("model", 2);
  const fs::path packed = packed_dir() / "0123456789abcdef-f32.bin";
  write_file(packed, "damaged");
  const fs::path stale_tmp = labels_dir() / (labels.filename().string() + ".tmp.123.4.5");
  const fs::path fresh_tmp = packed_dir() / "0123456789abcdef-f32.bin.tmp.123.0";
  write_file(stale_tmp, "half");
  write_file(fresh_tmp, "being written");
  set_last_use(stale_tmp, 1);

  const io::Json j = cache_json({});
  EXPECT_EQ(entry(j, stale_tmp)["status"], "stale");
  EXPECT_EQ(entry(j, fresh_tmp)["status"], "ok");

  // clear leaves a temporary file being written (its writer renames it into place in a moment).
  EXPECT_EQ(cache_json({"clear", "--dry-run"})["removed"].size(), 3u);
  EXPECT_TRUE(fs::exists(labels) && fs::exists(packed));
  const CliResult r = cache({"clear", "--kind", "labels", "-f", "table"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("freed "), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(labels));
  EXPECT_FALSE(fs::exists(stale_tmp));
  EXPECT_TRUE(fs::exists(packed) && fs::exists(fresh_tmp));
  EXPECT_EQ(cache_json({"clear", "--kind", "packed"})["freed_files"], 1);
  EXPECT_FALSE(fs::exists(packed));
  EXPECT_TRUE(fs::exists(fresh_tmp));
  EXPECT_EQ(cache({"clear", "--kind", "models"}).code, 2);
}

}  // namespace
