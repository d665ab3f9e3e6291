#include "util/trace.h"

#include <time.h>  // NOLINT(modernize-deprecated-headers): POSIX clock_gettime, not in <ctime>'s std::
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace zeroshot::trace {

namespace {

double clock_ms(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

// Process start on the CLOCK_BOOTTIME scale (field 22 of /proc/self/stat, in clock ticks since boot); negative
// when it cannot be read.
double process_start_ms() {
  std::ifstream in("/proc/self/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = s.rfind(')');  // the command name may hold spaces and parentheses
  if (paren == std::string::npos) return -1;
  std::istringstream fields(s.substr(paren + 2));
  std::string f;
  for (int i = 3; i <= 22 && fields >> f; ++i)
    if (i == 22) return std::strtod(f.c_str(), nullptr) * 1e3 / static_cast<double>(sysconf(_SC_CLK_TCK));
  return -1;
}

struct Origin {
  bool on = false;
  double boot_offset = 0;  // CLOCK_BOOTTIME ms at process start
  Origin() {
    const char* v = std::getenv("ZEROSHOT_TRACE");
    on = v && *v && std::strcmp(v, "0") != 0;
    if (!on) return;
    const double start = process_start_ms();
    boot_offset = start >= 0 ? start : clock_ms(CLOCK_BOOTTIME);
  }
};

const Origin& origin() {
  static const Origin o;
  return o;
}

}  // namespace

bool enabled() { return origin().on; }

double now_ms() { return clock_ms(CLOCK_BOOTTIME) - origin().boot_offset; }

double cpu_ms() { return clock_ms(CLOCK_PROCESS_CPUTIME_ID); }

void note(const char* what) {
  if (enabled())
    std::fprintf(stderr, "zeroshot trace: %s  (cpu %.1f ms in all, at %.1f ms)\n", what, cpu_ms(), now_ms());
}

Phase::~Phase() {
  if (!name_) return;
  const double end = now_ms();
  std::fprintf(stderr, "zeroshot trace: %7.1f ms  %s  (cpu %.1f ms, at %.1f ms)\n", end - start_, name_,
               cpu_ms() - cpu_start_, end);
}

}  // namespace zeroshot::trace
