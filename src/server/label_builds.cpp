#include "server/label_builds.h"

#include <exception>

namespace zeroshot::server {

LabelBuilds::~LabelBuilds() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

LabelBuilds::State LabelBuilds::start(const std::string& key, std::function<void()> build) {
  std::lock_guard<std::mutex> lock(mu_);
  State s;
  if (auto f = failed_.find(key); f != failed_.end()) {
    s.error = f->second;
    failed_.erase(f);
    return s;
  }
  auto it = running_.find(key);
  if (it == running_.end()) {
    if (running_.size() >= max_running_) {
      s.refused = true;
      return s;
    }
    it = running_.emplace(key, Clock::now()).first;
    threads_.emplace_back([this, key, build = std::move(build)] {
      std::string error;
      try {
        build();
      } catch (const std::exception& e) {
        error = e.what();
        if (error.empty()) error = "building the label embeddings failed";
      } catch (...) {
        error = "building the label embeddings failed";
      }
      std::lock_guard<std::mutex> lock(mu_);
      running_.erase(key);
      if (!error.empty()) failed_[key] = error;
    });
  }
  s.running = true;
  s.elapsed_s = std::chrono::duration<double>(Clock::now() - it->second).count();
  return s;
}

}  // namespace zeroshot::server
