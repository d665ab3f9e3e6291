#include "server/metrics.h"

#include <unistd.h>

#include <charconv>
#include <fstream>

namespace zeroshot::server {

namespace {

const std::vector<double> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
const std::vector<double> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256};

std::string num(double v) {  // shortest text that reads back as v
  char b[64];
  const auto r = std::to_chars(b, b + sizeof b, v);
  return std::string(b, r.ptr);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  ++count_;
  sum_ += v;
}

void Histogram::render(std::string* out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : ",";
  uint64_t cum = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i];
    *out += name + "_bucket{" + labels + sep + "le=\"" + (i < bounds_.size() ? num(bounds_[i]) : "+Inf") + "\"} " +
            std::to_string(cum) + "\n";
  }
  const std::string l = labels.empty() ? "" : "{" + labels + "}";
  *out += name + "_sum" + l + " " + num(sum_) + "\n";
  *out += name + "_count" + l + " " + std::to_string(count_) + "\n";
}

Metrics::Metrics() : batch_(kBatchBounds) {}

void Metrics::observe_request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{route, status}];
  auto it = latency_.find(route);
  if (it == latency_.end()) it = latency_.emplace(route, Histogram(kLatencyBounds)).first;
  if (seconds >= 0) it->second.observe(seconds);
}

void Metrics::observe_batch(size_t images) {
  std::lock_guard<std::mutex> lock(mu_);
  batch_.observe(static_cast<double>(images));
}

void Metrics::observe_cache(bool hit) {
  std::lock_guard<std::mutex> lock(mu_);
  ++(hit ? cache_hits_ : cache_misses_);
}

void Metrics::observe_rejected_full() {
  std::lock_guard<std::mutex> lock(mu_);
  ++queue_full_;
}

std::string Metrics::render(const Gauges& g) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string o;
  o += "# HELP zeroshot_http_requests_total HTTP requests by route and status code.\n"
       "# TYPE zeroshot_http_requests_total counter\n";
  for (const auto& [k, n] : requests_)
    o += "zeroshot_http_requests_total{route=\"" + k.first + "\",code=\"" + std::to_string(k.second) + "\"} " +
         std::to_string(n) + "\n";
  o += "# HELP zeroshot_http_request_duration_seconds Time from routing to response, by route.\n"
       "# TYPE zeroshot_http_request_duration_seconds histogram\n";
  for (const auto& [route, h] : latency_)
    h.render(&o, "zeroshot_http_request_duration_seconds", "route=\"" + route + "\"");
  o += "# HELP zeroshot_batch_size Images encoded together in one forward pass.\n"
       "# TYPE zeroshot_batch_size histogram\n";
  batch_.render(&o, "zeroshot_batch_size", "");
  o += "# HELP zeroshot_queue_depth Images waiting for the encoder.\n# TYPE zeroshot_queue_depth gauge\n";
  o += "zeroshot_queue_depth " + std::to_string(g.queue_depth) + "\n";
  o += "# HELP zeroshot_queue_full_total Requests refused with 503 because the queue was full.\n"
       "# TYPE zeroshot_queue_full_total counter\n";
  o += "zeroshot_queue_full_total " + std::to_string(queue_full_) + "\n";
  o += "# HELP zeroshot_requests_in_flight Requests being handled.\n# TYPE zeroshot_requests_in_flight gauge\n";
  o += "zeroshot_requests_in_flight " + std::to_string(g.in_flight) + "\n";
  o += "# HELP zeroshot_label_cache_hits_total Label-embedding (classifier) cache hits.\n"
       "# TYPE zeroshot_label_cache_hits_total counter\n";
  o += "zeroshot_label_cache_hits_total " + std::to_string(cache_hits_) + "\n";
  o += "# HELP zeroshot_label_cache_misses_total Label-embedding (classifier) cache misses.\n"
       "# TYPE zeroshot_label_cache_misses_total counter\n";
  o += "zeroshot_label_cache_misses_total " + std::to_string(cache_misses_) + "\n";
  o +=
      "# HELP zeroshot_label_cache_entries Classifiers held in the cache.\n# TYPE zeroshot_label_cache_entries gauge\n";
  o += "zeroshot_label_cache_entries " + std::to_string(g.classifier_cache_entries) + "\n";
  o += "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
       "# TYPE process_resident_memory_bytes gauge\n";
  o += "process_resident_memory_bytes " + std::to_string(resident_bytes()) + "\n";
  return o;
}

uint64_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace zeroshot::server
