// Running the built `zeroshot` binary as a user runs it, from a test.
//
// The arguments are an argv list handed to posix_spawn: no shell sees them, so a path with spaces or quotes
// reaches the program verbatim and nothing needs quoting. The child gets:
//  - stdin: the bytes of CliOptions::stdin_bytes (through a file), else /dev/null;
//  - stdout/stderr: captured into files of the run's own folder and returned whole;
//  - the caller's environment with HF_HOME, HF_HUB_CACHE, XDG_CACHE_HOME and XDG_DATA_HOME pointing into
//    CliOptions::home (hf/, hf/hub/, xdg/, data/), or into a fresh TempDir removed after the run, so no test
//    reads or writes the user's caches; HF_HUB_OFFLINE=1 unless `offline` is false; then CliOptions::env on top
//    (an entry there replaces any of the above).
// The exit code is the program's, or 128 + N when signal N ended it. A run past `timeout_s` is killed (SIGKILL:
// code 137), flagged `timed_out` and reported as a test failure; so is a failure to start the program (code -1).
// Not thread-safe: one CliProcess per thread.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/json.h"
#include "support/temp_dir.h"

namespace zeroshot::testing {

// An argument list; `a + b` joins two (for a shared prefix of options).
using Args = std::vector<std::string>;
Args operator+(Args a, const Args& b);

struct CliResult {
  int code = -1;
  std::string out, err;
  bool timed_out = false;
};

struct CliOptions {
  std::string home;                                      // folder for the HF and XDG dirs; "" = a fresh one per run
  std::string stdin_bytes;                               // "" = stdin is /dev/null
  std::vector<std::pair<std::string, std::string>> env;  // extra variables (win over the defaults)
  bool offline = true;                                   // HF_HUB_OFFLINE=1
  double timeout_s = 540;  // below ctest's 600 s, so a hung child is reported by the test, not by ctest
  std::string binary;      // "" = <build>/zeroshot
};

// The built CLI: <build dir>/zeroshot.
std::string zeroshot_binary();

// A started child. The destructor kills (SIGKILL) and reaps one still running.
class CliProcess {
 public:
  explicit CliProcess(const Args& args, const CliOptions& options = {});
  ~CliProcess();
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;

  pid_t pid() const { return pid_; }
  // True while the child runs (reaps it, without blocking, once it has ended).
  bool running();
  // Sends `sig`; the exit code then reads 128 + sig.
  void kill(int sig);
  // Waits for the end (or the timeout), then returns the exit code and the output.
  CliResult wait();

 private:
  void reap(int status);
  std::unique_ptr<TempDir> scratch_;  // the captured output, and the HF/XDG dirs without CliOptions::home
  double timeout_s_;
  pid_t pid_ = -1;
  bool done_ = false;
  int code_ = -1;
  bool timed_out_ = false;
};

// Runs the CLI to the end: CliProcess(args, options).wait().
CliResult run_cli(const Args& args, const CliOptions& options = {});
// run_cli with CliOptions::home = `home` (caches kept from run to run) and `env` added.
CliResult run_cli_in(const std::string& home, const Args& args,
                     const std::vector<std::pair<std::string, std::string>>& env = {});
// run_cli_in(home, args) with ZEROSHOT_TRACE=1: stderr also lists the phases the run went through.
CliResult run_cli_traced(const TempDir& home, const Args& args);

// The output of a `--format json` run: one JSON value per non-empty line (zeroshot::Error for a bad line).
std::vector<io::Json> json_lines(const std::string& out);
// How many entries the label-embedding cache holds for runs in `home` ($XDG_CACHE_HOME/zeroshot/label-embeddings).
size_t label_cache_files(const std::string& home);

}  // namespace zeroshot::testing
