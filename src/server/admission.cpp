#include "server/admission.h"

#include <algorithm>

#include "image/probe.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace zeroshot::server {

Budget::Ticket::~Ticket() {
  if (!budget_) return;
  std::lock_guard<std::mutex> lock(budget_->mu_);
  budget_->used_ -= amount_;
  --budget_->holders_;
}

std::optional<Budget::Ticket> Budget::try_acquire(uint64_t amount) {
  std::lock_guard<std::mutex> lock(mu_);
  if (holders_ > 0 && (amount > capacity_ || used_ > capacity_ - amount)) return std::nullopt;
  used_ += amount;
  ++holders_;
  peak_ = std::max(peak_, used_);
  return Ticket(this, amount);
}

uint64_t Budget::in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_;
}

uint64_t Budget::peak() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_;
}

uint64_t pixels_to_admit(const uint8_t* data, size_t size, uint64_t fallback) {
  const auto dims = image::probe_dimensions(data, size);
  if (!dims) return fallback;
  return std::min(fallback, static_cast<uint64_t>(dims->width) * dims->height);
}

void map_large_allocations() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 1 << 20);  // setting it also turns glibc's dynamic threshold off
#endif
}

void release_memory_after(size_t request_bytes, size_t threshold) {
  if (request_bytes < threshold) return;
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace zeroshot::server
