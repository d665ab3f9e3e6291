// Measurement only (not a test): CLIP throughput and memory at one precision, as one JSON line.
//
//   clip_bench MODEL_DIR [--precision f32|bf16|int8] [--threads N] [--iters N] [--warmup N] [--int8-file PATH]
//              [--classnames PROMPTS_JSON] [--dump-ids OUT_JSON] [--skip images|texts] [--save-int8 PATH]
// --save-int8 writes the int8 weights file (models::save_int8_weights) and exits.
//
// images/s at batch 1 and 8 (random pixels), texts/s at batch 8 for the same 12-token ids the ONNX Runtime and
// PyTorch peer scripts use, and texts/s for the 1,000 ImageNet class names through "a photo of a {}." (all at
// once, ragged). Timing as ort_bench.mjs: `warmup` calls, then `iters` calls, throughput = items / total time.
// Also the process CPU time per item (robust when the machine is shared) and the resident memory.
#include <time.h>  // NOLINT(modernize-deprecated-headers): POSIX clock_gettime, not in <ctime>'s std::

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "models/clip.h"
#include "text/clip_tokenizer.h"

using namespace zeroshot;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

long status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + std::string(key).size());
  return -1;
}

struct Timing {
  double per_s = 0, median_ms = 0, cpu_ms_per_item = 0;
};

template <class F>
Timing time_it(int items, int warmup, int iters, F&& f) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> ms;
  const double t0 = now(), c0 = cpu_now();
  for (int i = 0; i < iters; ++i) {
    const double a = now();
    f();
    ms.push_back((now() - a) * 1e3);
  }
  const double total = now() - t0, cpu = cpu_now() - c0;
  std::sort(ms.begin(), ms.end());
  return {items * iters / total, ms[ms.size() / 2], cpu * 1e3 / (items * iters)};
}

std::string json_timing(const Timing& t) {
  char b[200];
  std::snprintf(b, sizeof b, "{\"per_s\": %.2f, \"median_ms\": %.2f, \"cpu_ms_per_item\": %.2f}", t.per_s, t.median_ms,
                t.cpu_ms_per_item);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: clip_bench MODEL_DIR [--precision f32|bf16|int8] [--threads N] [--iters N] ...\n");
    return 2;
  }
  const std::string dir = argv[1];
  std::string precision = "f32", int8_file,
              classnames = std::string(ZEROSHOT_SOURCE_DIR) + "/data/zero_shot_prompts.json", dump_ids, skip, save_int8;
  int threads = 2, iters = 10, warmup = 2;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--precision") precision = v;
    else if (k == "--threads") threads = std::atoi(v.c_str());
    else if (k == "--iters") iters = std::atoi(v.c_str());
    else if (k == "--warmup") warmup = std::atoi(v.c_str());
    else if (k == "--int8-file") int8_file = v;
    else if (k == "--classnames") classnames = v;
    else if (k == "--dump-ids") dump_ids = v;
    else if (k == "--skip") skip = v;
    else if (k == "--save-int8") save_int8 = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  try {
    if (!save_int8.empty()) {
      const double t0 = now();
      models::save_int8_weights(models::ClipConfig::load(dir + "/config.json"), io::WeightStore::open_dir(dir),
                                save_int8);
      std::printf("{\"saved\": \"%s\", \"seconds\": %.2f}\n", save_int8.c_str(), now() - t0);
      return 0;
    }
    models::ClipOptions opt;
    opt.threads = threads;
    opt.precision = precision == "bf16"   ? models::Precision::BF16
                    : precision == "int8" ? models::Precision::Int8
                                          : models::Precision::F32;
    if (!int8_file.empty()) opt.int8_weights = std::make_shared<const io::SafeTensorsFile>(int8_file);
    const long rss0 = status_kb("VmRSS:");
    const double t0 = now();
    const models::ClipConfig cfg = models::ClipConfig::load(dir + "/config.json");
    auto store = std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(dir));
    models::ClipModel model(cfg, store, opt);
    const double load_s = now() - t0;
    const long rss_loaded = status_kb("VmRSS:");
    const text::ClipTokenizer tok = text::ClipTokenizer::from_dir(dir);

    std::string out = "{\"precision\": \"" + precision + "\", \"threads\": " + std::to_string(threads) +
                      ", \"int8_from_file\": " + (model.int8_from_file() ? "true" : "false") +
                      ", \"load_s\": " + std::to_string(load_s) +
                      ", \"rss_before_load_mb\": " + std::to_string(rss0 / 1024) +
                      ", \"rss_loaded_mb\": " + std::to_string(rss_loaded / 1024);
    const int s = cfg.vision.image_size, dim = cfg.projection_dim;
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    if (skip != "images") {
      for (int b : {1, 8}) {
        std::vector<float> pix(static_cast<size_t>(b) * 3 * s * s), emb(static_cast<size_t>(b) * dim);
        for (auto& v : pix) v = u(rng);
        const Timing t = time_it(b, warmup, iters, [&] { model.encode_images(pix.data(), b, emb.data()); });
        out += ", \"images_b" + std::to_string(b) + "\": " + json_timing(t);
      }
    }
    if (skip != "texts") {
      for (int b : {1, 8}) {
        // clip_torch.py bench / ort_bench.mjs ids: bos, 10 tokens, eos.
        std::vector<std::vector<int32_t>> ids(static_cast<size_t>(b));
        for (int i = 0; i < b; ++i) {
          ids[i].push_back(49406);
          for (int j = 0; j < 10; ++j) ids[i].push_back(320 + (i * 7 + j) % 4000);
          ids[i].push_back(49407);
        }
        std::vector<float> emb(static_cast<size_t>(b) * dim);
        const Timing t = time_it(b, warmup, iters, [&] { model.encode_texts(ids, emb.data()); });
        out += ", \"texts_b" + std::to_string(b) + "_L12\": " + json_timing(t);
      }
      const io::Json prompts = io::load_json(classnames);
      std::vector<std::vector<int32_t>> ids;
      for (const auto& c : prompts["datasets"]["imagenet"]["classes"])
        ids.push_back(tok.encode("a photo of a " + c.get<std::string>() + "."));
      size_t tokens = 0;
      for (const auto& v : ids) tokens += v.size();
      if (!dump_ids.empty()) {
        std::ofstream f(dump_ids);
        f << io::Json(ids).dump();
      }
      std::vector<float> emb(ids.size() * dim);
      const Timing t = time_it(static_cast<int>(ids.size()), 1, std::max(1, iters / 5),
                               [&] { model.encode_texts(ids, emb.data()); });
      out += ", \"classnames_1000\": " + json_timing(t) + ", \"classnames_tokens\": " + std::to_string(tokens);
    }
    out += ", \"rss_peak_mb\": " + std::to_string(status_kb("VmHWM:") / 1024) + "}";
    std::printf("%s\n", out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clip_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
