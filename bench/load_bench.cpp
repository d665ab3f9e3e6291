// Load time of one model from different weight files (e.g. model.safetensors vs pytorch_model.bin of the same
// weights), alternating rounds in one process, medians. Each folder must hold exactly one of them.
//
//   load_bench DIR_A DIR_B [DIR_C ...] [--rounds N]
//
// Per round and folder: "open" = WeightStore::open_dir (index / unpickle, mapping), "read" = open + every float
// tensor converted to f32 (what a loader touches), "model" = zeroshot::Model::load (the public API: config,
// tokenizer, weights prepacked). First the folders are checked to hold the same tensors, byte for byte.
// Warm page cache (the first, discarded round reads the files). Prints one JSON line per folder: wall and
// process-CPU medians (on a busy machine wall time mostly measures waiting for a CPU; read the CPU time).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "zeroshot/zeroshot.h"

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> dirs;
  int rounds = 7;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else dirs.emplace_back(argv[i]);
  }
  if (dirs.size() < 2 || rounds < 1) {
    std::fprintf(stderr, "usage: load_bench DIR_A DIR_B [DIR_C ...] [--rounds N]\n");
    return 2;
  }
  try {
    const auto ref = zeroshot::io::WeightStore::open_dir(dirs[0]);
    for (size_t d = 1; d < dirs.size(); ++d) {
      const auto other = zeroshot::io::WeightStore::open_dir(dirs[d]);
      if (other.names() != ref.names()) throw zeroshot::Error(dirs[d], "holds other tensors than " + dirs[0]);
      for (const auto& n : ref.names()) {
        const auto &a = ref.get(n), &b = other.get(n);
        if (a.dtype != b.dtype || a.shape != b.shape || a.nbytes != b.nbytes || std::memcmp(a.data, b.data, a.nbytes))
          throw zeroshot::Error(dirs[d], "tensor " + n + " differs from " + dirs[0]);
      }
    }
    std::vector<std::vector<double>> open_ms(dirs.size()), read_ms(dirs.size()), model_ms(dirs.size());
    std::vector<std::vector<double>> open_cpu(dirs.size()), read_cpu(dirs.size()), model_cpu(dirs.size());
    zeroshot::ModelOptions mopt;
    mopt.progress = false;
    for (int r = 0; r <= rounds; ++r) {
      for (size_t k = 0; k < dirs.size(); ++k) {
        const size_t d = r % 2 ? dirs.size() - 1 - k : k;  // alternate the order
        double c0 = cpu_ms(), t0 = now_ms();
        auto ws = zeroshot::io::WeightStore::open_dir(dirs[d]);
        double c1 = cpu_ms(), t1 = now_ms();
        std::vector<float> buf;
        double sum = 0;
        for (const auto& n : ws.names()) {
          const auto& t = ws.get(n);
          if (!t.is_float()) continue;
          buf.resize(static_cast<size_t>(t.numel()));
          zeroshot::io::to_f32(t, buf.data());
          sum += buf.empty() ? 0 : buf[0];
        }
        double c2 = cpu_ms(), t2 = now_ms();
        auto model = zeroshot::Model::load(dirs[d], mopt);
        double c3 = cpu_ms(), t3 = now_ms();
        if (sum == 12345.678) std::printf("#");  // keep the reads
        if (r == 0) continue;                    // warm-up round
        open_ms[d].push_back(t1 - t0);
        read_ms[d].push_back(t2 - t0);
        model_ms[d].push_back(t3 - t2);
        open_cpu[d].push_back(c1 - c0);
        read_cpu[d].push_back(c2 - c0);
        model_cpu[d].push_back(c3 - c2);
      }
    }
    for (size_t d = 0; d < dirs.size(); ++d)
      std::printf(
          "{\"dir\": \"%s\", \"rounds\": %d, \"open_ms\": %.2f, \"open_cpu_ms\": %.2f, \"open_read_f32_ms\": %.1f, "
          "\"open_read_f32_cpu_ms\": %.1f, \"model_load_ms\": %.1f, \"model_load_cpu_ms\": %.1f}\n",
          dirs[d].c_str(), rounds, median(open_ms[d]), median(open_cpu[d]), median(read_ms[d]), median(read_cpu[d]),
          median(model_ms[d]), median(model_cpu[d]));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
