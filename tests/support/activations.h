// The activations of nn::Act by their defining formulas, in double precision: what the nn tests compare the
// kernels' float results with, independent of the engine's own implementations (nn/ops.cpp). Header-only, for the
// tests that link zs_nn.
#pragma once

#include <cmath>

#include "nn/ops.h"

namespace zeroshot::testing {

inline double act_ref(nn::Act a, double x) {
  switch (a) {
    case nn::Act::QuickGelu: return x / (1.0 + std::exp(-1.702 * x));
    case nn::Act::Gelu: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case nn::Act::GeluTanh: return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case nn::Act::Relu: return x > 0 ? x : 0.0;
    case nn::Act::Silu: return x / (1.0 + std::exp(-x));
  }
  return 0.0;
}

}  // namespace zeroshot::testing
