// Phase timings on stderr for finding where start-up time goes: set ZEROSHOT_TRACE=1.
//
//   { trace::Phase p("load tokenizer"); ... }
//   // prints "zeroshot trace:   12.3 ms  load tokenizer  (cpu 11.9 ms, at 40.1 ms)"
//
// The first number is wall time; "cpu" is the CPU time of the whole process (all threads) over the phase, which
// stays meaningful on a loaded machine; "at" is the time since the process started (from /proc/self/stat, 10 ms
// resolution, so it includes the dynamic loader) when that can be read, else since the first trace call.
// Costs one getenv the first time when disabled.
#pragma once

#include <chrono>

namespace zeroshot::trace {

bool enabled();
// Milliseconds since the process started (see above).
double now_ms();
// CPU milliseconds used by the process so far (all threads).
double cpu_ms();
// A one-off line: "zeroshot trace: <what>  (at T ms)".
void note(const char* what);

class Phase {
 public:
  explicit Phase(const char* name)
      : name_(enabled() ? name : nullptr), start_(name_ ? now_ms() : 0), cpu_start_(name_ ? cpu_ms() : 0) {}
  ~Phase();
  Phase(const Phase&) = delete;
  Phase& operator=(const Phase&) = delete;

 private:
  const char* name_;
  double start_;
  double cpu_start_;
};

}  // namespace zeroshot::trace
