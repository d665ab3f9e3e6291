// Measurement only (not a test): how far bf16 and int8 embeddings are from f32 on real inputs.
//
//   clip_precision_check MODEL_DIR [--images DIR] [--limit N] [--threads N] [--classnames PROMPTS_JSON]
//
// Every image file of DIR (default: shared/datasets/imagenet-samples) and the 1,000 ImageNet class names through
// "a photo of a {}." are embedded at F32, BF16 and Int8 (through the public API, so with its preprocessing);
// prints, per precision, the min / mean cosine similarity to the F32 embedding of the same input and how often
// the zero-shot top-1 class (image vs. the class-name embeddings of the same precision) differs from F32's.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "io/json.h"
#include "zeroshot/zeroshot.h"

using namespace zeroshot;

namespace {

double cosine(const float* a, const float* b, size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

struct Stats {
  double min = 1.0, sum = 0.0;
  size_t n = 0;
  void add(double c) {
    min = std::min(min, c);
    sum += c;
    ++n;
  }
};

size_t argmax_cos(const float* img, const Embeddings& text) {
  size_t best = 0;
  double bv = -2;
  for (size_t j = 0; j < text.rows; ++j) {
    const double c = cosine(img, text.row(j), text.dim);
    if (c > bv) bv = c, best = j;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: clip_precision_check MODEL_DIR [--images DIR] [--limit N] [--threads N]\n");
    return 2;
  }
  std::string images = std::string(ZEROSHOT_SHARED) + "/datasets/imagenet-samples";
  std::string classnames = std::string(ZEROSHOT_SOURCE_DIR) + "/data/zero_shot_prompts.json";
  size_t limit = 0;
  int threads = 2;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--images") images = v;
    else if (k == "--limit") limit = std::strtoul(v.c_str(), nullptr, 10);
    else if (k == "--threads") threads = std::atoi(v.c_str());
    else if (k == "--classnames") classnames = v;
  }
  try {
    const Precision precs[3] = {Precision::F32, Precision::BF16, Precision::Int8};
    const char* names[3] = {"f32", "bf16", "int8"};
    std::unique_ptr<Model> m[3];
    for (int p = 0; p < 3; ++p) {
      ModelOptions o;
      o.threads = threads;
      o.precision = precs[p];
      o.offline = true;
      o.progress = false;
      m[p] = Model::load(argv[1], o);
    }
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(images))
      if (e.is_regular_file()) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    if (limit && files.size() > limit) files.resize(limit);

    const io::Json prompts = io::load_json(classnames);
    std::vector<std::string> texts;
    for (const auto& c : prompts["datasets"]["imagenet"]["classes"])
      texts.push_back("a photo of a " + c.get<std::string>() + ".");
    Embeddings te[3];
    for (int p = 0; p < 3; ++p) te[p] = m[p]->embed_texts(texts);
    Stats text_stats[3], image_stats[3];
    for (int p = 1; p < 3; ++p)
      for (size_t i = 0; i < texts.size(); ++i) text_stats[p].add(cosine(te[p].row(i), te[0].row(i), te[0].dim));

    size_t top1_diff[3] = {0, 0, 0}, done = 0;
    std::string worst[3];
    const size_t batch = 16;
    for (size_t b0 = 0; b0 < files.size(); b0 += batch) {
      std::vector<float> pix;
      std::vector<std::string> batch_files;
      for (size_t i = b0; i < std::min(files.size(), b0 + batch); ++i) {
        try {
          const std::vector<float> v = m[0]->preprocess_image_file(files[i]);
          pix.insert(pix.end(), v.begin(), v.end());
          batch_files.push_back(files[i]);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "skipped %s\n", e.what());
        }
      }
      const size_t n = batch_files.size();
      if (!n) continue;
      Embeddings ie[3];
      for (int p = 0; p < 3; ++p) ie[p] = m[p]->embed_pixel_values(pix.data(), n);
      for (size_t i = 0; i < n; ++i) {
        const size_t ref = argmax_cos(ie[0].row(i), te[0]);
        for (int p = 1; p < 3; ++p) {
          const double c = cosine(ie[p].row(i), ie[0].row(i), ie[0].dim);
          if (c < image_stats[p].min) worst[p] = batch_files[i];
          image_stats[p].add(c);
          if (argmax_cos(ie[p].row(i), te[p]) != ref) ++top1_diff[p];
        }
      }
      done += n;
      std::fprintf(stderr, "\r%zu / %zu images", done, files.size());
    }
    std::fprintf(stderr, "\n");
    std::printf("{\"model\": \"%s\", \"images\": %zu, \"texts\": %zu", argv[1], done, texts.size());
    for (int p = 1; p < 3; ++p)
      std::printf(
          ", \"%s\": {\"image_min_cos\": %.6f, \"image_mean_cos\": %.6f, \"worst_image\": \"%s\", \"text_min_cos\": "
          "%.6f, "
          "\"text_mean_cos\": %.6f, \"top1_differs_from_f32\": %zu}",
          names[p], image_stats[p].min, image_stats[p].sum / std::max<size_t>(1, image_stats[p].n),
          std::filesystem::path(worst[p]).filename().c_str(), text_stats[p].min,
          text_stats[p].sum / std::max<size_t>(1, text_stats[p].n), top1_diff[p]);
    std::printf("}\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clip_precision_check: %s\n", e.what());
    return 1;
  }
  return 0;
}
