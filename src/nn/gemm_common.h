// Internal to src/nn: what the GEMM paths of linear.cpp and int4_gemm.cpp share: how they split work over threads,
// their scratch memory, and the scalar activation of their generic epilogue. Each path keeps its own Scratch struct
// (the buffers differ); thread_scratch gives every thread its own instance, grown on demand and never shrunk, so
// steady-state calls allocate nothing and threads never share a buffer.
#pragma once

#include <cstddef>
#include <vector>

#include "nn/ops.h"

namespace zeroshot::nn {

// Multiply-adds below which one thread does the whole GEMM: waking workers costs more than it saves.
constexpr long kMinParallelGemm = 1L << 18;
// Column chunks per thread when a GEMM is split: more than one evens out threads that finish early.
constexpr int kChunksPerThread = 4;

// This thread's instance of S (one per S and thread, alive until the thread ends).
template <class S>
S& thread_scratch() {
  thread_local S s;
  return s;
}

// Enlarges v to at least n elements; never shrinks it, so a buffer sized by a large call serves the smaller ones.
template <class T>
void grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// The activation a GEMM epilogue applies to one value: the three that fuse into the GEMM. Relu and Silu are not in
// the epilogue (PackedLinear::forward runs them as a pass over the product), so for them x comes back unchanged.
inline float epilogue_act(Act a, float x) {
  switch (a) {
    case Act::QuickGelu: return quick_gelu(x);
    case Act::Gelu: return gelu_erf(x);
    case Act::GeluTanh: return gelu_tanh(x);
    case Act::Relu:
    case Act::Silu: break;
  }
  return x;
}

}  // namespace zeroshot::nn
