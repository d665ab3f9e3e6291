// numpy's legacy global generator (np.random.seed / randint / choice, i.e. RandomState on MT19937), as far as
// Hugging Face's ClapFeatureExtractor uses it, so that "--crop random --seed N" reproduces HF after
// np.random.seed(N).
//
// np.random.seed(n) for 0 <= n < 2^32 is MT19937's init_genrand(n) (= std::mt19937(n)). randint(low, high) draws
// with numpy's legacy masked rejection: rng = high - low - 1; rng == 0 draws nothing; otherwise 32-bit outputs
// (64-bit ones, hi << 32 | lo, when rng >= 2^32) are masked to the smallest 2^k - 1 >= rng and redrawn while
// > rng. choice(a) of a 1-D array is a[randint(0, len(a))].
#pragma once

#include <cstdint>
#include <random>

namespace zeroshot::audio {

class NumpyRandom {
 public:
  // Throws zeroshot::Error for seeds >= 2^32, as numpy does ("Seed must be between 0 and 2**32 - 1").
  explicit NumpyRandom(uint64_t seed);
  // Uniform in [low, high); high > low.
  int64_t randint(int64_t low, int64_t high);

 private:
  std::mt19937 mt_;
};

}  // namespace zeroshot::audio
