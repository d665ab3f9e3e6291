#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <future>
#include <thread>

#include "image/image.h"
#include "image/image_processor.h"
#include "io/hub.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/clip.h"
#include "text/clip_tokenizer.h"
#include "zeroshot/zeroshot.h"

namespace zeroshot {

namespace fs = std::filesystem;

struct Model::Impl {
  std::string name;
  std::string dir;
  ModelOptions opt;
  std::shared_ptr<const io::WeightStore> weights;
  models::ClipConfig cfg;
  std::unique_ptr<models::ClipModel> clip;
  std::unique_ptr<text::ClipTokenizer> tokenizer;
  std::unique_ptr<image::ImageProcessor> processor;
  image::DecodeOptions decode;
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& name_or_path, const ModelOptions& opt) {
  auto impl = std::make_unique<Impl>();
  impl->name = name_or_path;
  impl->opt = opt;
  io::HubOptions hub;
  hub.revision = opt.revision;
  hub.offline = opt.offline;
  hub.progress = opt.progress;
  impl->dir = io::resolve_model(name_or_path, hub);
  const fs::path dir(impl->dir);
  if (!fs::is_directory(dir)) throw Error(name_or_path, "not a model folder");
  const fs::path config = dir / "config.json";
  if (!fs::exists(config)) throw Error(impl->dir, "no config.json (not a Hugging Face model folder)");

  // The architecture decides which model is built; only CLIP exists so far.
  const io::Json j = io::load_json(config.string());
  const std::string type = j.is_object() ? j.value("model_type", "") : "";
  if (type != "clip")
    throw Error(config.string(), type.empty() ? "no \"model_type\"" : "unsupported model_type \"" + type + "\" (supported: clip)");
  impl->cfg = models::ClipConfig::load(config.string());
  impl->tokenizer = std::make_unique<text::ClipTokenizer>(text::ClipTokenizer::from_dir(impl->dir));

  const fs::path pre = dir / "preprocessor_config.json";
  image::ImageProcessorConfig pcfg;
  if (fs::exists(pre)) {
    pcfg = image::ImageProcessorConfig::load(pre.string());
  } else {
    // CLIP's standard processing at the vision tower's resolution.
    pcfg.shortest_edge = pcfg.crop_height = pcfg.crop_width = impl->cfg.vision.image_size;
  }
  impl->processor = std::make_unique<image::ImageProcessor>(pcfg);
  if (impl->processor->out_height() != impl->cfg.vision.image_size || impl->processor->out_width() != impl->cfg.vision.image_size)
    throw Error(pre.string(), "crop size " + std::to_string(impl->processor->out_height()) + "x" +
                                  std::to_string(impl->processor->out_width()) + " does not match vision_config.image_size " +
                                  std::to_string(impl->cfg.vision.image_size));
  impl->decode.max_pixels = opt.max_image_pixels;

  // Memory-mapped weights used in place (no copy) where their dtype and alignment allow.
  impl->weights = std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(impl->dir));
  impl->clip = std::make_unique<models::ClipModel>(impl->cfg, impl->weights, opt.threads);
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const std::string& Model::name() const { return impl_->name; }
const std::string& Model::directory() const { return impl_->dir; }
const char* Model::model_type() const { return "clip"; }
size_t Model::embedding_dim() const { return static_cast<size_t>(impl_->cfg.projection_dim); }
int Model::image_size() const { return impl_->cfg.vision.image_size; }
float Model::logit_scale() const { return std::exp(impl_->clip->logit_scale()); }

std::vector<int32_t> Model::tokenize(const std::string& text) const {
  return impl_->tokenizer->encode(text, static_cast<size_t>(impl_->cfg.text.max_positions));
}

std::vector<float> Model::preprocess_image_file(const std::string& path) const {
  return impl_->processor->preprocess(image::decode_file(path, impl_->decode));
}

std::vector<float> Model::preprocess_image_memory(const uint8_t* data, size_t size, const std::string& name) const {
  return impl_->processor->preprocess(image::decode_memory(data, size, name, impl_->decode));
}

Embeddings Model::embed_pixel_values(const float* pixel_values, size_t n) const {
  Embeddings e;
  e.rows = n;
  e.dim = embedding_dim();
  e.data.resize(n * e.dim);
  if (n) impl_->clip->encode_images(pixel_values, static_cast<int>(n), e.data.data());
  return e;
}

Embeddings Model::embed_token_ids(const std::vector<std::vector<int32_t>>& ids) const {
  Embeddings e;
  e.rows = ids.size();
  e.dim = embedding_dim();
  e.data.resize(e.rows * e.dim);
  if (!ids.empty()) impl_->clip->encode_texts(ids, e.data.data());
  return e;
}

Embeddings Model::embed_texts(const std::vector<std::string>& texts) const {
  std::vector<std::vector<int32_t>> ids;
  ids.reserve(texts.size());
  for (const auto& t : texts) ids.push_back(tokenize(t));
  return embed_token_ids(ids);
}

Embeddings Model::embed_image_files(const std::vector<std::string>& paths) const {
  const size_t per = static_cast<size_t>(3) * image_size() * image_size();
  std::vector<float> pixels(paths.size() * per);
  for (size_t i = 0; i < paths.size(); ++i) {
    std::vector<float> p = preprocess_image_file(paths[i]);
    std::copy(p.begin(), p.end(), pixels.begin() + static_cast<std::ptrdiff_t>(i * per));
  }
  return embed_pixel_values(pixels.data(), paths.size());
}

namespace {

struct DecodedBatch {
  std::vector<float> pixels;        // ok.size() x [3,S,S], only the files that decoded
  std::vector<size_t> ok;           // indexes (into the batch) of those files
  std::vector<std::string> errors;  // per file of the batch; empty when it decoded
};

}  // namespace

void Model::embed_image_files(const std::vector<std::string>& paths, size_t batch_size,
                              const ImageResultFn& on_result) const {
  if (batch_size == 0) batch_size = 1;
  const unsigned workers = impl_->opt.threads > 0 ? static_cast<unsigned>(impl_->opt.threads)
                                                  : std::max(1u, std::thread::hardware_concurrency());
  auto decode = [&](size_t begin) {
    const size_t n = std::min(batch_size, paths.size() - begin);
    std::vector<std::vector<float>> px(n);
    DecodedBatch b;
    b.errors.resize(n);
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i; (i = next++) < n;) {
        try {
          px[i] = preprocess_image_file(paths[begin + i]);
        } catch (const std::exception& e) {
          b.errors[i] = e.what();
        }
      }
    };
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < std::min<size_t>(workers, n); ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    for (size_t i = 0; i < n; ++i) {
      if (!b.errors[i].empty()) continue;
      b.ok.push_back(i);
      b.pixels.insert(b.pixels.end(), px[i].begin(), px[i].end());
    }
    return b;
  };
  if (paths.empty()) return;
  std::future<DecodedBatch> pending = std::async(std::launch::async, decode, 0);
  for (size_t begin = 0; begin < paths.size(); begin += batch_size) {
    DecodedBatch b = pending.get();
    if (begin + batch_size < paths.size()) pending = std::async(std::launch::async, decode, begin + batch_size);
    const Embeddings e = embed_pixel_values(b.pixels.data(), b.ok.size());
    size_t k = 0;
    for (size_t i = 0; i < b.errors.size(); ++i) {
      const bool good = b.errors[i].empty();
      if (!on_result(begin + i, good ? e.row(k) : nullptr, b.errors[i])) {
        if (pending.valid()) pending.wait();
        return;
      }
      if (good) ++k;
    }
  }
}

}  // namespace zeroshot
