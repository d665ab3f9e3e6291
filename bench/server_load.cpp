// Load test of `zeroshot serve` on loopback: N concurrent clients (one keep-alive connection each) post
// /v1/classify for T seconds. Reports throughput, p50/p99 latency of the answered requests, answers by status
// (0 = no answer: a connection error or a timeout), the mean encoder batch size and the server's RSS before and
// after (both from the server's /metrics). docs/benchmarks.md ("Server") has the commands and numbers.
//
//   server_load --port 8080 --image photo.jpg --labels "cat,dog,a red car" --clients 16 --seconds 20
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "eval/thumbnail.h"

namespace {

struct Args {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string image;
  std::string labels = "a cat,a dog,a red car,a bird,a house";
  std::string api_key;
  int clients = 8;
  double seconds = 10;
  double timeout = 30;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: server_load --image FILE [--host 127.0.0.1] [--port 8080] [--labels a,b,c] [--clients N]\n"
               "                   [--seconds T] [--timeout S] [--api-key KEY]\n");
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) usage();
    const std::string v = argv[++i];
    if (k == "--host") a.host = v;
    else if (k == "--port") a.port = std::atoi(v.c_str());
    else if (k == "--image") a.image = v;
    else if (k == "--labels") a.labels = v;
    else if (k == "--api-key") a.api_key = v;
    else if (k == "--clients") a.clients = std::atoi(v.c_str());
    else if (k == "--seconds") a.seconds = std::atof(v.c_str());
    else if (k == "--timeout") a.timeout = std::atof(v.c_str());
    else usage();
  }
  if (a.image.empty() || a.clients < 1 || a.seconds <= 0) usage();
  return a;
}

// A metric's value in Prometheus text (the first line that starts with `name `).
double metric(const std::string& text, const std::string& name) {
  size_t at = 0;
  while ((at = text.find(name + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::atof(text.c_str() + at + name.size() + 1);
    at += name.size();
  }
  return 0;
}

std::string scrape(const Args& a) {
  httplib::Client c(a.host, a.port);
  if (!a.api_key.empty()) c.set_bearer_token_auth(a.api_key);
  auto r = c.Get("/metrics");
  return r && r->status == 200 ? r->body : std::string();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  std::ifstream f(a.image, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "server_load: %s: cannot read\n", a.image.c_str());
    return 2;
  }
  const std::string bytes{std::istreambuf_iterator<char>(f), {}};
  nlohmann::json labels = nlohmann::json::array();
  for (size_t s = 0;;) {
    const size_t c = a.labels.find(',', s);
    labels.push_back(a.labels.substr(s, c == std::string::npos ? std::string::npos : c - s));
    if (c == std::string::npos) break;
    s = c + 1;
  }
  const std::string body = nlohmann::json{
      {"image", zeroshot::eval::base64(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())},
      {"candidate_labels",
       labels}}.dump();

  const std::string before = scrape(a);
  if (before.empty()) {
    std::fprintf(stderr, "server_load: no /metrics answer from %s:%d\n", a.host.c_str(), a.port);
    return 2;
  }
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.seconds));
  std::mutex mu;
  std::vector<double> latencies_ms;  // of 200 answers
  std::map<int, size_t> by_status;
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(std::max(a.clients, 0)));
  for (int i = 0; i < a.clients; ++i) {
    threads.emplace_back([&] {
      httplib::Client c(a.host, a.port);
      c.set_keep_alive(true);
      c.set_tcp_nodelay(true);
      const auto to = static_cast<time_t>(a.timeout);
      c.set_read_timeout(to, 0);
      c.set_write_timeout(to, 0);
      if (!a.api_key.empty()) c.set_bearer_token_auth(a.api_key);
      std::vector<double> lat;
      std::map<int, size_t> st;
      while (Clock::now() < deadline) {
        const auto s = Clock::now();
        auto r = c.Post("/v1/classify", body, "application/json");
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - s).count();
        const int status = r ? r->status : 0;
        ++st[status];
        if (status == 200) lat.push_back(ms);
        if (status == 503) {  // honour Retry-After a little, as a client should (briefly: this is a load test)
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      latencies_ms.insert(latencies_ms.end(), lat.begin(), lat.end());
      for (const auto& [k, n] : st) by_status[k] += n;
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::string after = scrape(a);

  const double batches = metric(after, "zeroshot_batch_size_count") - metric(before, "zeroshot_batch_size_count");
  const double images = metric(after, "zeroshot_batch_size_sum") - metric(before, "zeroshot_batch_size_sum");
  nlohmann::ordered_json out;
  out["clients"] = a.clients;
  out["seconds"] = elapsed;
  out["ok"] = latencies_ms.size();
  out["throughput_rps"] = static_cast<double>(latencies_ms.size()) / elapsed;
  out["p50_ms"] = percentile(latencies_ms, 0.50);
  out["p99_ms"] = percentile(latencies_ms, 0.99);
  out["mean_batch"] = batches > 0 ? images / batches : 0;
  nlohmann::ordered_json st = nlohmann::ordered_json::object();
  for (const auto& [k, n] : by_status) st[std::to_string(k)] = n;
  out["status"] = st;
  out["server_rss_mb_before"] = metric(before, "process_resident_memory_bytes") / 1048576.0;
  out["server_rss_mb_after"] = metric(after, "process_resident_memory_bytes") / 1048576.0;
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
