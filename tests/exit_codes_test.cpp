// The exit-code rule of tools/exit_codes.h, command by command, run as a user runs them: 0 done; 1 some inputs
// could not be read, the output covers the rest; 2 an error (usage, model, database, policy), nothing done;
// moderate: 1 flagged, 2 also for an unreadable image.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/cli.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace zeroshot::testing;

namespace {

const std::string kModel = clip_dir("clip-tiny-quickgelu");
const std::string kGood = image_path("chelsea.png");
const std::string kBad = image_path("bad_truncated.jpg");

std::string no_model() { return fixtures() + "/no-such-model-folder"; }

// A folder with one readable image and one that cannot be decoded.
struct Library {
  TempDir dir{"lib"};
  Library() {
    fs::copy_file(kGood, dir.path / "good.png");
    fs::copy_file(kBad, dir.path / "bad.jpg");
  }
};

std::string policy(const TempDir& d, double threshold) {
  std::string p = (d.path / "policy.toml").string();
  std::ofstream(p) << "[[category]]\nname = \"anything\"\nprompts = [\"a photo\"]\non = \"cosine\"\nthreshold = "
                   << threshold << "\n";
  return p;
}

}  // namespace

TEST(ExitCodes, Classify) {
  const Args c = {"classify", "-q", "-m", kModel, "-l", "cat,dog", "-f", "json", "--no-cache"};
  EXPECT_EQ(run_cli(c + Args{kGood}).code, 0);
  const CliResult some = run_cli(c + Args{kGood, kBad});
  EXPECT_EQ(some.code, 1) << some.err;
  EXPECT_EQ(json_lines(some.out).size(), 2u);  // the result and the error line
  EXPECT_EQ(run_cli({"classify", "-q", "-m", no_model(), "-l", "cat,dog", kGood}).code, 2);
  EXPECT_EQ(run_cli(c + Args{"--no-such-option", kGood}).code, 2);
}

TEST(ExitCodes, Embed) {
  const Args e = {"embed", "-q", "-m", kModel, "-f", "json"};
  EXPECT_EQ(run_cli(e + Args{"--image", kGood}).code, 0);
  const CliResult some = run_cli(e + Args{"--image", kGood, "--image", kBad});
  EXPECT_EQ(some.code, 1) << some.err;
  EXPECT_EQ(run_cli({"embed", "-q", "-m", no_model(), "--text", "a cat"}).code, 2);
  EXPECT_EQ(run_cli(e + Args{"--no-such-option"}).code, 2);
}

TEST(ExitCodes, Index) {
  Library lib;
  TempDir d("db");
  const Args i = {"index", "-q", "-m", kModel, "--db", (d.path / "index.db").string(), "-f", "json"};
  const CliResult some = run_cli(i + Args{lib.dir.str()});
  EXPECT_EQ(some.code, 1) << some.err;  // the good image is indexed, the bad one listed
  EXPECT_EQ(zeroshot::io::parse_json(some.out, "index")["images"], 1);
  // Known unreadable and unchanged: skipped, not read again, counted; nothing failed in this run.
  EXPECT_EQ(run_cli(i + Args{lib.dir.str()}).code, 0);
  EXPECT_EQ(run_cli({"index", "-q", "-m", no_model(), "--db", (d.path / "x.db").string(), lib.dir.str()}).code, 2);
  const std::string garbage = (d.path / "garbage.db").string();
  std::ofstream(garbage) << std::string(5000, 'z');
  EXPECT_EQ(run_cli({"index", "-q", "-m", kModel, "--db", garbage, lib.dir.str()}).code, 2);
  EXPECT_EQ(run_cli(i + Args{"--no-such-option", lib.dir.str()}).code, 2);
}

TEST(ExitCodes, Moderate) {
  TempDir d("policy");
  const Args m = {"moderate", "-q", "-m", kModel, "-f", "json", "--no-cache", "--policy"};
  EXPECT_EQ(run_cli(m + Args{policy(d, 1.0), kGood}).code, 0);   // nothing flagged
  EXPECT_EQ(run_cli(m + Args{policy(d, -1.0), kGood}).code, 1);  // flagged
  const CliResult bad = run_cli(m + Args{policy(d, 1.0), kGood, kBad});
  EXPECT_EQ(bad.code, 2) << bad.err;  // never "nothing flagged" while an image went unread
  EXPECT_EQ(run_cli({"moderate", "-q", "-m", no_model(), "--policy", policy(d, 1.0), kGood}).code, 2);
  EXPECT_EQ(run_cli({"moderate", "-q", "-m", kModel, kGood}).code, 2);  // no --policy
}

TEST(ExitCodes, HelpAndVersionAreZeroAndHelpStatesTheRule) {
  const CliResult h = run_cli({"--help"});
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("Exit codes: 0 done; 1 some inputs could not be read"), std::string::npos) << h.out;
  EXPECT_EQ(run_cli({"--version"}).code, 0);
  EXPECT_EQ(run_cli({"classify", "--help"}).code, 0);
  EXPECT_EQ(run_cli({}).code, 2);  // no command
}
