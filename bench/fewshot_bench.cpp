// Few-shot head fit time on random embeddings (docs/benchmarks.md "Few-shot heads"): K classes x S shots of dim D,
// clustered (a random unit center per class + Gaussian noise, normalized), so the fit has structure to find.
//   build/bench/fewshot_bench [K=1000] [S=16] [D=512] [sweep=1]
// Prints the time of one L-BFGS fit at C = 1, of the full linear probe (C sweep on the validation split + refit),
// and of Tip-Adapter (leave-one-out alpha/beta search).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "classify/few_shot.h"
#include "classify/zero_shot.h"

using namespace zeroshot::classify;

namespace {
double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

int main(int argc, char** argv) {
  const size_t K = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1000;
  const size_t S = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 16;
  const size_t D = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 512;
  const bool sweep = argc > 4 ? std::atoi(argv[4]) != 0 : true;
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
      for (size_t j = 0; j < D; ++j) d.x.push_back(centers[k * D + j] + 0.06f * g(rng));
      d.y.push_back(static_cast<int>(k));
    }
  d.n = d.y.size();
  d = normalized(d);
  std::printf("%zu classes x %zu shots, dim %zu\n", K, S, D);
  auto t = std::chrono::steady_clock::now();
  LogisticOptions lo;
  const LogisticFit f = fit_logistic(d, lo);
  std::printf("  one fit, C = 1:             %7.2f s (status %d)\n", since(t), f.status);
  if (sweep) {
    t = std::chrono::steady_clock::now();
    FitOptions fo;
    const Head h = fit_head(d, fo);
    std::printf("  linear probe (sweep+refit): %7.2f s (C %.3g, validation accuracy %.4f)\n", since(t), h.C,
                h.validation_score);
  }
  t = std::chrono::steady_clock::now();
  FitOptions to;
  to.method = FewShotMethod::TipAdapter;
  to.zero_shot = centers.data();
  const Head tip = fit_head(d, to);
  std::printf("  tip-adapter (alpha, beta):  %7.2f s (alpha %.2f, beta %.2f)\n", since(t), tip.alpha, tip.beta);
  return 0;
}
