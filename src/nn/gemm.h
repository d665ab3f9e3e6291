// The one matrix-multiply entry point of the engine (row-major, f32, f32 accumulation).
// Everything else calls this, so the backend (OpenBLAS today) can be swapped in one place.
#pragma once

namespace zeroshot::nn {

// C[m x n] = alpha * op(A) * op(B) + beta * C, all row-major; op(X) = X or X^T.
// A is m x k (k x m when trans_a), B is k x n (n x k when trans_b); lda/ldb/ldc are row strides.
// Runs in the calling thread only: callers parallelize by splitting C (see linear() in ops.h).
void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
          int ldb, float beta, float* c, int ldc);

// Name of the backend and, for OpenBLAS, the kernel set it picked for this CPU (for logs and benchmarks).
const char* gemm_backend();

}  // namespace zeroshot::nn
