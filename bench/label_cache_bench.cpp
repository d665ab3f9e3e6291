// The label-embedding cache on a big label set: builds a ZeroShotClassifier for a built-in label set x template set
// (default ImageNet's 1,000 classes x CLIP's 80 templates) and prints one JSON line: how long it took, whether the
// embeddings came from the cache, peak RSS. Run it twice with the same --cache-dir for first vs second call.
//
//   label_cache_bench MODEL [--labels imagenet] [--templates imagenet80] [--cache-dir DIR|none] [--threads N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "classify/label_sets.h"
#include "zeroshot/zeroshot.h"

namespace {

double vm_hwm_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(
        stderr,
        "usage: label_cache_bench MODEL [--labels SET] [--templates SET] [--cache-dir DIR|none] [--threads N]\n");
    return 2;
  }
  std::string labels = "imagenet", templates = "imagenet80";
  zeroshot::ClassifierOptions copt;
  zeroshot::ModelOptions mopt;
  mopt.progress = false;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--labels") labels = v;
    else if (k == "--templates") templates = v;
    else if (k == "--cache-dir") copt.cache_dir = v;
    else if (k == "--threads") mopt.threads = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "label_cache_bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  try {
    const auto* set = zeroshot::classify::find_label_set(labels);
    std::vector<std::string> tmpl;
    if (!set || !zeroshot::classify::find_template_set(templates, &tmpl)) {
      std::fprintf(stderr, "label_cache_bench: unknown label or template set\n");
      return 2;
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto model = zeroshot::Model::load(argv[1], mopt);
    const auto t1 = std::chrono::steady_clock::now();
    const zeroshot::ZeroShotClassifier clf(*model, set->classes, tmpl, copt);
    const auto t2 = std::chrono::steady_clock::now();
    size_t prompts = 0;
    for (const auto& c : set->classes) prompts += c.size() * tmpl.size();
    std::printf(
        "{\"labels\": \"%s\", \"classes\": %zu, \"templates\": %zu, \"prompts\": %zu, \"load_s\": %.4f, "
        "\"label_embeddings_s\": %.4f, \"cached\": %s, \"peak_rss_mb\": %.1f}\n",
        labels.c_str(), set->classes.size(), tmpl.size(), prompts, std::chrono::duration<double>(t1 - t0).count(),
        std::chrono::duration<double>(t2 - t1).count(), clf.label_embeddings_cached() ? "true" : "false", vm_hwm_mb());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "label_cache_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
