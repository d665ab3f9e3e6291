// The peak arithmetic rate of this machine for one precision, measured in the calling process: every thread of a
// pool runs a short loop of independent register-only multiply-adds (no memory traffic), the instruction the GEMM
// kernels of that precision are built on:
//   F32   vfmadd231ps   (16 lanes x 1 multiply-add = 32 FLOPs per instruction)
//   BF16  vdpbf16ps     (16 lanes x 2 bf16 products summed into f32 = 64 FLOPs)
//         or vfmadd231ps where the BF16 kernels run on FMAs (kern::avx512::bf16_by_fma: vdpbf16ps is slow there)
//   Int8  vpdpbusd      (16 lanes x 4 u8 x s8 products summed into s32 = 128 integer ops, counted as FLOPs)
// so "fraction of peak" = achieved FLOPs / this number compares a model's throughput with what the same cores
// delivered in the same minute (on a shared machine a constant from a data sheet would not).
// Only on the AVX-512 path (nn::avx512_kernels(p)); elsewhere the probe reports no peak (gflops 0): the generic
// path runs OpenBLAS, whose peak this loop would not describe.
// Thread-safe (the loop state is local); takes about `seconds` of wall time.
#pragma once

#include "nn/precision.h"
#include "nn/thread_pool.h"

namespace zeroshot::nn {

struct PeakRate {
  double gflops = 0;  // 0: not measured (no AVX-512 kernels for this precision here)
  int threads = 0;    // threads that ran the loop at once
  const char* instruction = "";
};

// The best of a few rounds of about seconds / 3 each (the rounds a neighbour's process preempts count less).
// pool: the threads the model runs on (null: the calling thread only).
PeakRate measure_peak(Precision p, ThreadPool* pool, double seconds = 0.3);

// Multiply-adds of one image through a ViT (the CLIP / SigLIP vision geometry), as FLOPs (2 per multiply-add):
// the patch embedding, per layer q|k|v, out, fc1, fc2 and the attention products (q k^T and p v), the
// projection. Layer norms, softmax and activations (a few % of a layer's FLOPs) are not counted.
double vit_flops(int image_size, int patch_size, int channels, int hidden, int intermediate, int layers,
                 int projection_dim, bool class_token = true);

}  // namespace zeroshot::nn
