#include "server/batcher.h"

#include <algorithm>
#include <cstring>

namespace zeroshot::server {

Batcher::Batcher(const Model& model, BatcherOptions opt, Metrics* metrics)
    : model_(model), opt_(opt), metrics_(metrics) {
  opt_.max_batch = std::max<size_t>(1, opt_.max_batch);
  worker_ = std::thread([this] { run(); });
}

Batcher::~Batcher() { stop(); }

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

Batcher::Arrival::~Arrival() {
  if (b_) b_->withdraw(n_);
}

Batcher::Arrival Batcher::announce(size_t images) {
  std::lock_guard<std::mutex> lock(mu_);
  incoming_ += images;
  return Arrival(this, images);
}

void Batcher::withdraw(size_t n) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    incoming_ -= std::min(incoming_, n);
  }
  cv_.notify_all();
}

std::vector<std::future<std::vector<float>>> Batcher::submit(std::vector<std::vector<float>> images, Arrival& arrival) {
  if (arrival.b_ == this) {
    arrival.b_ = nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    incoming_ -= std::min(incoming_, arrival.n_);
  }
  try {
    return submit(std::move(images));
  } catch (...) {
    cv_.notify_all();  // the encoder may be waiting for these images
    throw;
  }
}

size_t Batcher::depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

std::vector<std::future<std::vector<float>>> Batcher::submit(std::vector<std::vector<float>> images) {
  std::vector<std::future<std::vector<float>>> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) throw ShuttingDown();
    if (queue_.size() + images.size() > opt_.max_queue) throw QueueFull();
    const auto now = std::chrono::steady_clock::now();
    for (auto& px : images) {
      Item it;
      it.pixels = std::move(px);
      it.queued = now;
      out.push_back(it.result.get_future());
      queue_.push_back(std::move(it));
    }
  }
  cv_.notify_all();
  return out;
}

void Batcher::run() {
  const size_t px_per_image = 3 * static_cast<size_t>(model_.image_size()) * static_cast<size_t>(model_.image_size());
  std::vector<float> pixels;
  for (;;) {
    std::vector<Item> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      // Wait for a full batch, or until the oldest image has waited max_wait, or until no announced image is
      // still being decoded (not when stopping: drain now).
      const auto deadline = queue_.front().queued + opt_.max_wait;
      cv_.wait_until(lock, deadline, [&] { return stopping_ || queue_.size() >= opt_.max_batch || incoming_ == 0; });
      const size_t n = std::min(opt_.max_batch, queue_.size());
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    size_t done = 0;
    try {
      pixels.resize(batch.size() * px_per_image);
      for (size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].pixels.size() != px_per_image) throw std::invalid_argument("pixel values of the wrong size");
        std::memcpy(pixels.data() + i * px_per_image, batch[i].pixels.data(), px_per_image * sizeof(float));
      }
      const Embeddings e = model_.embed_pixel_values(pixels.data(), batch.size());
      if (metrics_) metrics_->observe_batch(batch.size());
      for (; done < batch.size(); ++done)
        batch[done].result.set_value(std::vector<float>(e.row(done), e.row(done) + e.dim));
    } catch (...) {
      for (; done < batch.size(); ++done) batch[done].result.set_exception(std::current_exception());
    }
  }
}

}  // namespace zeroshot::server
