// The CLI's start-up pieces: `zeroshot bench --format json` keys, and the label-embedding cache of `classify`
// (written on the first call, used on the next, skipped with --no-cache).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "support/cli.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

// The built binary with its caches in `home` (HF and XDG), offline, stdin closed, tracing its phases.
const auto zeroshot_cli = run_cli_traced;

}  // namespace

TEST(BenchCli, JsonHasTheKeys) {
  TempDir home;
  const CliResult r = zeroshot_cli(
      home, {"bench", "-m", clip_dir("clip-tiny-quickgelu"), "--batch", "2", "--iters", "1", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;  // one object, one line
  const io::Json j = io::parse_json(r.out, "bench output");
  for (const char* k : {"load_s", "first_image_batch_s", "images_per_s", "first_text_batch_s", "texts_per_s",
                        "texts_per_s_imagenet1000", "tokenize_imagenet1000_s", "rss_after_load_mb", "peak_rss_mb"}) {
    ASSERT_TRUE(j.contains(k) && j[k].is_number()) << k << " in " << r.out;
    EXPECT_GT(j[k].get<double>(), 0.0) << k;
    EXPECT_TRUE(std::isfinite(j[k].get<double>())) << k;
  }
  EXPECT_GE(j["peak_rss_mb"].get<double>(), j["rss_after_load_mb"].get<double>());
  ASSERT_TRUE(j.contains("min_cosine_vs_f32"));
  EXPECT_TRUE(j["min_cosine_vs_f32"].is_null());  // f32 has no error against itself to report
  EXPECT_EQ(j["batch"].get<int>(), 2);
  EXPECT_EQ(j["precision"].get<std::string>(), "f32");
  EXPECT_EQ(j["fingerprint"].get<std::string>().size(), 32u);
  for (const char* k : {"gemm_backend", "cpu", "load_average", "date"}) {
    ASSERT_TRUE(j.contains(k) && j[k].is_string()) << k;
    EXPECT_FALSE(j[k].get<std::string>().empty()) << k;
  }
  EXPECT_GE(j["threads"].get<int>(), 1);

  // Bad options are one-line errors.
  const CliResult bad = zeroshot_cli(home, {"bench", "-m", clip_dir("clip-tiny-quickgelu"), "--precision", "f8"});
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("--precision"), std::string::npos) << bad.err;
}

TEST(BenchCli, LowerPrecisionReportsTheErrorAgainstF32) {
  TempDir home;
  for (const char* p : {"bf16", "int8"}) {
    const CliResult r = zeroshot_cli(home, {"bench", "-m", clip_dir("clip-tiny-quickgelu"), "--iters", "1",
                                            "--precision", p, "--images", fixtures() + "/images", "--format", "json"});
    if (r.code != 0) {  // a build without that precision: a clear one-line error naming the option
      EXPECT_NE(r.err.find(std::string("--precision ") + p), std::string::npos) << r.err;
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
      continue;
    }
    const io::Json j = io::parse_json(r.out, "bench output");
    ASSERT_TRUE(j["min_cosine_vs_f32"].is_number()) << r.out;
    const double c = j["min_cosine_vs_f32"].get<double>();
    EXPECT_GT(c, 0.9) << p;
    EXPECT_LE(c, 1.0 + 1e-6) << p;
  }
}

// --no-imagenet (bench/siglip_peers.py): no ImageNet rate, and the error against f32 still measured (over the
// timed texts instead of the prompts).
TEST(BenchCli, NoImagenetSkipsThePrompts) {
  TempDir home;
  const CliResult r = zeroshot_cli(home, {"bench", "-m", clip_dir("clip-tiny-quickgelu"), "--iters", "1",
                                          "--no-imagenet", "--precision", "bf16", "--format", "json"});
  if (r.code != 0) {  // a build without bf16: covered by LowerPrecisionReportsTheErrorAgainstF32
    EXPECT_NE(r.err.find("--precision bf16"), std::string::npos) << r.err;
    return;
  }
  const io::Json j = io::parse_json(r.out, "bench output");
  EXPECT_TRUE(j["texts_per_s_imagenet1000"].is_null()) << r.out;
  EXPECT_GT(j["texts_per_s"].get<double>(), 0.0);
  ASSERT_TRUE(j["min_cosine_vs_f32_texts"].is_number()) << r.out;
  EXPECT_GT(j["min_cosine_vs_f32_texts"].get<double>(), 0.9);
  EXPECT_LE(j["min_cosine_vs_f32_texts"].get<double>(), 1.0 + 1e-6);

  // Nothing to save without the prompts: refused, not a file of the wrong ids.
  const CliResult both = zeroshot_cli(home, {"bench", "-m", clip_dir("clip-tiny-quickgelu"), "--no-imagenet",
                                             "--save-imagenet-ids", home.str() + "/ids.json"});
  EXPECT_NE(both.code, 0);
  EXPECT_NE(both.err.find("excludes"), std::string::npos) << both.err;
}

TEST(ClassifyCli, LabelCacheWrittenThenUsed) {
  TempDir home;
  const Args base = {"classify", image_path("chelsea.png"), "-m", clip_dir("clip-tiny-quickgelu"), "-f", "json", "-q"};
  const Args args = base + Args{"-l", "cat,dog,car"};
  const CliResult nocache = zeroshot_cli(home, args + Args{"--no-cache"});
  ASSERT_EQ(nocache.code, 0) << nocache.err;
  EXPECT_EQ(label_cache_files(home.str()), 0u);
  const CliResult first = zeroshot_cli(home, args);
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_EQ(label_cache_files(home.str()), 1u);
  EXPECT_NE(first.err.find("load tokenizer"), std::string::npos) << first.err;  // ZEROSHOT_TRACE phases
  const CliResult second = zeroshot_cli(home, args);
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_EQ(second.err.find("load tokenizer"), std::string::npos) << second.err;  // texts not encoded again
  EXPECT_EQ(second.out, first.out);                                               // same scores, to the last digit
  EXPECT_EQ(second.out, nocache.out);
  // Other labels: another entry.
  ASSERT_EQ(zeroshot_cli(home, base + Args{"-l", "cat,dog,car,bird"}).code, 0);
  EXPECT_EQ(label_cache_files(home.str()), 2u);
}
