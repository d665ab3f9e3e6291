// The test support itself: the CLI runner (argv verbatim, stdin, exit codes and signals, the isolated environment,
// the timeout), TempDir, the comparisons, TempModel (a copy the engine's reader reads back unchanged).
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX kill(), not <csignal>'s std::signal

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>

#include "io/safetensors.h"
#include "support/cli.h"
#include "support/compare.h"
#include "support/errors.h"
#include "support/fixtures.h"
#include "support/reference.h"
#include "support/temp_dir.h"
#include "support/temp_model.h"
#include "zeroshot/error.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

// /bin/sh as the program: the runner is the same for any binary.
CliOptions sh_options() {
  CliOptions o;
  o.binary = "/bin/sh";
  return o;
}

CliResult sh(const std::string& script, const CliOptions& o = sh_options(), const Args& rest = {}) {
  return run_cli(Args{"-c", script, "sh"} + rest, o);
}

}  // namespace

TEST(CliRunner, ArgumentsArriveVerbatim) {
  const Args odd = {"a b", "it's", "$HOME", "", "*", "x\"y", "--flag=1 2"};
  const CliResult r = sh("for a in \"$@\"; do printf '[%s]' \"$a\"; done", sh_options(), odd);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "[a b][it's][$HOME][][*][x\"y][--flag=1 2]");
}

TEST(CliRunner, StdinOutErrAndExitCode) {
  const std::string bytes("one\0two\n", 8);
  CliOptions o = sh_options();
  o.stdin_bytes = bytes;
  CliResult r = sh("cat; echo oops >&2; exit 3", o);
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, bytes);
  EXPECT_EQ(r.err, "oops\n");
  EXPECT_FALSE(r.timed_out);
  r = sh("cat");  // no stdin given: /dev/null, so cat ends at once
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "");
}

TEST(CliRunner, SignalsRead128PlusN) {
  EXPECT_EQ(sh("kill -9 $$").code, 128 + SIGKILL);
  EXPECT_EQ(sh("kill -TERM $$").code, 128 + SIGTERM);
}

TEST(CliRunner, EnvironmentIsIsolated) {
  const TempDir home("home");
  const std::string show =
      "printf '%s|%s|%s|%s|%s|%s' \"$HF_HOME\" \"$HF_HUB_CACHE\" \"$XDG_CACHE_HOME\" "
      "\"$XDG_DATA_HOME\" \"$HF_HUB_OFFLINE\" \"$EXTRA\"";
  CliOptions o = sh_options();
  o.home = home.str();
  o.env = {{"EXTRA", "x y"}};
  CliResult r = sh(show, o);
  EXPECT_EQ(r.out, home / "hf" + "|" + home / "hf/hub" + "|" + home / "xdg" + "|" + home / "data" + "|1|x y");
  o = sh_options();
  o.env = {{"XDG_CACHE_HOME", "/elsewhere"}};
  r = sh(show, o);  // a fresh home per run; env wins
  EXPECT_NE(r.out.find("|/elsewhere|"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(home.str()), std::string::npos) << r.out;
  EXPECT_EQ(r.out.rfind("|1|"), r.out.size() - 3) << r.out;
  o.env = {{"HF_HUB_OFFLINE", "0"}};
  r = sh("printf '%s' \"${HF_HUB_OFFLINE-unset}\"", o);
  EXPECT_EQ(r.out, "0");
}

TEST(CliRunner, JsonLinesAndLabelCacheFiles) {
  const auto v = json_lines("{\"a\": 1}\n\n[2]\n");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0]["a"], 1);
  EXPECT_EQ(v[1][0], 2);
  EXPECT_THROW(json_lines("{\n"), Error);
  const TempDir home("home");
  EXPECT_EQ(label_cache_files(home.str()), 0u);
  home.file("xdg/zeroshot/label-embeddings/one.bin", "x");
  home.file("xdg/zeroshot/label-embeddings/two.bin", "y");
  EXPECT_EQ(label_cache_files(home.str()), 2u);
}

TEST(CliRunner, TimeoutKillsAndFails) {
  CliOptions o = sh_options();
  o.timeout_s = 0.3;
  CliResult r;
  EXPECT_NONFATAL_FAILURE(r = sh("sleep 30", o), "was killed");
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.code, 128 + SIGKILL);
}

TEST(CliRunner, ProcessCanBeWatchedAndKilled) {
  CliProcess p(Args{"-c", "sleep 30", "sh"}, sh_options());
  ASSERT_GT(p.pid(), 0);
  EXPECT_TRUE(p.running());
  p.kill(SIGKILL);
  EXPECT_EQ(p.wait().code, 128 + SIGKILL);
  EXPECT_FALSE(p.running());
}

TEST(CliRunner, MissingProgramIsATestFailure) {
  CliOptions o;
  o.binary = "/no/such/program";
  CliResult r;
  EXPECT_NONFATAL_FAILURE(r = run_cli({}, o), "cannot start /no/such/program");
  EXPECT_EQ(r.code, -1);
}

// isolated_cache.cpp: an in-process load never writes the user's ~/.cache.
TEST(IsolatedCache, XdgCacheHomeIsATemporaryFolderOfThisProcess) {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  ASSERT_NE(xdg, nullptr);
  const std::filesystem::path p(xdg);
  EXPECT_TRUE(std::filesystem::is_directory(p));
  EXPECT_EQ(p.filename().string().rfind("zs_test_cache_", 0), 0u) << xdg;
}

TEST(TempDirTest, UniqueAndRemoved) {
  fs::path a_path;
  {
    const TempDir a, b;
    a_path = a.path;
    EXPECT_NE(a.path, b.path);
    EXPECT_TRUE(fs::is_directory(a.path));
    EXPECT_TRUE(fs::is_empty(a.path));
    EXPECT_NE(a.str().find("UniqueAndRemoved"), std::string::npos) << a.str();
    const std::string f = a.file("x/y.txt", "bytes");
    EXPECT_EQ(f, a / "x/y.txt");
    EXPECT_EQ(read_file(f), "bytes");
  }
  EXPECT_FALSE(fs::exists(a_path));
}

TEST(Compare, ErrorsAndNaN) {
  const std::vector<float> a = {1, -4, 2}, b = {1.5f, -4, 2};
  EXPECT_EQ(max_abs(a), 4.0f);
  EXPECT_EQ(max_abs_diff(a, b), 0.5f);
  EXPECT_EQ(rel_err(a, b), 0.5f / 4.0f);
  const std::vector<float> n = {1, std::nanf(""), 2};
  EXPECT_TRUE(std::isnan(max_abs_diff(a, n)));  // NaN is never close
  EXPECT_FALSE(max_abs_diff(n, a) <= 1.0f);
  float d = 0;
  EXPECT_NONFATAL_FAILURE(d = max_abs_diff(a, std::vector<float>{1, 2}), "size");
  EXPECT_EQ(d, std::numeric_limits<float>::infinity());
}

TEST(Compare, Cosines) {
  const float a[] = {3, 4}, b[] = {4, 3}, c[] = {-6, -8};
  EXPECT_DOUBLE_EQ(cosine(a, b, 2), 24.0 / 25.0);
  EXPECT_DOUBLE_EQ(cosine(a, c, 2), -1.0);
  const double x[] = {1, 0}, y[] = {0, 2};
  EXPECT_EQ(cosine(x, y, 2), 0.0);
  // Rows {3,4}~{3,4} (1) and {3,4}~{4,3} (24/25): the worst row counts, in both layouts.
  const std::vector<float> got = {3, 4, 3, 4}, want = {3, 4, 4, 3};
  EXPECT_DOUBLE_EQ(min_cosine(got, want, 2), 24.0 / 25.0);
  EXPECT_DOUBLE_EQ(min_cosine(std::vector<std::vector<float>>{{3, 4}, {3, 4}}, {{3, 4}, {4, 3}}), 24.0 / 25.0);
  // A NaN row (here a zero vector) is never close, wherever it stands.
  EXPECT_TRUE(std::isnan(min_cosine({0, 0, 3, 4}, want, 2)));
  EXPECT_TRUE(std::isnan(min_cosine({3, 4, 0, 0}, want, 2)));
  double m = 0;
  EXPECT_NONFATAL_FAILURE(m = min_cosine(got, {3, 4}, 2), "size");
  EXPECT_TRUE(std::isnan(m));
  EXPECT_NONFATAL_FAILURE(m = min_cosine(std::vector<std::vector<float>>{{3, 4}}, {{3, 4, 0}}), "size");
  EXPECT_TRUE(std::isnan(m));
}

TEST(Errors, ErrorOfAndFilePlaceholder) {
  EXPECT_EQ(error_of([] {}), "(no error)");
  EXPECT_EQ(error_of([] { throw Error("/tmp/x/c.json", "bad key"); }), "/tmp/x/c.json: bad key");
  EXPECT_EQ(error_of([] { throw std::runtime_error("boom"); }), "NOT a zeroshot::Error: boom");
  EXPECT_EQ(file_placeholder("/tmp/x/c.json: bad key", "/tmp/x/c.json"), "FILE: bad key");
  // Only a leading path is replaced: another file's message stays as it is and fails the comparison.
  EXPECT_EQ(file_placeholder("/tmp/y/c.json: bad key", "/tmp/x/c.json"), "/tmp/y/c.json: bad key");
  EXPECT_EQ(file_placeholder("(no error)", "/tmp/x/c.json"), "(no error)");
}

TEST(ExpectedOutputsTest, ModelInputsInFixtureOrder) {
  const ExpectedOutputs ref(clip_dir("clip-tiny-quickgelu"));
  const std::vector<std::string> images = ref.strings("images");
  ASSERT_GE(images.size(), 2u);
  const std::vector<float> first = ref.get("pixel_values/" + images[0]),
                           last = ref.get("pixel_values/" + images.back());
  const std::vector<float> all = ref.all_pixel_values();
  ASSERT_EQ(all.size(), first.size() * images.size());  // every image is [3, S, S]
  EXPECT_TRUE(std::equal(first.begin(), first.end(), all.begin()));
  EXPECT_TRUE(std::equal(last.begin(), last.end(), all.end() - static_cast<std::ptrdiff_t>(last.size())));
  EXPECT_EQ(ref.shape("pixel_values/" + images[0]), (std::vector<int64_t>{3, 224, 224}));
  const auto ids = ref.input_ids();
  ASSERT_EQ(ids.size(), ref.strings("texts").size());
  EXPECT_EQ(ids[0], ref.json.at("input_ids")[0].get<std::vector<int32_t>>());
  EXPECT_THROW(ref.strings("no such key"), std::exception);
}

TEST(Compare, RowsNear) {
  const std::vector<float> got = {0, 0, 1, 1}, want = {0, 0.01f, 1, 1.5f};
  EXPECT_TRUE(rows_near(got.data(), want.data(), 1, 2, 0.02f));
  const auto r = rows_near(got.data(), want.data(), 2, 2, 0.02f, {"first", "second"});
  EXPECT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("row 1 second"), std::string::npos) << r.message();
}

TEST(TempModelTest, CopyReadsBackUnchangedAndEditsStick) {
  const std::string src = clip_dir("clip-tiny-quickgelu");
  TempModel t(src);
  const io::SafeTensorsFile orig(src + "/model.safetensors");
  {
    const io::SafeTensorsFile copy(t.weights_path());
    ASSERT_EQ(copy.tensors().size(), orig.tensors().size());
    for (const auto& [name, v] : orig.tensors()) {
      const auto& c = copy.tensors().at(name);
      EXPECT_EQ(c.dtype, v.dtype) << name;
      EXPECT_EQ(c.shape, v.shape) << name;
      ASSERT_EQ(c.nbytes, v.nbytes) << name;
      EXPECT_EQ(std::memcmp(c.data, v.data, v.nbytes), 0) << name;
    }
    EXPECT_EQ(io::load_json(t.config_path()), io::load_json(src + "/config.json"));
  }
  t.tensors().erase("logit_scale");
  t.tensors()["extra"] = {io::DType::I64, {2}, std::vector<uint8_t>(16, 1)};
  t.write_weights();
  {
    const io::SafeTensorsFile copy(t.weights_path());
    EXPECT_FALSE(copy.tensors().count("logit_scale"));
    EXPECT_EQ(copy.tensors().at("extra").dtype, io::DType::I64);
  }
  t.truncate_weights(100);
  EXPECT_EQ(fs::file_size(t.weights_path()), 100u);
  t.edit_raw([](io::Json& header, std::string& data) {
    header["extra"]["data_offsets"] = io::Json::array({0, data.size() + 8});
  });
  EXPECT_THROW(io::SafeTensorsFile{t.weights_path()}, Error);
  t.tensors()["bad"] = {io::DType::F32, {3}, std::vector<uint8_t>(4, 0)};
  EXPECT_NONFATAL_FAILURE(t.write_weights(), "bad: 4 bytes for 12");
}
