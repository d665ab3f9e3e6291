// Few-shot head fit time on random embeddings (docs/benchmarks.md "Few-shot heads"): K classes x S shots of dim D,
// clustered (a random unit center per class + Gaussian noise of the given sigma per dimension, normalized), so the
// fit has structure to find; at the default sigma (0.15) the classes overlap a little, so the C sweep picks an inner
// value of C as it would on real embeddings (at 0.06 they are separable and it picks the largest).
//   build/bench/fewshot_bench [K=1000] [S=16] [D=512] [sweep=1] [sigma=0.15]
// Prints the wall and CPU (user + system, all threads) time of one L-BFGS fit at C = 1 in double to the strict stop
// and as the C sweep fits it (float, loose stop), of the full linear probe (C sweep on the validation split + refit),
// and of Tip-Adapter (leave-one-out alpha/beta search). OpenBLAS picks its kernels by CPU model when it loads: the
// first line names the ones it picked (OPENBLAS_CORETYPE overrides the choice).
#include <cblas.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "classify/few_shot.h"
#include "classify/zero_shot.h"

using namespace zeroshot::classify;

namespace {
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct Timer {
  std::chrono::steady_clock::time_point wall = std::chrono::steady_clock::now();
  double cpu = cpu_seconds();
  void print(const char* what) const {
    std::printf("  %-28s %8.2f s wall %8.2f s CPU", what,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count(), cpu_seconds() - cpu);
  }
};
}  // namespace

int main(int argc, char** argv) {
  const size_t K = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1000;
  const size_t S = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 16;
  const size_t D = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 512;
  const bool sweep = argc > 4 ? std::atoi(argv[4]) != 0 : true;
  const float noise = argc > 5 ? std::strtof(argv[5], nullptr) : 0.15f;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each line as it comes: the full sweep takes minutes
  std::mt19937_64 rng(1);
  std::normal_distribution<float> g;
  std::vector<float> centers(K * D);
  for (float& c : centers) c = g(rng);
  l2_normalize_rows(centers.data(), K, D);
  LabeledEmbeddings d;
  d.dim = D;
  d.num_classes = K;
  for (size_t k = 0; k < K; ++k)
    for (size_t s = 0; s < S; ++s) {
      for (size_t j = 0; j < D; ++j) d.x.push_back(centers[k * D + j] + noise * g(rng));
      d.y.push_back(static_cast<int>(k));
    }
  d.n = d.y.size();
  d = normalized(d);
  std::printf("%zu classes x %zu shots, dim %zu; OpenBLAS %s (%s)\n", K, S, D, openblas_get_config(),
              openblas_get_corename());
  LogisticOptions lo;
  for (bool single : {false, true}) {
    if (single) {  // the C sweep's fits: float, the loose stop
      lo.single_precision = true;
      lo.epsilon = 1e-4;
      lo.delta = 1e-5;
    }
    const Timer t;
    const LogisticFit f = fit_logistic(d, lo);
    t.print(single ? "one fit, C = 1, sweep's:" : "one fit, C = 1, double:");
    std::printf(" (status %d, objective %.6g)\n", f.status, f.objective);
  }
  if (sweep) {
    const Timer t;
    FitOptions fo;
    const Head h = fit_head(d, fo);
    t.print("linear probe (sweep+refit):");
    std::printf(" (C %.3g, validation accuracy %.4f)\n", h.C, h.validation_score);
  }
  const Timer t;
  FitOptions to;
  to.method = FewShotMethod::TipAdapter;
  to.zero_shot = centers.data();
  const Head tip = fit_head(d, to);
  t.print("tip-adapter (alpha, beta):");
  std::printf(" (alpha %.2f, beta %.2f, leave-one-out accuracy %.4f)\n", tip.alpha, tip.beta, tip.validation_score);
  return 0;
}
