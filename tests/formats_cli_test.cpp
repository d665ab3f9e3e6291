// The CLI on the photo formats (issue 18, item 10): folders with HEIC, AVIF and TIFF files are indexed and
// classified, and files of other types are named in the summary. The files are formats_reference's (src/image).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/json.h"
#include "support/cli.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using zeroshot::testing::CliResult;
using zeroshot::testing::json_lines;
using zeroshot::testing::run_cli;
using zeroshot::testing::TempDir;

namespace {

const std::string kModel = zeroshot::testing::clip_dir("clip-tiny-quickgelu");
const std::string kFormats = std::string(ZEROSHOT_BINARY_DIR) + "/src/image/formats_reference/files";

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// The example library: one file of each new format, a PNG, and files that are not images.
void make_library(const fs::path& dir) {
  fs::create_directories(dir / "sub");
  fs::copy_file(kFormats + "/photo.heic", dir / "IMG_0001.HEIC");
  fs::copy_file(kFormats + "/alpha.avif", dir / "sub/web.avif");
  fs::copy_file(kFormats + "/pil_rgb_tiff_lzw.tif", dir / "scan.tiff");
  fs::copy_file(zeroshot::testing::image_path("chelsea.png"), dir / "cat.png");
  std::ofstream(dir / "notes.txt") << "not an image";
  std::ofstream(dir / "sub/clip.mov") << "not an image either";
  std::ofstream(dir / ".DS_Store") << "hidden: not listed";
}

#define REQUIRE_FORMATS() \
  if (!fs::exists(kFormats + "/photo.heic")) GTEST_SKIP() << "no " << kFormats << " (formats_reference skipped)"

}  // namespace

TEST(FormatsCli, IndexPicksUpPhoneFormatsAndNamesOtherFiles) {
  REQUIRE_FORMATS();
  TempDir lib("lib"), db("db");
  make_library(lib.path);
  const std::string dbfile = (db.path / "index.db").string();
  CliResult r = run_cli({"index", "-m", kModel, "--db", dbfile, "--format", "json", "-q", lib.path.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const io::Json j = io::parse_json(r.out, "index output");
  EXPECT_EQ(j["files"].get<size_t>(), 4u);
  EXPECT_EQ(j["embedded"].get<size_t>(), 4u);
  EXPECT_TRUE(j["failures"].empty()) << r.out;
  EXPECT_EQ(j["other_files"].get<size_t>(), 2u);
  ASSERT_EQ(j["other_file_examples"].size(), 2u);
  EXPECT_EQ(fs::path(j["other_file_examples"][0].get<std::string>()).filename(), "notes.txt");
  EXPECT_EQ(fs::path(j["other_file_examples"][1].get<std::string>()).filename(), "clip.mov");

  std::ofstream(lib.path / "c.raw") << "x";
  r = run_cli({"index", "-m", kModel, "--db", dbfile, "--format", "table", "-q", lib.path.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("3 files of other types not read: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("notes.txt"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(".DS_Store"), std::string::npos) << r.out;
}

TEST(FormatsCli, ClassifyFolderReadsTheFormatsAndNamesOtherFiles) {
  REQUIRE_FORMATS();
  TempDir lib("lib");
  make_library(lib.path);
  const CliResult r = run_cli({"classify", "-m", kModel, "--labels", "cat,dog", "-f", "json", lib.path.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  for (const auto& l : lines) EXPECT_TRUE(l.contains("result")) << l.dump();
  EXPECT_NE(r.err.find("2 files of other types not read: "), std::string::npos) << r.err;
}
