// The weights of the SIMD horizontal passes (resample_avx2.cpp, resample_avx512.cpp), laid out once for either
// vector width. Not part of the public API. Plain baseline code (defined in resample.cpp, outside any target pragma),
// so both SIMD files share it without an AVX copy of it leaking into the rest of the program.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace zeroshot::image::detail {

// A vector of `lanes` int32 lanes covers `chunk` = lanes - lanes % channels consecutive bytes of a pixel run, so
// lane j always holds band j % channels. Per output pixel, `nvec` vectors of weights: lane j of vector m weighs
// byte m * chunk + j of its taps (band (m * chunk + j) % channels, tap (m * chunk + j) / channels); lanes past the
// taps weigh 0.
struct LaneWeights {
  int chunk = 0;
  int nvec = 0;            // weight vectors per output pixel (for the widest one)
  std::vector<int32_t> w;  // n x nvec x lanes
  std::vector<int> vecs;   // the vectors output xx needs: ceil(channels * count[xx] / chunk)
  size_t row_end = 0;      // bytes of a row that some tap reaches
};

// For n output pixels, output xx from count[xx] taps starting at pixel first[xx], weights k[xx * ksize ...].
LaneWeights lane_weights(int channels, int lanes, int n, const int* first, const int* count, const int32_t* k,
                         int ksize);

}  // namespace zeroshot::image::detail
