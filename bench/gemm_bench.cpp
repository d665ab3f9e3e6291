// Measurement only (not a test): nn::linear (OpenBLAS, the old path) against PackedLinear (f32 / bf16 / int8) at
// one GEMM shape, on a ThreadPool of T threads.  gemm_bench M K N [threads] [iters]
#include <time.h>  // NOLINT(modernize-deprecated-headers): POSIX clock_gettime, not in <ctime>'s std::

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "nn/gemm.h"
#include "nn/linear.h"
#include "nn/ops.h"
#include "nn/thread_pool.h"

using namespace zeroshot::nn;

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// CPU time of the whole process: on a loaded machine the wall clock mostly measures the other processes.
static double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

template <class F>
static void bench(const char* name, long M, long K, long N, int iters, F&& f) {
  f();
  double best = 1e9, total = 0, cbest = 1e9, ctotal = 0;
  for (int i = 0; i < iters; ++i) {
    const double t0 = now(), c0 = cpu_now();
    f();
    const double d = now() - t0, c = cpu_now() - c0;
    best = std::min(best, d);
    total += d;
    cbest = std::min(cbest, c);
    ctotal += c;
  }
  std::printf(
      "%-14s M=%ld K=%ld N=%ld  wall best %.3f ms (%.1f GFLOP/s) mean %.3f | cpu best %.3f ms (%.1f GFLOP/s per core) "
      "mean %.3f\n",
      name, M, K, N, best * 1e3, 2.0 * M * K * N / best * 1e-9, total / iters * 1e3, cbest * 1e3,
      2.0 * M * K * N / cbest * 1e-9, ctotal / iters * 1e3);
}

int main(int argc, char** argv) {
  if (argc < 4) return 2;
  const int M = std::atoi(argv[1]), K = std::atoi(argv[2]), N = std::atoi(argv[3]);
  const int T = argc > 4 ? std::atoi(argv[4]) : 1, iters = argc > 5 ? std::atoi(argv[5]) : 20;
  const char* only = std::getenv("ONLY");
  ThreadPool pool(T);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(M) * K), w(static_cast<size_t>(N) * K), b(N), y(static_cast<size_t>(M) * N);
  for (auto& v : x) v = nd(rng);
  for (auto& v : w) v = nd(rng) * 0.03f;
  for (auto& v : b) v = nd(rng);
  auto want = [&](const char* s) { return !only || std::string(only).find(s) != std::string::npos; };
  if (want("openblas"))
    bench("openblas", M, K, N, iters, [&] { linear(x.data(), M, K, w.data(), b.data(), N, y.data(), &pool); });
  for (Precision p : {Precision::F32, Precision::BF16, Precision::Int8}) {
    if (!want(precision_name(p))) continue;
    // LAYERS copies of the weights, used in turn: like a model's layers, they come from DRAM, not the caches.
    const int layers = std::getenv("LAYERS") ? std::atoi(std::getenv("LAYERS")) : 1;
    std::vector<PackedLinear> L;
    L.reserve(static_cast<size_t>(std::max(layers, 0)));
    for (int i = 0; i < layers; ++i) L.emplace_back(w.data(), b.data(), N, K, p);
    int next = 0;
    bench((std::string("packed-") + precision_name(p)).c_str(), M, K, N, iters, [&] {
      L[next].forward(x.data(), M, y.data(), &pool, LinearPost::activate(Act::QuickGelu));
      next = (next + 1) % layers;
    });
  }
  return 0;
}
