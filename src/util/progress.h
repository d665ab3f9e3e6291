// A one-line progress bar for byte transfers, drawn on stderr only when stderr is a terminal.
//
//   config.json  45% |#########           | 6.8/15.2 MB  5.1 MB/s  ETA 0:02
//
// Redraws at most ~10 times a second; finish() draws the final state and ends the line.
// Disabled (draws nothing at all) when `enabled` is false, stderr is not a TTY, or
// HF_HUB_DISABLE_PROGRESS_BARS is 1/ON/YES/TRUE (huggingface_hub's switch, honoured for familiarity).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace zeroshot::util {

// What the bar counts: bytes ("6.8/15.2 MB  5.1 MB/s") or items ("120/1000  35.2/s", e.g. images).
enum class ProgressUnit { Bytes, Items };

class ProgressBar {
 public:
  // total: expected count, 0 when unknown (then no percentage or ETA). initial: the part already there
  // (a resumed download); it counts for the bar but not for the rate.
  ProgressBar(std::string label, uint64_t total, bool enabled, uint64_t initial = 0,
              ProgressUnit unit = ProgressUnit::Bytes);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(uint64_t done);  // `done` is the absolute count so far
  void tick(uint64_t n = 1) { update(done_ + n); }
  // Erases the bar so a line can be printed to the terminal; the next update() draws it again below.
  void clear();
  void finish();  // final redraw + newline (once; also called by the destructor)
  bool active() const { return active_; }

 private:
  void draw(bool final);
  std::string label_;
  ProgressUnit unit_;
  uint64_t total_, initial_, done_;
  bool active_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// "532 B", "15.2 MB", "1.21 GB" (decimal units, like tqdm's unit_scale).
std::string format_bytes(double bytes);
// "0:07", "12:34", "1:02:03"; "?" for a negative or non-finite number of seconds.
std::string format_duration(double seconds);
// One line of the bar (no "\r"): label, percentage + bar (when total > 0), sizes, rate, ETA.
// rate is in units/second (<= 0: unknown).
std::string progress_line(const std::string& label, uint64_t done, uint64_t total, double rate, int width,
                          ProgressUnit unit = ProgressUnit::Bytes);

}  // namespace zeroshot::util
