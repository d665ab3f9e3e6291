#include "nn/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
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

// Measurement only (ZEROSHOT_POOL_STATS=1): where the time of parallel_for goes, printed at exit.
bool stats_on() {
  static const bool on = [] {
    const char* v = std::getenv("ZEROSHOT_POOL_STATS");
    return v && *v == '1';
  }();
  return on;
}
long long ns_now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}
struct Stats {
  std::atomic<long long> regions{0}, region_ns{0}, caller_wait_ns{0}, wake_ns{0}, woken{0}, missed{0};
  std::atomic<long long> worker_busy_ns{0}, caller_busy_ns{0}, first_ns{0}, last_ns{0}, items{0};
  std::atomic<long long> by_n_regions[17]{}, by_n_wait[17]{}, by_n_ns[17]{};
  ~Stats() {
    if (!stats_on() || regions == 0) return;
    for (int i = 0; i < 17; ++i)
      if (by_n_regions[i])
        std::fprintf(stderr, "pool: n=%d%s regions %lld wall %.4f s caller wait %.4f s\n", i, i == 16 ? "+" : "",
                     by_n_regions[i].load(), by_n_ns[i] * 1e-9, by_n_wait[i] * 1e-9);
    const double span = static_cast<double>(last_ns - first_ns) * 1e-9;
    std::fprintf(stderr,
                 "pool: regions %lld items %lld span %.4f s in regions %.4f s (serial %.4f s) caller wait %.4f s "
                 "worker wake %.1f us avg over %lld, worker got none %lld, caller busy %.4f s worker busy %.4f s\n",
                 regions.load(), items.load(), span, region_ns * 1e-9, span - region_ns * 1e-9, caller_wait_ns * 1e-9,
                 woken ? wake_ns * 1e-3 / woken : 0.0, woken.load(), missed.load(), caller_busy_ns * 1e-9,
                 worker_busy_ns * 1e-9);
  }
};
Stats g_stats;

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
  long long t_post = 0;              // stats only
  std::atomic<long long> t_last{0};  // stats only: when the last index finished
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
    if (stats_on()) job.t_last.store(ns_now());
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
      if (stats_on()) {
        const long long t0 = ns_now();
        const int before = job->next.load();
        work_on(*job);
        g_stats.worker_busy_ns += ns_now() - t0;
        if (before < job->n) {
          g_stats.wake_ns += t0 - job->t_post;
          g_stats.woken += 1;
        } else {
          g_stats.missed += 1;
        }
        continue;
      }
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
  if (stats_on()) {
    job->t_post = ns_now();
    long long z = 0;
    g_stats.first_ns.compare_exchange_strong(z, job->t_post);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(job);
    posted_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  work_on(*job);
  const long long t_caller = stats_on() ? ns_now() : 0;
  if (stats_on()) g_stats.caller_busy_ns += t_caller - job->t_post;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = std::find(queue_.begin(), queue_.end(), job);
    if (it != queue_.end()) queue_.erase(it);
  }
  if (!spin_until([&] { return job->done.load(std::memory_order_acquire) == n; })) {
    std::unique_lock<std::mutex> lock(job->mutex);
    job->finished.wait(lock, [&] { return job->done.load() == n; });
  }
  if (stats_on()) {
    const long long t_end = ns_now();
    g_stats.regions += 1;
    g_stats.items += n;
    g_stats.region_ns += t_end - job->t_post;
    g_stats.caller_wait_ns += t_end - t_caller;
    g_stats.last_ns = t_end;
    const int b = std::min(n, 16);
    g_stats.by_n_regions[b] += 1;
    g_stats.by_n_ns[b] += t_end - job->t_post;
    g_stats.by_n_wait[b] += t_end - t_caller;
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

void parallel_guided(ThreadPool* pool, long total, long min_chunk, const std::function<void(long, long)>& fn) {
  if (total <= 0) return;
  min_chunk = std::max(1L, min_chunk);
  const long threads = pool ? pool->threads() : 1;
  if (threads == 1 || total < 2 * min_chunk) {
    fn(0, total);
    return;
  }
  // A static split ends with the caller waiting for a late worker (or the reverse) for up to a whole half;
  // shrinking ranges bound that wait by the last, smallest one.
  std::vector<long> bounds{0};
  for (long b = 0; b < total;) {
    b = std::min(total, b + std::max(min_chunk, (total - b + 2 * threads - 1) / (2 * threads)));
    bounds.push_back(b);
  }
  pool->parallel_for(static_cast<int>(bounds.size() - 1),
                     [&](int c) { fn(bounds[static_cast<size_t>(c)], bounds[static_cast<size_t>(c) + 1]); });
}

}  // namespace zeroshot::nn
