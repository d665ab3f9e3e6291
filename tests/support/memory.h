// Memory measurements for the tests that bound what the engine or the server holds.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace zeroshot::testing {

// Sanitizers hold freed memory in quarantine and add shadow memory: resident sizes under them measure the
// sanitizer, not the code, so memory bounds are skipped there (the answers are still checked).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// This process's peak resident set so far, bytes (getrusage's high-water mark: a transient spike counts).
uint64_t peak_rss();

// Another process's resident set now, bytes (/proc/PID/statm; 0 when it cannot be read).
uint64_t rss_of(pid_t pid);

}  // namespace zeroshot::testing
