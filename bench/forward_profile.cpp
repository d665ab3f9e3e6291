// Measurement only (not a test): one tower's forward pass at one precision in a loop, for a profiler to attribute
// (docs/benchmarks.md "Where the forward pass goes"). Unlike `zeroshot bench` it builds no f32 copy for the
// cosine and times nothing else, so every sample of `perf record` belongs to the forward pass being measured.
//
//   forward_profile MODEL_DIR [--precision f32|bf16|int8] [--batch N] [--iters N] [--threads N] [--texts TOKENS]
// --texts TOKENS: the text tower on `batch` texts of TOKENS token ids each (default: the image / audio tower on
// random inputs; audio models are not supported here). Prints one JSON line: items/s and CPU seconds per item.
#include <time.h>  // NOLINT(modernize-deprecated-headers): POSIX clock_gettime, not in <ctime>'s std::

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "zeroshot/error.h"
#include "zeroshot/zeroshot.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: forward_profile MODEL_DIR [--precision f32|bf16|int8] [--batch N] [--iters N] "
                 "[--threads N] [--texts TOKENS]\n");
    return 2;
  }
  zeroshot::ModelOptions opt;
  int batch = 8, iters = 5, text_tokens = 0;
  std::string prec = "f32";
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const char* v = argv[i + 1];
    if (a == "--precision") prec = v;
    else if (a == "--batch") batch = std::atoi(v);
    else if (a == "--iters") iters = std::atoi(v);
    else if (a == "--threads") opt.threads = std::atoi(v);
    else if (a == "--texts") text_tokens = std::atoi(v);
    else {
      std::fprintf(stderr, "forward_profile: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  opt.precision = prec == "int8"   ? zeroshot::Precision::Int8
                  : prec == "bf16" ? zeroshot::Precision::BF16
                                   : zeroshot::Precision::F32;
  opt.offline = true;
  try {
    auto model = zeroshot::Model::load(argv[1], opt);
    std::mt19937 rng(1);
    std::vector<float> pixels;
    std::vector<std::vector<int32_t>> ids;
    if (text_tokens > 0) {
      // Real token ids of the model's vocabulary (the tokenizer's own output), repeated to the length asked for.
      const std::vector<int32_t> base = model->tokenize("a photo of a cat sitting on a wooden table in the sun");
      for (int b = 0; b < batch; ++b) {
        std::vector<int32_t> t(base.begin(), base.end() - 1);
        while (static_cast<int>(t.size()) < text_tokens - 1) t.push_back(base[1 + t.size() % (base.size() - 2)]);
        t.resize(static_cast<size_t>(text_tokens - 1));
        t.push_back(base.back());
        ids.push_back(t);
      }
    } else {
      const size_t s = static_cast<size_t>(model->image_size());
      if (s == 0) throw zeroshot::Error(argv[1], "forward_profile: audio models are not supported");
      pixels.resize(static_cast<size_t>(batch) * 3 * s * s);
      std::normal_distribution<float> nd(0.0f, 1.0f);
      for (float& p : pixels) p = nd(rng);
    }
    auto step = [&] {
      if (text_tokens > 0) (void)model->embed_token_ids(ids);
      else (void)model->embed_pixel_values(pixels.data(), static_cast<size_t>(batch));
    };
    step();  // untimed: first-use packing, scratch buffers
    const double t0 = now(), c0 = cpu_now();
    for (int i = 0; i < iters; ++i) step();
    const double wall = now() - t0, cpu = cpu_now() - c0;
    const double items = static_cast<double>(batch) * iters;
    std::printf(
        "{\"model\":\"%s\",\"precision\":\"%s\",\"tower\":\"%s\",\"batch\":%d,\"iters\":%d,"
        "\"items_per_s\":%.4f,\"cpu_s_per_item\":%.5f}\n",
        argv[1], prec.c_str(), text_tokens > 0 ? "text" : "image", batch, iters, items / wall, cpu / items);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
