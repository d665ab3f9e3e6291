// Label embeddings of many prompts, built off the request thread. A built-in set with templates (imagenet x
// imagenet7: 8,000 prompts) took 55 s to encode through the server on its first use, with the client waiting and
// near its timeout (issue 18). The server now starts such a build on a thread of its own and answers the request
// 503 + Retry-After, saying what is being encoded and for how long; the build fills the classifier cache, and the
// client's retry is answered from it. `zeroshot serve --preload-labels` builds them before serving instead.
//
// Thread safety: every method may be called from any thread. The destructor waits for the builds running.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace zeroshot::server {

class LabelBuilds {
 public:
  explicit LabelBuilds(size_t max_running = 2) : max_running_(max_running) {}
  ~LabelBuilds();
  LabelBuilds(const LabelBuilds&) = delete;
  LabelBuilds& operator=(const LabelBuilds&) = delete;

  struct State {
    bool running = false;  // a build of this key is under way (started now or before)
    bool refused = false;  // not started: max_running builds of other keys are under way
    double elapsed_s = 0;  // since the build started
    std::string error;     // the last build of this key failed with this message (reported once; then retried)
  };
  // Starts build() on its own thread unless one of `key` is running; says where that key stands.
  State start(const std::string& key, std::function<void()> build);

 private:
  using Clock = std::chrono::steady_clock;
  const size_t max_running_;
  std::mutex mu_;
  std::map<std::string, Clock::time_point> running_;
  std::map<std::string, std::string> failed_;
  std::vector<std::thread> threads_;
};

}  // namespace zeroshot::server
