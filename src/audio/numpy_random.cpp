#include "audio/numpy_random.h"

#include <string>

#include "zeroshot/error.h"

namespace zeroshot::audio {

NumpyRandom::NumpyRandom(uint64_t seed) {
  if (seed > 0xFFFFFFFFull) throw Error("--seed " + std::to_string(seed), "must be between 0 and 2**32 - 1");
  mt_.seed(static_cast<uint32_t>(seed));
}

int64_t NumpyRandom::randint(int64_t low, int64_t high) {
  if (high <= low) throw Error("randint", "high must be greater than low");
  const uint64_t rng = static_cast<uint64_t>(high) - static_cast<uint64_t>(low) - 1;
  if (rng == 0) return low;  // numpy draws nothing
  uint64_t mask = rng;
  for (int s = 1; s < 64; s <<= 1) mask |= mask >> s;
  uint64_t v;
  if (rng <= 0xFFFFFFFFull) {
    if (rng == 0xFFFFFFFFull) return low + static_cast<int64_t>(mt_());
    do v = mt_() & mask;
    while (v > rng);
  } else {
    do {
      const uint64_t hi = mt_();
      v = ((hi << 32) | mt_()) & mask;
    } while (v > rng);
  }
  return low + static_cast<int64_t>(v);
}

}  // namespace zeroshot::audio
