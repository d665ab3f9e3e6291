// Measurement only (not part of the engine): oneDNN 2.6 matmul at the CLIP shapes, weights prepacked once
// (format_tag::any), bias (+ swish = quick_gelu) fused, f32 / bf16 / int8 (u8 x s8, per-tensor src scale and
// zero point, per-channel weight scales). Threads: OMP_NUM_THREADS (oneDNN here is built on OpenMP).
//
//   gemm_bench_dnnl M K N [iters]     prints one line per precision: GFLOP/s and ms per call.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

using namespace dnnl;
using dt = memory::data_type;
using tag = memory::format_tag;

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// CPU time of the process (OpenMP threads included): the wall clock of a shared machine measures the others too.
static double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: gemm_bench_dnnl M K N [iters]\n");
    return 2;
  }
  const long M = std::atol(argv[1]), K = std::atol(argv[2]), N = std::atol(argv[3]);
  const int iters = argc > 4 ? std::atoi(argv[4]) : 20;
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(M * K), w(N * K), bias(N), y(M * N);
  for (auto& v : x) v = nd(rng);
  for (auto& v : w) v = nd(rng) * 0.03f;
  for (auto& v : bias) v = nd(rng);

  for (const char* prec : {"f32", "bf16", "int8"}) {
    const std::string p = prec;
    const dt src_dt = p == "f32" ? dt::f32 : p == "bf16" ? dt::bf16 : dt::u8;
    const dt wei_dt = p == "f32" ? dt::f32 : p == "bf16" ? dt::bf16 : dt::s8;
    memory::desc a_md({M, K}, src_dt, tag::ab), b_any({K, N}, wei_dt, tag::any), c_md({M, N}, dt::f32, tag::ab);
    memory::desc bias_md({1, N}, dt::f32, tag::ab);
    primitive_attr attr;
    post_ops po;
    po.append_eltwise(1.f, algorithm::eltwise_swish, 1.702f, 0.f);
    attr.set_post_ops(po);
    if (p == "int8") {
      attr.set_output_scales(2, {DNNL_RUNTIME_F32_VAL});
      attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    }
    matmul::primitive_desc pd(matmul::desc(a_md, b_any, bias_md, c_md), attr, eng);
    matmul mm(pd);
    // Weights: W [N, K] row-major = B^T, i.e. B {K, N} in tag::ba; converted once to the primitive's layout.
    memory w_user({{K, N}, dt::f32, tag::ba}, eng, w.data());
    memory w_prep(pd.weights_desc(), eng);
    std::vector<float> scales(N, 1.f);
    std::vector<int8_t> wq;
    if (p == "int8") {
      wq.resize(N * K);
      for (long j = 0; j < N; ++j) {
        float mx = 0;
        for (long k = 0; k < K; ++k) mx = std::max(mx, std::abs(w[j * K + k]));
        scales[j] = mx / 127.f;
        for (long k = 0; k < K; ++k) wq[j * K + k] = static_cast<int8_t>(std::lround(w[j * K + k] / scales[j]));
      }
      memory wq_user({{K, N}, dt::s8, tag::ba}, eng, wq.data());
      reorder(wq_user, w_prep).execute(s, wq_user, w_prep);
    } else {
      reorder(w_user, w_prep).execute(s, w_user, w_prep);
    }
    memory x_user({{M, K}, dt::f32, tag::ab}, eng, x.data());
    memory x_in(a_md, eng);
    memory b_mem(bias_md, eng, bias.data()), y_mem(c_md, eng, y.data());
    memory sc_mem({{N}, dt::f32, tag::a}, eng), zp_mem({{1}, dt::s32, tag::a}, eng);
    std::vector<uint8_t> xq(M * K);
    static const bool prequant = std::getenv("DNNL_PREQUANT") != nullptr;
    bool quantized = false;
    auto run = [&] {
      // Per call: the activation conversion is part of the cost (as in the engine).
      if (p == "f32") {
        x_in = x_user;
      } else if (p == "bf16") {
        reorder(x_user, x_in).execute(s, x_user, x_in);
      } else if (quantized) {
        // DNNL_PREQUANT=1: activations quantized once, outside the timing (the GEMM alone).
      } else {
        float mn = 0, mx = 0;
        for (float v : x) mn = std::min(mn, v), mx = std::max(mx, v);
        const float sa = (mx - mn) / 255.f;
        const int zp = static_cast<int>(std::lround(-mn / sa));
        auto* q = static_cast<uint8_t*>(x_in.get_data_handle());
        for (long i = 0; i < M * K; ++i)
          q[i] = static_cast<uint8_t>(std::clamp<long>(std::lround(x[i] / sa) + zp, 0, 255));
        auto* sc = static_cast<float*>(sc_mem.get_data_handle());
        for (long j = 0; j < N; ++j) sc[j] = sa * scales[j];
        *static_cast<int32_t*>(zp_mem.get_data_handle()) = zp;
      }
      std::unordered_map<int, memory> args{
          {DNNL_ARG_SRC, x_in}, {DNNL_ARG_WEIGHTS, w_prep}, {DNNL_ARG_BIAS, b_mem}, {DNNL_ARG_DST, y_mem}};
      if (p == "int8") {
        args[DNNL_ARG_ATTR_OUTPUT_SCALES] = sc_mem;
        args[DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC] = zp_mem;
      }
      mm.execute(s, args);
      s.wait();
      if (p == "int8" && prequant) quantized = true;
    };
    run();
    run();
    double best = 1e9, total = 0, cbest = 1e9;
    for (int i = 0; i < iters; ++i) {
      const double t0 = now(), c0 = cpu_now();
      run();
      const double dtm = now() - t0;
      best = std::min(best, dtm);
      cbest = std::min(cbest, cpu_now() - c0);
      total += dtm;
    }
    std::printf(
        "dnnl-%-4s M=%ld K=%ld N=%ld  wall best %.3f ms (%.1f GFLOP/s) mean %.3f | cpu best %.3f ms (%.1f GFLOP/s per "
        "core)  impl=%s\n",
        prec, M, K, N, best * 1e3, 2.0 * M * K * N / best * 1e-9, total / iters * 1e3, cbest * 1e3,
        2.0 * M * K * N / cbest * 1e-9, pd.impl_info_str());
  }
  return 0;
}
