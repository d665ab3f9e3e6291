#include "support/cli.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX kill(), not <csignal>'s std::signal
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <sstream>
#include <thread>

extern char** environ;

namespace zeroshot::testing {

namespace fs = std::filesystem;

Args operator+(Args a, const Args& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::string zeroshot_binary() { return std::string(ZEROSHOT_BINARY_DIR) + "/zeroshot"; }

namespace {

// The caller's environment with `set` replacing (or adding) its variables.
std::vector<std::string> child_environment(const std::map<std::string, std::string>& set) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    const std::string key = eq ? std::string(*e, static_cast<size_t>(eq - *e)) : std::string(*e);
    if (!set.count(key)) env.emplace_back(*e);
  }
  for (const auto& [k, v] : set) env.push_back(k + "=" + v);
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> p;
  p.reserve(strings.size() + 1);
  for (auto& s : strings) p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

}  // namespace

CliProcess::CliProcess(const Args& args, const CliOptions& o)
    : scratch_(std::make_unique<TempDir>("cli")), timeout_s_(o.timeout_s) {
  const fs::path home = o.home.empty() ? scratch_->path : fs::path(o.home);
  std::map<std::string, std::string> set = {
      {"HF_HOME", (home / "hf").string()},
      {"HF_HUB_CACHE", (home / "hf" / "hub").string()},
      {"XDG_CACHE_HOME", (home / "xdg").string()},
      {"XDG_DATA_HOME", (home / "data").string()},
  };
  if (o.offline) set.emplace("HF_HUB_OFFLINE", "1");
  for (const auto& [k, v] : o.env) set[k] = v;
  std::vector<std::string> env = child_environment(set);

  std::vector<std::string> argv = {o.binary.empty() ? zeroshot_binary() : o.binary};
  argv.insert(argv.end(), args.begin(), args.end());

  const std::string in = o.stdin_bytes.empty() ? "/dev/null" : scratch_->file("stdin", o.stdin_bytes);
  const std::string out = *scratch_ / "stdout", err = *scratch_ / "stderr";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  auto argp = pointers(argv);
  auto envp = pointers(env);
  const int rc = ::posix_spawn(&pid_, argv[0].c_str(), &fa, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << std::strerror(rc);
    pid_ = -1;
    done_ = true;
  }
}

CliProcess::~CliProcess() {
  if (!done_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
}

void CliProcess::reap(int st) {
  done_ = true;
  code_ = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

bool CliProcess::running() {
  if (done_) return false;
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) == pid_) reap(st);
  return !done_;
}

void CliProcess::kill(int sig) {
  if (!done_) ::kill(pid_, sig);
}

CliResult CliProcess::wait() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s_);
  auto pause = std::chrono::microseconds(200);
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      timed_out_ = true;
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
      reap(st);
      ADD_FAILURE() << "zeroshot ran past " << timeout_s_ << " s and was killed";
      break;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(20000));
  }
  CliResult r;
  r.code = code_;
  r.timed_out = timed_out_;
  r.out = read_file(*scratch_ / "stdout");
  r.err = read_file(*scratch_ / "stderr");
  return r;
}

CliResult run_cli(const Args& args, const CliOptions& options) { return CliProcess(args, options).wait(); }

CliResult run_cli_in(const std::string& home, const Args& args,
                     const std::vector<std::pair<std::string, std::string>>& env) {
  CliOptions o;
  o.home = home;
  o.env = env;
  return run_cli(args, o);
}

CliResult run_cli_traced(const TempDir& home, const Args& args) {
  return run_cli_in(home.str(), args, {{"ZEROSHOT_TRACE", "1"}});
}

std::vector<io::Json> json_lines(const std::string& out) {
  std::vector<io::Json> v;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) v.push_back(io::parse_json(line, "output line"));
  return v;
}

size_t label_cache_files(const std::string& home) {
  const fs::path d = fs::path(home) / "xdg" / "zeroshot" / "label-embeddings";
  size_t n = 0;
  if (fs::exists(d))
    for (const auto& e : fs::directory_iterator(d)) n += e.is_regular_file();
  return n;
}

}  // namespace zeroshot::testing
