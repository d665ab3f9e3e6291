#include "nn/gemm.h"

#include <cblas.h>

#include <mutex>
#include <string>

namespace zeroshot::nn {

namespace {

// We parallelize above the GEMM (by splitting the output), so OpenBLAS must not start its own threads:
// nested threading would oversubscribe the cores. This is process-wide, set once before the first call.
void single_threaded_blas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
          int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // empty product (BLAS would reject lda = 0): C = beta * C
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j)
        c[static_cast<long>(i) * ldc + j] = beta == 0.0f ? 0.0f : beta * c[static_cast<long>(i) * ldc + j];
    return;
  }
  single_threaded_blas();
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha,
              a, lda, b, ldb, beta, c, ldc);
}

const char* gemm_backend() {
  static const std::string name =
      std::string("OpenBLAS ") + openblas_get_config() + " (" + openblas_get_corename() + ")";
  return name.c_str();
}

}  // namespace zeroshot::nn
