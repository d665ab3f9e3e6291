// Dynamic batching: images of concurrent requests are encoded together. Requests put preprocessed pixel values
// in a bounded queue; one encoder thread takes up to max_batch of them once max_batch are waiting, or the oldest has
// waited max_wait, or no announced image is still on its way (a lone request is not kept waiting for company that
// is not coming), runs one forward pass, and hands each request its embedding row.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "server/metrics.h"
#include "zeroshot/zeroshot.h"

namespace zeroshot::server {

// Thrown by submit() when the queue cannot take the images (the server answers 503 + Retry-After).
struct QueueFull : std::runtime_error {
  QueueFull() : std::runtime_error("the encoder queue is full; retry later") {}
};
// Set on pending futures when the batcher is stopped before their turn.
struct ShuttingDown : std::runtime_error {
  ShuttingDown() : std::runtime_error("the server is shutting down") {}
};

struct BatcherOptions {
  size_t max_batch = 16;  // 1: no batching (each image encoded alone, in arrival order)
  std::chrono::milliseconds max_wait{5};
  size_t max_queue = 64;  // images waiting (not yet taken by the encoder)
};

class Batcher {
 public:
  // Images a request will submit once decoded: while any are announced, the encoder waits (up to max_wait) for
  // them to join the batch. Released by submit(images, arrival) or when the Arrival is destroyed (decoding failed).
  class Arrival {
   public:
    Arrival() = default;
    Arrival(Arrival&& o) noexcept : b_(o.b_), n_(o.n_) { o.b_ = nullptr; }
    Arrival& operator=(Arrival&&) = delete;
    Arrival(const Arrival&) = delete;
    ~Arrival();

   private:
    friend class Batcher;
    Arrival(Batcher* b, size_t n) : b_(b), n_(n) {}
    Batcher* b_ = nullptr;
    size_t n_ = 0;
  };
  Arrival announce(size_t images);

  Batcher(const Model& model, BatcherOptions opt, Metrics* metrics);
  ~Batcher();  // stop(): pending images are still encoded
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues all `images` ([3, S, S] pixel values each) or none: throws QueueFull when they do not all fit.
  // Each future yields the projected, un-normalized embedding (Model::embedding_dim() floats) or the encoder's error.
  std::vector<std::future<std::vector<float>>> submit(std::vector<std::vector<float>> images);
  // The same, releasing `arrival`'s announcement (also when the queue is full).
  std::vector<std::future<std::vector<float>>> submit(std::vector<std::vector<float>> images, Arrival& arrival);

  size_t depth() const;
  // Encodes what is queued, then ends the encoder thread; later submit() calls throw ShuttingDown.
  void stop();

 private:
  struct Item {
    std::vector<float> pixels;
    std::promise<std::vector<float>> result;
    std::chrono::steady_clock::time_point queued;
  };
  void run();
  void withdraw(size_t n);

  const Model& model_;
  BatcherOptions opt_;
  Metrics* metrics_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  size_t incoming_ = 0;  // announced images not yet submitted
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace zeroshot::server
