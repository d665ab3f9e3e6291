// The CLI on the photo formats (issue 18, items 10 and 11): folders with HEIC, AVIF and TIFF files are indexed and
// classified, files of other types are named in the summary, and http(s):// inputs are fetched from a 127.0.0.1
// server with their limits and one-line errors. The HEIC/AVIF/TIFF files are formats_reference's (src/image).
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "io/json.h"
#include "support/cli.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using zeroshot::testing::CliOptions;
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

// ---------------------------------------------------------------------------------------------------------------
// http(s):// inputs

namespace {

class UrlServer {
 public:
  UrlServer() {
    const std::string png = read_all(zeroshot::testing::image_path("chelsea.png"));
    svr_.Get("/cat.png", [png](const httplib::Request&, httplib::Response& res) { res.set_content(png, "image/png"); });
    svr_.Get("/moved", [](const httplib::Request&, httplib::Response& res) { res.set_redirect("/cat.png"); });
    svr_.Get("/text.png", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("<html>not an image</html>", "text/html");
    });
    // No Content-Length: the limit must hold on the bytes as they arrive.
    svr_.Get("/endless", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("application/octet-stream", [](size_t, httplib::DataSink& sink) {
        const std::string block(1 << 16, 'x');
        return sink.write(block.data(), block.size());
      });
    });
    svr_.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::seconds(4));
      res.set_content("late", "text/plain");
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    while (!svr_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~UrlServer() {
    svr_.stop();
    thread_.join();
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

 private:
  httplib::Server svr_;
  int port_ = 0;
  std::thread thread_;
};

CliResult cli(const std::vector<std::string>& args, const std::string& tmpdir) {
  CliOptions o;
  o.env = {{"TMPDIR", tmpdir}, {"no_proxy", "127.0.0.1"}, {"NO_PROXY", "127.0.0.1"}};
  return run_cli(args, o);
}

}  // namespace

TEST(FormatsCli, UrlInputsAreFetchedAndNamedByTheirUrl) {
  UrlServer server;
  TempDir tmp("tmp");
  const std::string local = zeroshot::testing::image_path("chelsea.png");
  // classify: the same scores as the local file, the URL as the name.
  CliResult by_url =
      cli({"classify", "-m", kModel, "--labels", "cat,dog,car", "-f", "json", server.url("/cat.png")}, tmp.path);
  CliResult by_path = cli({"classify", "-m", kModel, "--labels", "cat,dog,car", "-f", "json", local}, tmp.path);
  ASSERT_EQ(by_url.code, 0) << by_url.err;
  ASSERT_EQ(by_path.code, 0) << by_path.err;
  const auto u = json_lines(by_url.out), p = json_lines(by_path.out);
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0]["image"], server.url("/cat.png"));
  EXPECT_EQ(u[0]["result"].dump(), p[0]["result"].dump());
  // A redirect is followed.
  by_url = cli({"classify", "-m", kModel, "--labels", "cat,dog,car", "-f", "json", server.url("/moved")}, tmp.path);
  ASSERT_EQ(by_url.code, 0) << by_url.err;
  EXPECT_EQ(json_lines(by_url.out)[0]["result"].dump(), p[0]["result"].dump());

  // embed --image URL, in command-line order with a text.
  by_url = cli({"embed", "-m", kModel, "-f", "json", "--text", "a cat", "--image", server.url("/cat.png")}, tmp.path);
  by_path = cli({"embed", "-m", kModel, "-f", "json", "--text", "a cat", "--image", local}, tmp.path);
  ASSERT_EQ(by_url.code, 0) << by_url.err;
  const auto eu = json_lines(by_url.out), ep = json_lines(by_path.out);
  ASSERT_EQ(eu.size(), 2u);
  EXPECT_EQ(eu[1]["input"], server.url("/cat.png"));
  EXPECT_EQ(eu[1]["embedding"].dump(), ep[1]["embedding"].dump());

  // The temporary copies are gone.
  EXPECT_TRUE(fs::is_empty(tmp.path));
}

TEST(FormatsCli, UrlInputsFailWithOneLineErrors) {
  UrlServer server;
  TempDir tmp("tmp");
  auto classify = [&](const std::string& url, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"classify", "-m", kModel, "--labels", "cat,dog", "-f", "json", url};
    args.insert(args.end(), extra.begin(), extra.end());
    return cli(args, tmp.path);
  };
  auto expect_error = [](const CliResult& r, const std::string& url, const std::string& what) {
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find(url + ": "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  };
  expect_error(classify(server.url("/missing.png")), server.url("/missing.png"), "HTTP 404");
  expect_error(classify(server.url("/cat.png"), {"--max-download-mb", "0.01"}), server.url("/cat.png"),
               "larger than the limit of 10000 bytes (--max-download-mb)");
  expect_error(classify(server.url("/endless"), {"--max-download-mb", "1"}), server.url("/endless"),
               "larger than the limit of 1000000 bytes (--max-download-mb)");
  expect_error(classify(server.url("/slow"), {"--download-timeout", "1"}), server.url("/slow"),
               "timed out after 1 s (--download-timeout)");
  // Fetched but not an image: the decoder's error names the URL, not the temporary copy.
  const CliResult r = classify(server.url("/text.png"));
  expect_error(r, server.url("/text.png"), "not a JPEG");
  EXPECT_EQ(r.err.find("zeroshot-urls-"), std::string::npos) << r.err;
  // Nothing listens on port 9 of 127.0.0.1 (discard): cannot connect.
  expect_error(classify("http://127.0.0.1:9/x.png"), "http://127.0.0.1:9/x.png", "cannot fetch");
  // Other schemes are not URLs here: a missing file.
  EXPECT_NE(classify("ftp://127.0.0.1/x.png").code, 0);
  EXPECT_TRUE(fs::is_empty(tmp.path));
}
