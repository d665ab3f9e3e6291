// Prometheus text-format metrics of the server: requests and latency per route, encoder batch sizes, queue depth,
// label-embedding cache hits. Thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace zeroshot::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  // Lines "name_bucket{labels,le=...} n", _sum, _count. `labels`: "" or `route="x"`.
  void render(std::string* out, const std::string& name, const std::string& labels) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bound, not cumulative; the last is +Inf
  uint64_t count_ = 0;
  double sum_ = 0;
};

// Live values read at scrape time.
struct Gauges {
  size_t queue_depth = 0;
  size_t in_flight = 0;
  size_t classifier_cache_entries = 0;
};

class Metrics {
 public:
  Metrics();
  // `route`: the route's pattern ("/v1/classify") or "other".
  void observe_request(const std::string& route, int status, double seconds);
  void observe_batch(size_t images);
  void observe_cache(bool hit);
  void observe_rejected_full();  // 503: queue full
  std::string render(const Gauges& g) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  Histogram batch_;
  uint64_t cache_hits_ = 0, cache_misses_ = 0, queue_full_ = 0;
};

// The process's resident set size in bytes (/proc/self/statm), 0 if unknown.
uint64_t resident_bytes();

}  // namespace zeroshot::server
