#include "nn/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>

namespace zeroshot::nn {

namespace {

using Clock = std::chrono::steady_clock;

// How long an idle thread polls before it blocks (microseconds; ZEROSHOT_SPIN_US overrides). Measured on the
// 2-vCPU machine shared with other processes (load ~11), ViT-B/32 int8, 5 alternating rounds: images/s at batch 1
// 21-23 with 0 us, 19-24 with 20 us, 18-20 with 50 us, 14.5-16 with 200 us (batch 8: 22-27 / 22-23 / 21-23 /
// 20-23), and the CPU time per image grows with the polling. A polling thread takes the core from the thread that
// has the work, so the default is not to poll.
long spin_us() {
  static const long us = [] {
    const char* v = std::getenv("ZEROSHOT_SPIN_US");
    if (v && *v) {
      char* end = nullptr;
      const long x = std::strtol(v, &end, 10);
      if (end && *end == '\0' && x >= 0 && x <= 1000000) return x;
    }
    return 0L;
  }();
  return us;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Polls `ready` for up to spin_us(); true when it became true.
template <class F>
bool spin_until(F&& ready) {
  const long us = spin_us();
  if (us <= 0) return ready();
  const auto until = Clock::now() + std::chrono::microseconds(us);
  for (int i = 0;; ++i) {
    if (ready()) return true;
    if ((i & 63) == 63 && Clock::now() >= until) return ready();
    cpu_relax();
  }
}

}  // namespace

// Workers keep a shared_ptr to the job, so the job outlives the last worker that touches it even after the
// caller has returned; `fn` is only called for indices that the caller waits for.
struct ThreadPool::Job {
  const std::function<void(int)>* fn = nullptr;
  int n = 0;
  std::atomic<int> next{0};
  std::atomic<int> done{0};
  std::mutex mutex;
  std::condition_variable finished;
  std::exception_ptr error;
};

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers_.reserve(static_cast<size_t>(threads - 1));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    posted_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work_on(Job& job) {
  for (;;) {
    const int i = job.next.fetch_add(1);
    if (i >= job.n) return;
    try {
      (*job.fn)(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(job.mutex);
      if (!job.error) job.error = std::current_exception();
    }
    if (job.done.fetch_add(1) + 1 == job.n) {
      std::lock_guard<std::mutex> lock(job.mutex);
      job.finished.notify_all();
    }
  }
}

// Under mutex_: the first queued job with indices left (retiring the exhausted ones), or null.
std::shared_ptr<ThreadPool::Job> ThreadPool::take_locked() {
  while (!queue_.empty()) {
    if (queue_.front()->next.load() < queue_.front()->n) return queue_.front();
    queue_.pop_front();
  }
  return nullptr;
}

void ThreadPool::worker_loop() {
  for (;;) {
    std::shared_ptr<Job> job;
    uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_) return;
      job = take_locked();
      seen = posted_.load();
    }
    if (job) {
      work_on(*job);
      continue;
    }
    // Idle: poll for a new job a little, then block.
    if (spin_until([&] { return posted_.load(std::memory_order_acquire) != seen; })) continue;
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [this] {
      if (stop_) return true;
      return take_locked() != nullptr;
    });
    if (stop_) return;
  }
}

void ThreadPool::parallel_for(int n, const std::function<void(int)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(job);
    posted_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  work_on(*job);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = std::find(queue_.begin(), queue_.end(), job);
    if (it != queue_.end()) queue_.erase(it);
  }
  if (!spin_until([&] { return job->done.load(std::memory_order_acquire) == n; })) {
    std::unique_lock<std::mutex> lock(job->mutex);
    job->finished.wait(lock, [&] { return job->done.load() == n; });
  }
  // Every index is done (acquire on `done`), so the error slot is no longer written.
  if (job->error) std::rethrow_exception(job->error);
}

void parallel_ranges(ThreadPool* pool, long total, long min_chunk, const std::function<void(long, long)>& fn) {
  if (total <= 0) return;
  min_chunk = std::max(1L, min_chunk);
  const long threads = pool ? pool->threads() : 1;
  const long chunks = std::max(1L, std::min(threads, total / min_chunk));
  if (chunks == 1) {
    fn(0, total);
    return;
  }
  const long per = (total + chunks - 1) / chunks;
  pool->parallel_for(static_cast<int>(chunks), [&](int c) {
    const long b = c * per, e = std::min(total, b + per);
    if (b < e) fn(b, e);
  });
}

}  // namespace zeroshot::nn
