#include "util/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace zeroshot::util {
namespace {

bool env_true(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return false;
  std::string s(v);
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s == "1" || s == "ON" || s == "YES" || s == "TRUE";
}

int terminal_width() {
  struct winsize ws {};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
  return 80;
}

}  // namespace

std::string format_bytes(double bytes) {
  static const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  int u = 0;
  while (bytes >= 999.95 && u < 5) {
    bytes /= 1000.0;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%.0f %s", bytes, units[u]);
  else
    std::snprintf(buf, sizeof buf, bytes < 9.995 ? "%.2f %s" : bytes < 99.95 ? "%.1f %s" : "%.0f %s", bytes, units[u]);
  return buf;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e8) return "?";
  auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  return buf;
}

std::string progress_line(const std::string& label, uint64_t done, uint64_t total, double rate, int width,
                          ProgressUnit unit) {
  auto count = [unit](double v) {
    if (unit == ProgressUnit::Bytes) return format_bytes(v);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return std::string(buf);
  };
  std::string sizes = total > 0 ? count(static_cast<double>(done)) + "/" + count(static_cast<double>(total))
                                : count(static_cast<double>(done));
  std::string tail = "  " + sizes;
  if (rate > 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, rate < 10 ? "%.2f/s" : "%.1f/s", rate);
    tail += "  " + (unit == ProgressUnit::Bytes ? format_bytes(rate) + "/s" : std::string(buf));
  }
  if (total > 0 && rate > 0 && done <= total)
    tail += "  ETA " + format_duration(static_cast<double>(total - done) / rate);
  std::string line = label;
  if (total > 0) {
    double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
    char pct[16];
    std::snprintf(pct, sizeof pct, " %3d%% ", static_cast<int>(frac * 100.0));
    line += pct;
    int bar = width - static_cast<int>(line.size() + tail.size()) - 2;
    if (bar >= 5) {
      bar = std::min(bar, 40);
      int fill = static_cast<int>(frac * bar);
      line += '|';
      line.append(static_cast<size_t>(fill), '#');
      line.append(static_cast<size_t>(bar - fill), ' ');
      line += '|';
    }
  }
  line += tail;
  if (width > 0 && static_cast<int>(line.size()) > width) line.resize(static_cast<size_t>(width));
  return line;
}

ProgressBar::ProgressBar(std::string label, uint64_t total, bool enabled, uint64_t initial, ProgressUnit unit)
    : label_(std::move(label)), unit_(unit), total_(total), initial_(initial), done_(initial) {
  active_ = enabled && ::isatty(STDERR_FILENO) && !env_true("HF_HUB_DISABLE_PROGRESS_BARS");
  start_ = last_draw_ = std::chrono::steady_clock::now();
  if (active_) draw(false);
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(uint64_t done) {
  done_ = done;
  if (!active_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(false);
}

void ProgressBar::clear() {
  if (!active_ || finished_) return;
  std::fprintf(stderr, "\r\x1b[K");
  std::fflush(stderr);
  last_draw_ = {};  // redraw at the next update
}

void ProgressBar::finish() {
  if (!active_ || finished_) return;
  finished_ = true;
  draw(true);
}

void ProgressBar::draw(bool final) {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = secs > 0.2 && done_ > initial_ ? static_cast<double>(done_ - initial_) / secs : 0.0;
  int width = terminal_width() - 1;
  std::string line = progress_line(label_, done_, total_, rate, width, unit_);
  // "\r" + clear-to-end-of-line keeps one line that is redrawn in place.
  std::fprintf(stderr, "\r%s\x1b[K%s", line.c_str(), final ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace zeroshot::util
