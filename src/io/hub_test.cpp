// Integration tests of the hub cache + download against tests/support/hf_server.py (a local stand-in for
// huggingface.co on 127.0.0.1) and the clip-tiny-quickgelu fixture. Expected blob names (git blob sha1 for
// regular files, sha256 for LFS files, as the hub sends them) are computed by python3's hashlib, not by us.
#include "io/hub.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX kill(), not <csignal>'s std::signal
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "support/errors.h"
#include "util/progress.h"
#include "zeroshot/error.h"

extern char** environ;

namespace zeroshot::io {
namespace {

namespace fs = std::filesystem;

const std::string kCommit = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff";  // hf_server.py's default fake commit
const std::string kFixture = ZEROSHOT_FIXTURES "/clip/clip-tiny-quickgelu";
const std::string kServerScript = ZEROSHOT_SOURCE_DIR "/tests/support/hf_server.py";
const std::string kRepo = "test-org/tiny-clip";
// What resolve_model fetches from this fixture (it has no tokenizer.json).
const std::vector<std::string> kModelFiles = {"config.json",      "preprocessor_config.json", "vocab.json",
                                              "merges.txt",       "tokenizer_config.json",    "special_tokens_map.json",
                                              "model.safetensors"};
const char* kHfVars[] = {"HF_HUB_CACHE",
                         "HUGGINGFACE_HUB_CACHE",
                         "HF_HOME",
                         "XDG_CACHE_HOME",
                         "HF_TOKEN",
                         "HUGGING_FACE_HUB_TOKEN",
                         "HF_TOKEN_PATH",
                         "HF_HUB_OFFLINE",
                         "TRANSFORMERS_OFFLINE",
                         "HF_ENDPOINT",
                         "HF_HUB_DISABLE_IMPLICIT_TOKEN",
                         "HF_HUB_DOWNLOAD_TIMEOUT",
                         "HF_HUB_ETAG_TIMEOUT",
                         "http_proxy",
                         "https_proxy",
                         "HTTP_PROXY",
                         "HTTPS_PROXY",
                         "all_proxy",
                         "ALL_PROXY"};

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_all(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

bool have_python3() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!dir.empty() && ::access((dir + "/python3").c_str(), X_OK) == 0) return true;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return false;
}

// Runs argv, returns its stdout (stderr inherited).
std::string run_capture(const std::vector<std::string>& args) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  std::string s;
  char buf[4096];
  ssize_t n;
  while (rc == 0 && (n = ::read(out[0], buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  int status = 0;
  if (rc == 0) ::waitpid(pid, &status, 0);
  if (rc != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("failed: " + args[0]);
  return s;
}

// {git blob sha1, sha256} of a file, by python3's hashlib: the names huggingface.co gives blobs.
std::pair<std::string, std::string> python_hashes(const fs::path& p) {
  std::string out =
      run_capture({"python3", "-c",
                   "import hashlib,sys\nd=open(sys.argv[1],'rb').read()\n"
                   "print(hashlib.sha1(b'blob %d\\0'%len(d)+d).hexdigest(), hashlib.sha256(d).hexdigest())",
                   p.string()});
  size_t sp = out.find(' ');
  return {out.substr(0, sp), out.substr(sp + 1, 64)};
}

// hf_server.py in a child process; killed (and reaped) by the destructor. It also exits by itself when the
// pipe on its stdin closes, so a crashed test leaves no server behind.
class HfServer {
 public:
  HfServer(const std::vector<std::string>& extra, const fs::path& log) : log_(log) {
    std::vector<std::string> args = {"python3", kServerScript, "--log", log.string(), "--exit-on-stdin-eof"};
    args.insert(args.end(), extra.begin(), extra.end());
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int rc = posix_spawnp(&pid_, "python3", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    if (rc != 0) {
      ::close(out[0]);
      pid_ = -1;
      throw std::runtime_error("cannot start python3");
    }
    std::string line;
    pollfd pfd{out[0], POLLIN, 0};
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      if (::poll(&pfd, 1, 200) <= 0) continue;
      char buf[64];
      ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    ::close(out[0]);
    int port = std::atoi(line.c_str());
    if (port <= 0) {
      stop();
      throw std::runtime_error("hf_server.py did not print its port");
    }
    endpoint = "http://127.0.0.1:" + std::to_string(port);
  }
  ~HfServer() { stop(); }
  void stop() {
    if (stdin_ >= 0) ::close(stdin_);
    stdin_ = -1;
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }
  std::vector<std::string> requests() const {
    std::vector<std::string> lines;
    std::ifstream in(log_);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }
  size_t request_count() const { return requests().size(); }

  std::string endpoint;

 private:
  fs::path log_;
  pid_t pid_ = -1;
  int stdin_ = -1;
};

// A port nothing listens on (bound then released).
int closed_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

// Splits a safetensors file into two valid shards + model.safetensors.index.json (as transformers writes).
void write_sharded(const fs::path& src, const fs::path& dir) {
  std::string data = read_all(src);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<unsigned char>(data[static_cast<size_t>(i)]);
  Json header = Json::parse(data.substr(8, n));
  std::string payload = data.substr(8 + n);
  std::vector<std::string> names;
  for (auto& [k, v] : header.items())
    if (k != "__metadata__") names.push_back(k);
  std::sort(names.begin(), names.end());
  Json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", Json::object()}};
  uint64_t total = 0;
  for (int s = 0; s < 2; ++s) {
    std::string file = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
    Json h = {{"__metadata__", {{"format", "pt"}}}};
    std::string bytes;
    for (size_t i = s == 0 ? 0 : names.size() / 2; i < (s == 0 ? names.size() / 2 : names.size()); ++i) {
      Json t = header[names[i]];
      uint64_t b = t["data_offsets"][0], e = t["data_offsets"][1];
      t["data_offsets"] = {bytes.size(), bytes.size() + (e - b)};
      bytes += payload.substr(b, e - b);
      h[names[i]] = t;
      index["weight_map"][names[i]] = file;
    }
    std::string hs = h.dump();
    while (hs.size() % 8) hs += ' ';
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((hs.size() >> (8 * i)) & 0xff);
    write_all(dir / file, out + hs + bytes);
    total += bytes.size();
  }
  index["metadata"]["total_size"] = total;
  write_all(dir / "model.safetensors.index.json", index.dump(2));
}

std::vector<std::string> incomplete_files(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".incomplete") != std::string::npos) out.push_back(e.path().string());
  return out;
}

class Hub : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_python3()) GTEST_SKIP() << "python3 is not installed: the test hub server cannot run";
    for (const char* v : kHfVars) ::unsetenv(v);
    if (const char* home = std::getenv("HOME")) home_ = home;
    char tmpl[] = "/tmp/zs_hub_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    ::setenv("HF_HOME", (tmp_ / "hf_home").c_str(), 1);  // never read the user's token or cache
    ::setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    cache_ = tmp_ / "cache";
    opt_.cache_dir = cache_.string();
    opt_.progress = false;
    opt_.timeout_s = 5;
  }
  void TearDown() override {
    server_.reset();
    for (const char* v : kHfVars) ::unsetenv(v);
    if (!home_.empty()) ::setenv("HOME", home_.c_str(), 1);
    std::error_code ec;
    if (!tmp_.empty()) fs::remove_all(tmp_, ec);
  }
  void start(std::vector<std::string> extra = {}, const std::string& repo_dir = kFixture) {
    server_.reset();
    extra.insert(extra.begin(), {"--repo", kRepo + "=" + repo_dir});
    server_ = std::make_unique<HfServer>(extra, tmp_ / ("log" + std::to_string(++servers_) + ".txt"));
    opt_.endpoint = server_->endpoint;
  }
  fs::path storage() const { return cache_ / "models--test-org--tiny-clip"; }
  fs::path snapshot() const { return storage() / "snapshots" / kCommit; }

  fs::path tmp_, cache_;
  std::string home_;
  HubOptions opt_;
  std::unique_ptr<HfServer> server_;
  int servers_ = 0;
};

using zeroshot::testing::error_of;

TEST_F(Hub, ColdDownloadHasHuggingfaceHubLayout) {
  start();
  std::string snap = resolve_model(kRepo, opt_);
  EXPECT_EQ(snap, snapshot().string());
  EXPECT_EQ(read_all(storage() / "refs" / "main"), kCommit);  // exactly the hash, no newline
  for (const auto& f : kModelFiles) {
    SCOPED_TRACE(f);
    fs::path p = snapshot() / f;
    ASSERT_TRUE(fs::is_symlink(p));
    auto [git, sha] = python_hashes(fs::path(kFixture) / f);
    bool lfs = f == "model.safetensors";
    EXPECT_EQ(fs::read_symlink(p).string(), "../../blobs/" + (lfs ? sha : git));
    EXPECT_TRUE(fs::is_regular_file(storage() / "blobs" / (lfs ? sha : git)));
    EXPECT_EQ(read_all(p), read_all(fs::path(kFixture) / f));
  }
  EXPECT_FALSE(fs::exists(snapshot() / "tokenizer.json"));
  EXPECT_TRUE(fs::is_regular_file(storage() / ".no_exist" / kCommit / "tokenizer.json"));
  EXPECT_EQ(std::distance(fs::directory_iterator(storage() / "blobs"), fs::directory_iterator()), 7);
  EXPECT_TRUE(incomplete_files(cache_).empty());
  // The LFS file came through the CDN redirect; the metadata requests were HEADs.
  auto log = server_->requests();
  EXPECT_TRUE(std::any_of(log.begin(), log.end(), [](auto& l) { return l.rfind("GET /__lfs/", 0) == 0; }));
  EXPECT_TRUE(std::any_of(log.begin(), log.end(), [](auto& l) { return l.rfind("HEAD /test-org/", 0) == 0; }));
}

TEST_F(Hub, WarmCacheMakesNoRequest) {
  start();
  std::string first = resolve_model(kRepo, opt_);
  size_t n = server_->request_count();
  EXPECT_GT(n, 0u);
  EXPECT_EQ(resolve_model(kRepo, opt_), first);
  EXPECT_EQ(server_->request_count(), n);
  EXPECT_EQ(hub_file(kRepo, "tokenizer.json", opt_, true), "");  // the .no_exist marker answers
  EXPECT_EQ(server_->request_count(), n);
  server_->stop();
  EXPECT_EQ(resolve_model(kRepo, opt_), first);  // nothing listens any more
}

TEST_F(Hub, OfflineUsesTheCache) {
  start();
  std::string snap = resolve_model(kRepo, opt_);
  server_->stop();
  ::setenv("HF_HUB_OFFLINE", "1", 1);
  EXPECT_EQ(resolve_model(kRepo, opt_), snap);
  HubOptions pinned = opt_;
  pinned.revision = kCommit;  // a commit hash names the snapshot folder directly
  EXPECT_EQ(hub_file(kRepo, "config.json", pinned), (snapshot() / "config.json").string());
  ::unsetenv("HF_HUB_OFFLINE");
  HubOptions off = opt_;
  off.offline = true;
  EXPECT_EQ(resolve_model(kRepo, off), snap);
}

TEST_F(Hub, OfflineWithoutCacheFailsWithoutNetwork) {
  start();
  for (const char* value : {"1", "ON", "yes", "True"}) {
    ::setenv("HF_HUB_OFFLINE", value, 1);
    std::string msg = error_of([&] { resolve_model(kRepo, opt_); });
    EXPECT_NE(msg.find("test-org/tiny-clip/config.json: not in the cache"), std::string::npos) << msg;
    EXPECT_NE(msg.find("HF_HUB_OFFLINE"), std::string::npos) << msg;
    EXPECT_EQ(hub_file(kRepo, "tokenizer.json", opt_, true), "");  // optional: just absent
  }
  EXPECT_EQ(server_->request_count(), 0u);
}

TEST_F(Hub, InterruptedDownloadLeavesNoFinalFileAndResumes) {
  start({"--interrupt", "model.safetensors"});
  std::string msg = error_of([&] { resolve_model(kRepo, opt_); });
  EXPECT_NE(msg.find("test-org/tiny-clip/model.safetensors: download interrupted after 7602442 of 15204884 bytes"),
            std::string::npos)
      << msg;
  auto [git, sha] = python_hashes(fs::path(kFixture) / "model.safetensors");
  EXPECT_FALSE(fs::exists(storage() / "blobs" / sha));
  EXPECT_FALSE(fs::is_symlink(snapshot() / "model.safetensors"));
  for (const auto& p : incomplete_files(cache_)) EXPECT_EQ(fs::path(p).filename(), sha + ".incomplete");

  start();  // the server is fixed
  EXPECT_EQ(resolve_model(kRepo, opt_), snapshot().string());
  EXPECT_EQ(read_all(snapshot() / "model.safetensors"), read_all(fs::path(kFixture) / "model.safetensors"));
  EXPECT_TRUE(incomplete_files(cache_).empty());
  auto log = server_->requests();
  EXPECT_TRUE(std::any_of(log.begin(), log.end(), [](auto& l) {
    return l.find("bytes=7602442-") != std::string::npos;
  })) << "the retry did not resume";
}

TEST_F(Hub, InterruptedDownloadRestartsWhenTheServerIgnoresRanges) {
  start({"--interrupt", "model.safetensors"});
  EXPECT_NE(error_of([&] { resolve_model(kRepo, opt_); }).find("download interrupted"), std::string::npos);
  EXPECT_FALSE(incomplete_files(cache_).empty());
  start({"--no-range"});
  EXPECT_EQ(resolve_model(kRepo, opt_), snapshot().string());
  EXPECT_EQ(read_all(snapshot() / "model.safetensors"), read_all(fs::path(kFixture) / "model.safetensors"));
  EXPECT_TRUE(incomplete_files(cache_).empty());
}

TEST_F(Hub, StalledServerTimesOut) {
  start({"--stall", "model.safetensors"});
  opt_.timeout_s = 1;
  auto t0 = std::chrono::steady_clock::now();
  std::string msg = error_of([&] { resolve_model(kRepo, opt_); });
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(msg.find("download interrupted after 7602442 of 15204884 bytes"), std::string::npos) << msg;
  EXPECT_LT(secs, 10.0);  // the server would stall for 60 s
  EXPECT_FALSE(fs::is_symlink(snapshot() / "model.safetensors"));
}

TEST_F(Hub, CorruptBytesAreRejected) {
  start({"--corrupt", "model.safetensors"});
  std::string msg = error_of([&] { resolve_model(kRepo, opt_); });
  EXPECT_NE(msg.find("test-org/tiny-clip/model.safetensors: the downloaded bytes do not match their sha256"),
            std::string::npos)
      << msg;
  EXPECT_FALSE(fs::is_symlink(snapshot() / "model.safetensors"));
  EXPECT_TRUE(incomplete_files(cache_).empty());
  auto [git, sha] = python_hashes(fs::path(kFixture) / "model.safetensors");
  EXPECT_FALSE(fs::exists(storage() / "blobs" / sha));
}

TEST_F(Hub, TokenIsSentFromOptionsEnvironmentOrTokenFile) {
  start({"--token", "s3cret"});
  std::string msg = error_of([&] { resolve_model(kRepo, opt_); });
  EXPECT_NE(msg.find("HTTP 401"), std::string::npos) << msg;
  EXPECT_NE(msg.find("HF_TOKEN"), std::string::npos) << msg;
  ::setenv("HF_TOKEN", "wrong", 1);
  msg = error_of([&] { resolve_model(kRepo, opt_); });
  EXPECT_NE(msg.find("token from HF_TOKEN was refused"), std::string::npos) << msg;
  ::setenv("HF_TOKEN", "s3cret", 1);
  EXPECT_EQ(resolve_model(kRepo, opt_), snapshot().string());
  EXPECT_EQ(read_all(snapshot() / "model.safetensors"), read_all(fs::path(kFixture) / "model.safetensors"));
  ::unsetenv("HF_TOKEN");

  opt_.cache_dir = (tmp_ / "cache2").string();
  write_all(tmp_ / "hf_home" / "token", "s3cret\n");  // `huggingface-cli login` writes $HF_HOME/token
  EXPECT_NO_THROW(hub_file(kRepo, "config.json", opt_));
  fs::remove(tmp_ / "hf_home" / "token");

  opt_.cache_dir = (tmp_ / "cache3").string();
  opt_.token = "s3cret";
  EXPECT_NO_THROW(hub_file(kRepo, "config.json", opt_));
}

TEST_F(Hub, NotFoundErrors) {
  start();
  std::string msg = error_of([&] { resolve_model("nobody/missing", opt_); });
  EXPECT_EQ(msg.rfind("nobody/missing: repository not found", 0), 0u) << msg;
  msg = error_of([&] { hub_file(kRepo, "nope.txt", opt_); });
  EXPECT_EQ(msg, "test-org/tiny-clip: file nope.txt not found at revision main");
  EXPECT_EQ(hub_file(kRepo, "nope.txt", opt_, /*optional=*/true), "");
  EXPECT_TRUE(fs::is_regular_file(storage() / ".no_exist" / kCommit / "nope.txt"));
  HubOptions v9 = opt_;
  v9.revision = "v9";
  msg = error_of([&] { hub_file(kRepo, "config.json", v9); });
  EXPECT_EQ(msg, "test-org/tiny-clip: revision v9 not found");
}

TEST_F(Hub, ShardedWeightsAndNestedFiles) {
  fs::path repo = tmp_ / "sharded";
  fs::create_directories(repo);
  for (const auto& f : kModelFiles)
    if (f != "model.safetensors") fs::copy_file(fs::path(kFixture) / f, repo / f);
  write_sharded(fs::path(kFixture) / "model.safetensors", repo);
  write_all(repo / "nested" / "dir" / "extra.json", "{\"nested\": true}\n");
  start({}, repo.string());

  EXPECT_EQ(resolve_model(kRepo, opt_), snapshot().string());
  for (const char* f : {"model.safetensors.index.json", "model-00001-of-00002.safetensors",
                        "model-00002-of-00002.safetensors", "config.json", "merges.txt"})
    EXPECT_EQ(read_all(snapshot() / f), read_all(repo / f)) << f;
  EXPECT_FALSE(fs::exists(snapshot() / "model.safetensors"));
  EXPECT_TRUE(fs::is_regular_file(storage() / ".no_exist" / kCommit / "model.safetensors"));

  std::string nested = hub_file(kRepo, "nested/dir/extra.json", opt_);
  EXPECT_EQ(nested, (snapshot() / "nested" / "dir" / "extra.json").string());
  auto [git, sha] = python_hashes(repo / "nested" / "dir" / "extra.json");
  EXPECT_EQ(fs::read_symlink(nested).string(), "../../../../blobs/" + git);
  EXPECT_EQ(read_all(nested), "{\"nested\": true}\n");

  size_t n = server_->request_count();
  EXPECT_EQ(resolve_model(kRepo, opt_), snapshot().string());
  EXPECT_EQ(server_->request_count(), n);
}

// The files resolve_model asked the hub about (HEAD /<repo>/resolve/<rev>/<file>), in order.
std::vector<std::string> probed(const std::vector<std::string>& log) {
  std::vector<std::string> out;
  const std::string head = "HEAD /" + kRepo + "/resolve/";
  for (const auto& l : log) {
    if (l.rfind(head, 0) != 0) continue;
    size_t file = l.find('/', head.size()) + 1;
    out.push_back(l.substr(file, l.find(' ', file) - file));
  }
  return out;
}

// Every file of a snapshot folder (relative names, sorted).
std::vector<std::string> snapshot_files(const fs::path& dir) {
  std::vector<std::string> out;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (!fs::is_directory(e.path())) out.push_back(e.path().lexically_relative(dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

// A repo folder with the fixture's config and tokenizer files (no weights) plus `extra` files of made-up bytes
// (resolve_model only downloads weights; reading them is WeightStore's job).
fs::path make_repo(const fs::path& dir, const std::vector<std::string>& extra, bool config_json = true) {
  fs::create_directories(dir);
  for (const auto& f : kModelFiles)
    if (f != "model.safetensors" && (config_json || f != "config.json")) fs::copy_file(fs::path(kFixture) / f, dir / f);
  for (const auto& f : extra) write_all(dir / f, "bytes of " + f);
  return dir;
}

const std::vector<std::string> kTokenizerProbes = {
    "preprocessor_config.json", "vocab.json",  "merges.txt", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json",  "spiece.model"};

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST_F(Hub, PytorchBinOnlyRepo) {
  fs::path repo = make_repo(tmp_ / "binonly", {"pytorch_model.bin"});
  start({}, repo.string());
  EXPECT_EQ(resolve_model(kRepo, opt_), snapshot().string());
  // transformers' order: safetensors and its index probed (404), then pytorch_model.bin; nothing after it.
  EXPECT_EQ(probed(server_->requests()),
            concat(concat({"config.json"}, kTokenizerProbes),
                   {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"}));
  EXPECT_EQ(snapshot_files(snapshot()), snapshot_files(repo));  // the cache holds exactly what exists
  EXPECT_EQ(read_all(snapshot() / "pytorch_model.bin"), "bytes of pytorch_model.bin");
  for (const char* f : {"model.safetensors", "model.safetensors.index.json"})
    EXPECT_TRUE(fs::is_regular_file(storage() / ".no_exist" / kCommit / f)) << f;
  size_t n = server_->request_count();
  EXPECT_EQ(resolve_model(kRepo, opt_), snapshot().string());  // warm: the markers answer, no request
  EXPECT_EQ(server_->request_count(), n);
}

TEST_F(Hub, PytorchBinShardedRepo) {
  const std::vector<std::string> shards = {"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"};
  fs::path repo = make_repo(tmp_ / "binshards", shards);
  write_all(
      repo / "pytorch_model.bin.index.json",
      Json({{"metadata", {{"total_size", 8}}}, {"weight_map", {{"a", shards[0]}, {"b", shards[1]}, {"c", shards[1]}}}})
          .dump());
  start({}, repo.string());
  EXPECT_EQ(resolve_model(kRepo, opt_), snapshot().string());
  EXPECT_EQ(probed(server_->requests()),
            concat(concat({"config.json"}, kTokenizerProbes),
                   {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                    "pytorch_model.bin.index.json", shards[0], shards[1]}));
  EXPECT_EQ(snapshot_files(snapshot()), snapshot_files(repo));
}

TEST_F(Hub, OpenClipOnlyRepo) {
  fs::path repo = make_repo(tmp_ / "openclip", {"open_clip_config.json", "open_clip_pytorch_model.bin"},
                            /*config_json=*/false);
  start({}, repo.string());
  EXPECT_EQ(resolve_model(kRepo, opt_), snapshot().string());
  // No config.json: open_clip_config.json pins the commit, then open_clip's order up to the first file found.
  EXPECT_EQ(probed(server_->requests()), concat(concat({"config.json", "open_clip_config.json"}, kTokenizerProbes),
                                                {"open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                                                 "open_clip_pytorch_model.bin"}));
  EXPECT_EQ(snapshot_files(snapshot()), snapshot_files(repo));
  const std::vector<std::string> order = open_clip_weight_files();
  EXPECT_EQ(std::vector<std::string>(order.begin(), order.begin() + 3),
            (std::vector<std::string>{"open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                                      "open_clip_pytorch_model.bin"}));

  // Without any weights: one error naming what was looked for.
  fs::remove(repo / "open_clip_pytorch_model.bin");
  opt_.cache_dir = (tmp_ / "cache2").string();
  std::string msg = error_of([&] { resolve_model(kRepo, opt_); });
  EXPECT_EQ(msg.rfind("test-org/tiny-clip: no weights (open_clip_model.safetensors, ", 0), 0u) << msg;
  EXPECT_NE(msg.find(" or model.pth) found at revision " + kCommit), std::string::npos) << msg;
}

TEST_F(Hub, TransformersConfigWinsOverOpenClip) {
  fs::path repo =
      make_repo(tmp_ / "both", {"open_clip_config.json", "open_clip_model.safetensors", "model.safetensors"});
  start({}, repo.string());
  EXPECT_EQ(resolve_model(kRepo, opt_), snapshot().string());
  EXPECT_EQ(probed(server_->requests()), concat(concat({"config.json"}, kTokenizerProbes), {"model.safetensors"}));
  EXPECT_FALSE(fs::exists(snapshot() / "open_clip_config.json"));
  EXPECT_FALSE(fs::exists(snapshot() / "open_clip_model.safetensors"));
}

TEST_F(Hub, NoConfigAtAllIsTheUsualError) {
  fs::path repo = make_repo(tmp_ / "noconfig", {"model.safetensors"}, /*config_json=*/false);
  start({}, repo.string());
  EXPECT_EQ(error_of([&] { resolve_model(kRepo, opt_); }),
            "test-org/tiny-clip: file config.json not found at revision main");
}

TEST_F(Hub, CacheMadeByHuggingfaceHubIsFoundOffline) {
  // The layout huggingface_hub writes: refs/main, blobs/<etag>, snapshots/<commit>/<file> -> ../../blobs/<etag>.
  const std::string commit = "0123456789abcdef0123456789abcdef01234567";
  fs::path repo = cache_ / "models--acme--clip";
  for (const auto& f : kModelFiles) {
    auto [git, sha] = python_hashes(fs::path(kFixture) / f);
    std::string blob = f == "model.safetensors" ? sha : git;
    fs::create_directories(repo / "blobs");
    fs::copy_file(fs::path(kFixture) / f, repo / "blobs" / blob, fs::copy_options::overwrite_existing);
    fs::create_directories(repo / "snapshots" / commit);
    fs::create_symlink("../../blobs/" + blob, repo / "snapshots" / commit / f);
  }
  write_all(repo / "refs" / "main", commit);
  opt_.endpoint = "http://127.0.0.1:" + std::to_string(closed_port());

  ::setenv("HF_HUB_OFFLINE", "1", 1);
  std::string snap = resolve_model("acme/clip", opt_);
  EXPECT_EQ(snap, (repo / "snapshots" / commit).string());
  EXPECT_EQ(read_all(fs::path(snap) / "vocab.json"), read_all(fs::path(kFixture) / "vocab.json"));
  ::unsetenv("HF_HUB_OFFLINE");
  EXPECT_EQ(resolve_model("acme/clip", opt_), snap);  // online, but all cached: no network needed

  // Found through the environment too: HF_HUB_CACHE, then HF_HOME/hub.
  HubOptions env_opt = opt_;
  env_opt.cache_dir.clear();
  env_opt.offline = true;
  ::setenv("HF_HUB_CACHE", cache_.c_str(), 1);
  EXPECT_EQ(resolve_model("acme/clip", env_opt), snap);
  ::unsetenv("HF_HUB_CACHE");
  fs::create_directories(tmp_ / "hf_home");
  fs::rename(cache_, tmp_ / "hf_home" / "hub");
  EXPECT_EQ(hub_file("acme/clip", "config.json", env_opt),
            (tmp_ / "hf_home" / "hub" / "models--acme--clip" / "snapshots" / commit / "config.json").string());
}

TEST_F(Hub, GetOnlyServer) {
  start({"--no-head"});
  EXPECT_EQ(resolve_model(kRepo, opt_), snapshot().string());
  for (const auto& f : kModelFiles) {
    auto [git, sha] = python_hashes(fs::path(kFixture) / f);
    EXPECT_EQ(fs::read_symlink(snapshot() / f).string(), "../../blobs/" + (f == "model.safetensors" ? sha : git)) << f;
    EXPECT_EQ(read_all(snapshot() / f), read_all(fs::path(kFixture) / f)) << f;
  }
  EXPECT_TRUE(incomplete_files(cache_).empty());
  EXPECT_EQ(error_of([&] { hub_file(kRepo, "nope.txt", opt_); }),
            "test-org/tiny-clip: file nope.txt not found at revision main");
  EXPECT_EQ(hub_file(kRepo, "nope.txt", opt_, true), "");
  EXPECT_TRUE(incomplete_files(cache_).empty());
  EXPECT_EQ(std::distance(fs::directory_iterator(storage() / "blobs"), fs::directory_iterator()), 7);
}

TEST_F(Hub, ConcurrentDownloadsOfOneModel) {
  start();
  std::string a, b, ea, eb;
  std::thread t1([&] { ea = error_of([&] { a = resolve_model(kRepo, opt_); }); });
  std::thread t2([&] { eb = error_of([&] { b = resolve_model(kRepo, opt_); }); });
  t1.join();
  t2.join();
  EXPECT_EQ(ea, "(no error)");
  EXPECT_EQ(eb, "(no error)");
  EXPECT_EQ(a, snapshot().string());
  EXPECT_EQ(b, a);
  EXPECT_EQ(read_all(snapshot() / "model.safetensors"), read_all(fs::path(kFixture) / "model.safetensors"));
}

TEST_F(Hub, ConnectionRefusedNamesTheEndpoint) {
  opt_.endpoint = "http://127.0.0.1:" + std::to_string(closed_port());
  auto t0 = std::chrono::steady_clock::now();
  std::string msg = error_of([&] { resolve_model(kRepo, opt_); });
  EXPECT_EQ(msg.rfind("test-org/tiny-clip/config.json: cannot reach " + opt_.endpoint, 0), 0u) << msg;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

TEST_F(Hub, ResolveModelLocalPaths) {
  EXPECT_EQ(resolve_model(kFixture, opt_), kFixture);
  fs::create_directories(tmp_ / "home" / "mymodel");
  ::setenv("HOME", (tmp_ / "home").c_str(), 1);
  EXPECT_EQ(resolve_model("~/mymodel", opt_), (tmp_ / "home" / "mymodel").string());
  fs::path cwd = fs::current_path();
  fs::current_path(tmp_);
  fs::create_directories(tmp_ / "org" / "name");
  EXPECT_EQ(resolve_model("./home", opt_), "./home");
  EXPECT_EQ(resolve_model("org/name", opt_), "org/name");  // an existing folder wins over a hub id
  EXPECT_FALSE(is_hub_id("org/name"));
  EXPECT_TRUE(is_hub_id("org/other"));
  std::string msg = error_of([&] { resolve_model("./missing", opt_); });
  fs::current_path(cwd);
  EXPECT_EQ(msg, "./missing: no such file or directory");
  EXPECT_EQ(error_of([&] { resolve_model("/nonexistent/model", opt_); }),
            "/nonexistent/model: no such file or directory");
}

TEST_F(Hub, InvalidIdsFileNamesAndRevisions) {
  for (const char* ok : {"openai/clip-vit-base-patch32", "gpt2", "Foo-BAR_foo.bar123", "a/b", "123"})
    EXPECT_EQ(repo_id_error(ok), "") << ok;
  std::string name96(96, 'a'), name97(97, 'a');
  EXPECT_EQ(repo_id_error("org/" + name96), "");
  for (const std::string& bad : std::vector<std::string>{"a/b/c", "-ab/c", "ab/c-", "a--b/c", "a/b..c", "a/b.git",
                                                         "a b/c", "org/", "/x", "caf\xc3\xa9/x", "org/" + name97, ""}) {
    EXPECT_NE(repo_id_error(bad), "") << bad;
  }
  for (const std::string bad : {"a/b/c", "a--b/c", "org/x.git", "bad name"}) {
    std::string msg = error_of([&] { resolve_model(bad, opt_); });
    EXPECT_EQ(msg.rfind(bad + ": no such local folder, and not a valid Hugging Face model id", 0), 0u) << msg;
  }
  EXPECT_NE(error_of([&] { hub_file(kRepo, "../../etc/passwd", opt_); }).find("invalid file name"), std::string::npos);
  EXPECT_NE(error_of([&] { hub_file(kRepo, "/etc/passwd", opt_); }).find("invalid file name"), std::string::npos);
  HubOptions bad_rev = opt_;
  bad_rev.revision = "../../x";
  EXPECT_NE(error_of([&] { hub_file(kRepo, "config.json", bad_rev); }).find("invalid revision"), std::string::npos);
  EXPECT_NE(error_of([&] { hub_file("a--b/c", "config.json", opt_); }).find("invalid model id"), std::string::npos);
}

TEST_F(Hub, CacheDirPrecedence) {
  HubOptions o;
  ::setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(hub_cache_dir(o), (tmp_ / "hf_home" / "hub").string());  // SetUp sets HF_HOME
  ::unsetenv("HF_HOME");
  EXPECT_EQ(hub_cache_dir(o), "/home/someone/.cache/huggingface/hub");
  ::setenv("XDG_CACHE_HOME", "/xdg", 1);
  EXPECT_EQ(hub_cache_dir(o), "/xdg/huggingface/hub");
  ::setenv("HF_HOME", "~/hf", 1);
  EXPECT_EQ(hub_cache_dir(o), "/home/someone/hf/hub");
  ::setenv("ZS_TEST_ROOT", "/data", 1);
  ::setenv("HUGGINGFACE_HUB_CACHE", "${ZS_TEST_ROOT}/legacy", 1);
  EXPECT_EQ(hub_cache_dir(o), "/data/legacy");
  ::setenv("HF_HUB_CACHE", "$ZS_TEST_ROOT/hub", 1);
  EXPECT_EQ(hub_cache_dir(o), "/data/hub");
  o.cache_dir = "/explicit";
  EXPECT_EQ(hub_cache_dir(o), "/explicit");
  EXPECT_EQ(repo_cache_dir("openai/clip-vit-base-patch32", o), "/explicit/models--openai--clip-vit-base-patch32");
  ::unsetenv("ZS_TEST_ROOT");
}

TEST(Progress, Formatting) {
  EXPECT_EQ(util::format_bytes(532), "532 B");
  EXPECT_EQ(util::format_bytes(15204884), "15.2 MB");
  EXPECT_EQ(util::format_bytes(1.5e9), "1.50 GB");
  EXPECT_EQ(util::format_duration(75), "1:15");
  EXPECT_EQ(util::format_duration(3723), "1:02:03");
  std::string half = util::progress_line("model.safetensors", 500, 1000, 100, 100);
  EXPECT_NE(half.find(" 50% |"), std::string::npos) << half;
  EXPECT_NE(half.find("ETA 0:05"), std::string::npos) << half;
  EXPECT_LE(half.size(), 100u);
  std::string unknown = util::progress_line("x", 500, 0, 0, 100);
  EXPECT_EQ(unknown.find('%'), std::string::npos) << unknown;
}

}  // namespace
}  // namespace zeroshot::io
