// The largest single operator-new request made while an AllocationWatch is running: shows that a lying header
// (an image of 60000 x 60000 pixels, an audio stream of a billion samples) is refused before any allocation sized
// from it. Using it links support/alloc_watch.cpp, which replaces the test binary's global operator new/delete
// (malloc-backed); allocations C libraries make with malloc or their own allocators are not seen. One watch at a
// time per binary (a watch is process-wide, not per thread).
#pragma once

#include <cstddef>

namespace zeroshot::testing {

class AllocationWatch {
 public:
  AllocationWatch();   // resets the largest request and starts watching
  ~AllocationWatch();  // stops
  AllocationWatch(const AllocationWatch&) = delete;
  AllocationWatch& operator=(const AllocationWatch&) = delete;
  void stop();
  size_t largest() const;  // bytes, the largest request seen since the watch started
};

}  // namespace zeroshot::testing
