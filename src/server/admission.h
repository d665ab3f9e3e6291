// Admission control shared by every request in flight, so that many requests at once cannot take more memory than
// the operator allows: a Budget of bytes (request bodies being parsed) or of pixels (images being decoded). A
// request that does not fit is refused at once with 503 + Retry-After (Overloaded), never queued: its memory is the
// problem, and a client can retry. Also: handing freed memory back to the system after large requests.
//
// Thread safety: a Budget may be used from any number of threads; a Ticket belongs to one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "server/request.h"

namespace zeroshot::server {

// 503 with "Retry-After": the server is busy (other requests' memory, label embeddings being built); the same
// request may succeed later.
struct Overloaded : HttpError {
  explicit Overloaded(const std::string& message, int retry_after = 1)
      : HttpError(503, message), retry_after_s(retry_after) {}
  int retry_after_s;
};

class Budget {
 public:
  explicit Budget(uint64_t capacity) : capacity_(capacity) {}
  Budget(const Budget&) = delete;
  Budget& operator=(const Budget&) = delete;

  // Holds `amount` of the budget until destroyed.
  class Ticket {
   public:
    Ticket(Ticket&& o) noexcept : budget_(o.budget_), amount_(o.amount_) { o.budget_ = nullptr; }
    Ticket& operator=(Ticket&&) = delete;
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket();

   private:
    friend class Budget;
    Ticket(Budget* b, uint64_t amount) : budget_(b), amount_(amount) {}
    Budget* budget_;
    uint64_t amount_;
  };

  // A ticket for `amount`, or nothing when it does not fit beside what is held. A request alone is always admitted:
  // its own size is bounded by a per-request limit (the body limit, the model's pixel limit), and refusing it
  // would refuse it forever when the budget is set below that limit.
  std::optional<Ticket> try_acquire(uint64_t amount);

  uint64_t capacity() const { return capacity_; }
  uint64_t in_use() const;
  uint64_t peak() const;  // the most ever held at once

 private:
  const uint64_t capacity_;
  mutable std::mutex mu_;
  uint64_t used_ = 0, peak_ = 0, holders_ = 0;
};

// Pixels an image of these bytes will be decoded to, read from its header (image/probe.h); when the header does not
// say (a format the probe does not read, a truncated file), `fallback`: the most the decoder accepts. Never more
// than `fallback`, since the decoder refuses larger images before allocating them.
uint64_t pixels_to_admit(const uint8_t* data, size_t size, uint64_t fallback);

// Makes every allocation of 1 MiB or more (request bodies, base64 images, decoded pixels) its own mapping, returned
// to the system when freed. glibc's default threshold adapts upwards to the largest block freed (up to 32 MiB), after
// which 31 MiB bodies came from the heap and stayed there: 128 MiB held after four of them. Process-wide; called
// once by the server.
void map_large_allocations();

// Gives the memory freed by a large request back to the system. glibc keeps freed heap memory in its arenas (one
// per thread that allocated, up to 8 x cores) and returns only the top of each heap on free(), so after a burst of
// large requests on many HTTP threads the process kept 3.7 GB it no longer used (issue 19); malloc_trim(0) releases
// the free pages of every arena. It walks every arena, so only after requests of at least `threshold` bytes.
void release_memory_after(size_t request_bytes, size_t threshold = 1u << 20);

}  // namespace zeroshot::server
