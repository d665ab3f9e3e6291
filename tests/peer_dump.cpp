// Test helper for the PyTorch spot check: writes what the engine computed for some images and labels
// (pixel_values, image embeddings, prompt token ids, scores) to a safetensors file the peer script reads.
//   peer_dump MODEL_DIR OUT.safetensors LABELS_COMMA_SEPARATED IMAGE...
#include <cstdio>
#include <string>
#include <vector>

#include "classify/zero_shot.h"
#include "io/safetensors.h"
#include "zeroshot/zeroshot.h"

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: peer_dump MODEL_DIR OUT.safetensors LABELS IMAGE...\n");
    return 2;
  }
  try {
    auto model = zeroshot::Model::load(argv[1]);
    std::vector<std::string> labels;
    std::string cur;
    for (const char* p = argv[3];; ++p) {
      if (*p == ',' || *p == 0) {
        labels.push_back(cur);
        cur.clear();
        if (!*p) break;
      } else {
        cur += *p;
      }
    }
    zeroshot::ZeroShotClassifier clf(*model, labels);
    std::vector<std::string> images(argv + 4, argv + argc);
    const int64_t n = static_cast<int64_t>(images.size()), s = model->image_size(),
                  d = static_cast<int64_t>(model->embedding_dim());
    std::vector<float> pixels;
    for (const auto& im : images) {
      auto p = model->preprocess_image_file(im);
      pixels.insert(pixels.end(), p.begin(), p.end());
    }
    const auto emb = model->embed_pixel_values(pixels.data(), images.size());
    std::vector<float> scores;
    for (int64_t i = 0; i < n; ++i) {
      auto r = clf.classify(emb.row(static_cast<size_t>(i)));
      // back to label order
      for (const auto& l : labels)
        for (const auto& x : r)
          if (x.label == l) scores.push_back(x.score);
    }
    std::vector<std::vector<int64_t>> ids;  // I64: the dtype the peer's reader knows for integers
    for (const auto& l : labels) {
      auto t = model->tokenize(zeroshot::classify::fill_template(zeroshot::kDefaultImageTemplate, l));
      ids.emplace_back(t.begin(), t.end());
    }
    std::vector<zeroshot::io::TensorData> t = {
        {"pixel_values", zeroshot::io::DType::F32, {n, 3, s, s}, pixels.data()},
        {"image_embeds", zeroshot::io::DType::F32, {n, d}, emb.data.data()},
        {"label_embeds",
         zeroshot::io::DType::F32,
         {static_cast<int64_t>(labels.size()), d},
         clf.label_embeddings().data.data()},
        {"scores", zeroshot::io::DType::F32, {n, static_cast<int64_t>(labels.size())}, scores.data()},
    };
    for (size_t k = 0; k < ids.size(); ++k)
      t.push_back(
          {"ids/" + std::to_string(k), zeroshot::io::DType::I64, {static_cast<int64_t>(ids[k].size())}, ids[k].data()});
    zeroshot::io::write_safetensors(argv[2], t, {{"logit_scale", std::to_string(model->logit_scale())}});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "peer_dump: %s\n", e.what());
    return 1;
  }
  return 0;
}
