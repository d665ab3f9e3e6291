// Seeded random test data, the same sequence for a seed on every run and in every test that asks for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace zeroshot::testing {

// n draws of N(0, scale^2) from std::mt19937(seed).
inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace zeroshot::testing
