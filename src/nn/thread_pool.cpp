#include "nn/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <exception>

namespace zeroshot::nn {

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

void ThreadPool::worker_loop() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      job = queue_.front();
      if (job->next.load() >= job->n) {  // all handed out: retire it
        queue_.pop_front();
        continue;
      }
    }
    work_on(*job);
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
  }
  wake_.notify_all();
  work_on(*job);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = std::find(queue_.begin(), queue_.end(), job);
    if (it != queue_.end()) queue_.erase(it);
  }
  {
    std::unique_lock<std::mutex> lock(job->mutex);
    job->finished.wait(lock, [&] { return job->done.load() == n; });
  }
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
