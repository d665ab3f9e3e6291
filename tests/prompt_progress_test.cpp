// Progress while label prompts are encoded: ClassifierOptions::progress as the API calls it, and the "prompts" bar
// `classify` and `moderate` draw with it on a terminal. The terminal is real: the CLI runs with stderr on a
// pseudo-terminal (forkpty) and stdout on a file, so the JSON it prints can be compared with a run without one.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include "support/cli.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "zeroshot/zeroshot.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

const std::string kModel = clip_dir("clip-tiny-quickgelu");

struct TtyResult {
  int code = -1;
  std::string out;       // stdout (a file)
  std::string terminal;  // what the program wrote to the terminal (stderr)
};

// Runs the CLI with stderr (and stdin) on a pseudo-terminal and stdout into a file, its caches under `home`.
TtyResult run_on_terminal(const TempDir& home, const Args& args) {
  const std::string out = home / "stdout";
  std::vector<std::string> argv = {zeroshot_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> ptrs;
  ptrs.reserve(argv.size() + 1);
  for (auto& s : argv) ptrs.push_back(s.data());
  ptrs.push_back(nullptr);
  // The environment is made before fork: the child of a threaded process may only make async-signal-safe calls.
  const std::vector<std::pair<std::string, std::string>> set = {{"HF_HOME", home / "hf"},
                                                                {"HF_HUB_CACHE", home / "hf/hub"},
                                                                {"XDG_CACHE_HOME", home / "xdg"},
                                                                {"XDG_DATA_HOME", home / "data"},
                                                                {"HF_HUB_OFFLINE", "1"}};
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e, key = kv.substr(0, kv.find('='));
    bool replaced = key == "HF_HUB_DISABLE_PROGRESS_BARS";
    for (const auto& [k, v] : set) replaced = replaced || key == k;
    if (!replaced) env.push_back(kv);
  }
  for (const auto& [k, v] : set) env.push_back(k + "=" + v);
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  winsize ws{};
  ws.ws_row = 24;
  ws.ws_col = 120;
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, &ws);
  if (pid == 0) {
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ::dup2(fd, STDOUT_FILENO) < 0) ::_exit(126);
    ::execve(ptrs[0], ptrs.data(), envp.data());
    ::_exit(127);
  }
  TtyResult r;
  if (pid < 0) {
    ADD_FAILURE() << "forkpty failed: " << std::strerror(errno);
    return r;
  }
  char buf[4096];
  for (;;) {  // until the child closes the terminal (EIO on Linux) or EOF
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n > 0) r.terminal.append(buf, static_cast<size_t>(n));
    else if (n < 0 && errno == EINTR) continue;
    else break;
  }
  ::close(master);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out);
  return r;
}

}  // namespace

// (0, total) first, then growing counts up to (total, total); nothing when the embeddings come from the cache.
TEST(PromptProgress, ApiReportsEncodedPromptsAndNothingFromTheCache) {
  const auto model = Model::load(kModel);
  TempDir cache("cache");
  std::vector<std::pair<size_t, size_t>> calls;
  ClassifierOptions o;
  o.cache_dir = cache.str();
  o.progress = [&](size_t done, size_t total) { calls.emplace_back(done, total); };
  std::vector<std::string> labels;
  labels.reserve(700);
  for (int i = 0; i < 700; ++i) labels.push_back("thing number " + std::to_string(i));
  const std::vector<std::string> templates = {"a photo of {}.", "a drawing of {}."};
  const ZeroShotClassifier computed(*model, labels, templates, o);
  EXPECT_FALSE(computed.label_embeddings_cached());
  ASSERT_GE(calls.size(), 3u);  // 1,400 prompts: at least two groups
  EXPECT_EQ(calls.front(), std::make_pair(size_t{0}, size_t{1400}));
  EXPECT_EQ(calls.back(), std::make_pair(size_t{1400}, size_t{1400}));
  for (size_t i = 1; i < calls.size(); ++i) {
    EXPECT_GT(calls[i].first, calls[i - 1].first);
    EXPECT_EQ(calls[i].second, 1400u);
  }
  calls.clear();
  const ZeroShotClassifier cached(*model, labels, templates, o);
  EXPECT_TRUE(cached.label_embeddings_cached());
  EXPECT_TRUE(calls.empty());
  EXPECT_EQ(cached.label_embeddings().data, computed.label_embeddings().data);
}

// ImageNet x imagenet7 (7,000 prompts) on a terminal: a "prompts" bar on stderr; stdout's JSON is byte for byte
// that of a run without a terminal. No bar with --quiet, for a few labels, or when the label cache has them.
TEST(PromptProgress, ClassifyDrawsABarOnATerminalAndTheJsonIsUnchanged) {
  const Args args = {"classify",
                     "-m",
                     kModel,
                     "--labels",
                     "imagenet",
                     "--templates",
                     "imagenet7",
                     "-f",
                     "json",
                     "-k",
                     "3",
                     image_path("chelsea.png"),
                     image_path("horse.png")};
  const CliResult plain = run_cli(args + Args{"--no-cache"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_EQ(plain.err.find("prompts"), std::string::npos) << plain.err;  // not a terminal: nothing drawn

  TempDir home("home");
  const TtyResult tty = run_on_terminal(home, args);
  ASSERT_EQ(tty.code, 0) << tty.terminal;
  EXPECT_NE(tty.terminal.find("prompts"), std::string::npos) << tty.terminal;
  EXPECT_NE(tty.terminal.find("7000/7000"), std::string::npos) << tty.terminal;
  EXPECT_EQ(tty.out, plain.out);
  ASSERT_EQ(json_lines(tty.out).size(), 2u);

  const TtyResult again = run_on_terminal(home, args);  // the label cache has them now
  ASSERT_EQ(again.code, 0) << again.terminal;
  EXPECT_EQ(again.terminal.find("prompts"), std::string::npos) << again.terminal;
  EXPECT_EQ(again.out, plain.out);

  const TtyResult quiet = run_on_terminal(home, args + Args{"-q", "--no-cache"});
  ASSERT_EQ(quiet.code, 0) << quiet.terminal;
  EXPECT_EQ(quiet.terminal.find("prompts"), std::string::npos) << quiet.terminal;
  EXPECT_EQ(quiet.out, plain.out);

  const TtyResult few = run_on_terminal(
      home, {"classify", "-m", kModel, "-l", "cat,dog", "--no-cache", "-f", "json", image_path("chelsea.png")});
  ASSERT_EQ(few.code, 0) << few.terminal;
  EXPECT_EQ(few.terminal.find("prompts"), std::string::npos) << few.terminal;
}
