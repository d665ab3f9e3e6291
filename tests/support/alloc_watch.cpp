#include "support/alloc_watch.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<bool> g_watching{false};
std::atomic<size_t> g_largest{0};
}  // namespace

void* operator new(size_t n) {
  if (g_watching.load(std::memory_order_relaxed)) {
    size_t prev = g_largest.load();
    while (n > prev && !g_largest.compare_exchange_weak(prev, n)) {
    }
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
// Not inlined: GCC would otherwise warn (-Wmismatched-new-delete) that free() meets a pointer from operator new.
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, size_t /*size*/) noexcept { std::free(p); }

namespace zeroshot::testing {

AllocationWatch::AllocationWatch() {
  g_largest = 0;
  g_watching = true;
}
AllocationWatch::~AllocationWatch() { stop(); }
void AllocationWatch::stop() { g_watching = false; }
size_t AllocationWatch::largest() const { return g_largest.load(); }

}  // namespace zeroshot::testing
