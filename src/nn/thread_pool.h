// A fixed pool of worker threads for data-parallel loops.
//
// parallel_for may be called from several threads at once (and from inside a task): each call is a job in a
// shared queue, the calling thread works on its own job too, so a call always completes even when every
// worker is busy elsewhere. An exception thrown by a task is rethrown in the caller (the first one wins).
// Idle threads (workers without a job, a caller waiting for the last indices) poll for ZEROSHOT_SPIN_US
// microseconds before they block (default 0: block at once; polling measured slower on a shared 2-vCPU machine).
// ZEROSHOT_POOL_STATS=1 (measurement only) prints at exit where parallel_for's time went: the caller's wait for the
// last indices, the workers' wake-up latency and busy time, the serial time between calls.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace zeroshot::nn {

class ThreadPool {
 public:
  // threads <= 0: one per hardware thread. threads == 1: no workers, everything runs in the caller.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Total threads that run tasks (the workers plus the caller).
  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(i) for every i in [0, n) and returns when all have finished.
  void parallel_for(int n, const std::function<void(int)>& fn);

 private:
  struct Job;
  void worker_loop();
  static void work_on(Job& job);
  std::shared_ptr<Job> take_locked();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stop_ = false;
  std::atomic<uint64_t> posted_{0};  // bumped (under mutex_) for every job posted and at stop
  std::vector<std::thread> workers_;
};

// Splits [0, total) into at most pool->threads() contiguous ranges of at least `min_chunk` items (except the
// last) and runs fn(begin, end) on each; serial when pool is null.
void parallel_ranges(ThreadPool* pool, long total, long min_chunk, const std::function<void(long, long)>& fn);

// Like parallel_ranges, for loops whose items cost about the same: the ranges shrink as they go (each about
// 1 / (2 x threads) of what is left, at least `min_chunk` items) and the threads take them in turn, so a thread
// that starts late (woken up ~40-60 us after the caller on a quiet machine, ~1 ms under load) or is preempted
// leaves only a short last range to wait for. The ranges depend only on total, min_chunk and the thread count.
void parallel_guided(ThreadPool* pool, long total, long min_chunk, const std::function<void(long, long)>& fn);

}  // namespace zeroshot::nn
