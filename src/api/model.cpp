#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "api/clap_backend.h"
#include "api/model_fingerprint.h"
#include "api/trace.h"
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
  std::unique_ptr<api::ClapBackend> clap;  // audio models (model_type "clap"); then the CLIP members are unused
  std::unique_ptr<image::ImageProcessor> processor;
  image::DecodeOptions decode;

  // Parsed on first use (tokenizer()): ~30 ms that a cached label set or an image-only run never needs.
  std::vector<std::string> tokenizer_files;  // vocab.json + merges.txt, or tokenizer.json
  // (A mutex, not std::call_once: a failed load throws, and the next call must try again.)
  mutable std::mutex lazy_mutex;
  mutable std::unique_ptr<text::ClipTokenizer> tokenizer_ptr;
  mutable std::atomic<const text::ClipTokenizer*> tokenizer_ready{nullptr};
  const text::ClipTokenizer& tokenizer() const {
    if (const text::ClipTokenizer* t = tokenizer_ready.load(std::memory_order_acquire)) return *t;
    std::lock_guard lock(lazy_mutex);
    if (!tokenizer_ptr) {
      trace::Phase p("load tokenizer");
      tokenizer_ptr = std::make_unique<text::ClipTokenizer>(text::ClipTokenizer::from_dir(dir));
      tokenizer_ready.store(tokenizer_ptr.get(), std::memory_order_release);
    }
    return *tokenizer_ptr;
  }

  mutable std::string fingerprint;  // guarded by lazy_mutex; "" until computed

  // Background page-table population of the vision tower's mapped weights (see prefetch_vision_weights).
  std::atomic<bool> stop_prefetch{false};
  std::set<std::string> prefetch_skip;  // weights the prefetch leaves alone (models::weight_is_converted)
  std::thread prefetch;
  ~Impl() {
    stop_prefetch = true;
    if (prefetch.joinable()) prefetch.join();
  }
};

namespace {

// A process that embeds an image first faults in ~350 MB of mapped vision weights, 4 KiB pages, 16 per fault: on
// a VM that costs about as much as the forward pass itself. MADV_POPULATE_READ (Linux 5.14) maps the same pages
// ~40% cheaper, and a thread started at load does it while the caller is still decoding its image or reading its
// label cache. The text tower is left to fault on use: a cached label set never reads it. Best effort: any
// failure (an older kernel: EINVAL) just stops the thread.
// `skip`: weights that the build converts (or, with an int8 weights file, never reads).
void prefetch_vision_weights(const io::WeightStore& ws, const std::set<std::string>& skip, const std::atomic<bool>& stop) {
#ifdef MADV_POPULATE_READ
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  for (const auto& name : ws.names()) {
    if (name.rfind("vision_model.", 0) != 0 && name.rfind("visual_projection.", 0) != 0) continue;
    if (skip.count(name)) continue;  // converted at load (read once, pages released) or not read at all
    const io::TensorView& t = ws.get(name);
    const auto b = reinterpret_cast<uintptr_t>(t.data);
    if (t.nbytes) ranges.emplace_back(b & ~(page - 1), (b + t.nbytes + page - 1) & ~(page - 1));
  }
  std::sort(ranges.begin(), ranges.end());
  constexpr uintptr_t kChunk = uintptr_t(4) << 20;  // stop is checked between chunks
  for (const auto& [b, e] : ranges)
    for (uintptr_t p = b; p < e && !stop; p += kChunk)
      if (madvise(reinterpret_cast<void*>(p), std::min(kChunk, e - p), MADV_POPULATE_READ) != 0) return;
#else
  (void)ws;
  (void)skip;
  (void)stop;
#endif
}

}  // namespace

namespace {

// Image calls on an audio model: one clear error instead of a decoder's complaint.
void require_images(const Model& m, const std::string& input) {
  if (m.modality() != Modality::Image)
    throw Error(input, m.name() + " is an audio model (" + m.model_type() + "): it takes audio, not images");
}

}  // namespace

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
  trace::Phase total("Model::load");
  {
    trace::Phase p("resolve model");
    impl->dir = io::resolve_model(name_or_path, hub);
  }
  const fs::path dir(impl->dir);
  if (!fs::is_directory(dir)) throw Error(name_or_path, "not a model folder");
  const fs::path config = dir / "config.json";
  if (!fs::exists(config)) throw Error(impl->dir, "no config.json (not a Hugging Face model folder)");

  // The architecture decides which model is built; only CLIP exists so far.
  const io::Json j = io::load_json(config.string());
  const std::string type = j.is_object() ? j.value("model_type", "") : "";
  if (type == "clap") {
    if (!(opt.max_audio_seconds > 0)) throw Error("max_audio_seconds", "must be positive");
    api::ClapBackendOptions aopt;
    aopt.threads = opt.threads;
    aopt.max_seconds = opt.max_audio_seconds;
    aopt.crop = opt.audio_crop == AudioCrop::Random ? audio::CropMode::Random : audio::CropMode::Deterministic;
    aopt.seed = opt.audio_seed;
    aopt.precision = opt.precision == Precision::BF16 ? nn::Precision::BF16
                     : opt.precision == Precision::Int8 ? nn::Precision::Int8
                                                        : nn::Precision::F32;
    impl->clap = std::make_unique<api::ClapBackend>(impl->dir, aopt);
    impl->weights = impl->clap->weights();
    impl->tokenizer_files = impl->clap->tokenizer_files();
    return std::unique_ptr<Model>(new Model(std::move(impl)));
  }
  if (type != "clip")
    throw Error(config.string(), type.empty() ? "no \"model_type\"" : "unsupported model_type \"" + type + "\" (supported: clip, clap)");
  impl->cfg = models::ClipConfig::load(config.string());
  {
    // The files ClipTokenizer::from_dir reads; when they are missing it is called now for its error message.
    std::error_code ec;
    if (fs::is_regular_file(dir / "vocab.json", ec) && fs::is_regular_file(dir / "merges.txt", ec))
      impl->tokenizer_files = {(dir / "vocab.json").string(), (dir / "merges.txt").string()};
    else if (fs::is_regular_file(dir / "tokenizer.json", ec))
      impl->tokenizer_files = {(dir / "tokenizer.json").string()};
    else
      (void)text::ClipTokenizer::from_dir(impl->dir);
  }

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
  {
    trace::Phase p("open weights");
    impl->weights = std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(impl->dir));
  }
  models::ClipOptions copt;
  copt.threads = opt.threads;
  copt.precision = opt.precision == Precision::BF16   ? models::Precision::BF16
                   : opt.precision == Precision::Int8 ? models::Precision::Int8
                                                      : models::Precision::F32;
  // Int8: weights quantized beforehand (`zeroshot quantize`), used when made from these weights (else ignored:
  // quantized at load, same values). A file that is not valid safetensors is refused: it was meant to be used.
  const fs::path int8_file = dir / models::kInt8WeightsFile;
  if (copt.precision == models::Precision::Int8 && fs::exists(int8_file)) {
    try {
      copt.int8_weights = std::make_shared<const io::SafeTensorsFile>(int8_file.string());
    } catch (const Error& e) {
      std::string why = e.what();
      if (why.rfind(int8_file.string() + ": ", 0) == 0) why.erase(0, int8_file.string().size() + 2);
      throw Error(int8_file.string(), "damaged int8 weights file (" + why + "); delete it or run `zeroshot quantize` again");
    }
  }
  // The prefetch maps only what is used in place: prefetching a weight that the build converts and then releases
  // would hold it twice (the prefetch runs ahead of the build: +300-500 MB at peak for ViT-L/14 bf16 / int8).
  impl->prefetch_skip.clear();
  for (const auto& name : impl->weights->names())
    if (models::weight_is_converted(name, copt.precision)) impl->prefetch_skip.insert(name);
  if (!std::getenv("ZEROSHOT_NO_PREFETCH"))
    impl->prefetch = std::thread(prefetch_vision_weights, std::cref(*impl->weights), std::cref(impl->prefetch_skip),
                                 std::cref(impl->stop_prefetch));
  {
    trace::Phase p("build model");
    impl->clip = std::make_unique<models::ClipModel>(impl->cfg, impl->weights, copt);
  }
  if (impl->clip->int8_from_file()) trace::note("int8 weights read from zeroshot-int8.safetensors");
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const std::string& Model::name() const { return impl_->name; }
const std::string& Model::directory() const { return impl_->dir; }
const char* Model::model_type() const { return impl_->clap ? "clap" : "clip"; }

std::string Model::fingerprint() const {
  std::lock_guard lock(impl_->lazy_mutex);
  if (impl_->fingerprint.empty()) {
    trace::Phase p("fingerprint");
    const fs::path dir(impl_->dir);
    std::vector<std::string> small = {(dir / "config.json").string(), (dir / "preprocessor_config.json").string()};
    small.insert(small.end(), impl_->tokenizer_files.begin(), impl_->tokenizer_files.end());
    std::set<std::string> files;  // the weight files actually read, in name order
    for (const auto& name : impl_->weights->names()) files.insert(impl_->weights->get(name).file);
    if (files.size() > 1) small.push_back((dir / "model.safetensors.index.json").string());
    const Precision pr = impl_->opt.precision;
    const char* precision = pr == Precision::BF16 ? "bf16" : pr == Precision::Int8 ? "int8" : "f32";
    impl_->fingerprint = api::model_fingerprint(small, {files.begin(), files.end()}, precision);
  }
  return impl_->fingerprint;
}
size_t Model::embedding_dim() const {
  if (impl_->clap) return impl_->clap->embedding_dim();
  return static_cast<size_t>(impl_->cfg.projection_dim); }
int Model::image_size() const { return impl_->clap ? 0 : impl_->cfg.vision.image_size; }
float Model::logit_scale() const {
  if (impl_->clap) return impl_->clap->logit_scale();
  return std::exp(impl_->clip->logit_scale()); }

std::vector<int32_t> Model::tokenize(const std::string& text) const {
  if (impl_->clap) return impl_->clap->tokenize(text);
  return impl_->tokenizer().encode(text, static_cast<size_t>(impl_->cfg.text.max_positions));
}

std::vector<float> Model::preprocess_image_file(const std::string& path) const {
  require_images(*this, path);
  return impl_->processor->preprocess(image::decode_file(path, impl_->decode));
}

std::vector<float> Model::preprocess_image_memory(const uint8_t* data, size_t size, const std::string& name) const {
  require_images(*this, name);
  return impl_->processor->preprocess(image::decode_memory(data, size, name, impl_->decode));
}

std::vector<float> Model::preprocess_rgb(const uint8_t* rgb, int width, int height, const std::string& name) const {
  require_images(*this, name);
  if (width <= 0 || height <= 0) throw Error(name, "invalid image size " + std::to_string(width) + "x" + std::to_string(height));
  image::RgbImage img;
  img.width = width;
  img.height = height;
  img.pixels.assign(rgb, rgb + static_cast<size_t>(width) * static_cast<size_t>(height) * 3);
  return impl_->processor->preprocess(img);
}

Embeddings Model::embed_pixel_values(const float* pixel_values, size_t n) const {
  require_images(*this, "pixel_values");
  trace::Phase p("encode images");
  Embeddings e;
  e.rows = n;
  e.dim = embedding_dim();
  e.data.resize(n * e.dim);
  if (n) impl_->clip->encode_images(pixel_values, static_cast<int>(n), e.data.data());
  return e;
}

Embeddings Model::embed_token_ids(const std::vector<std::vector<int32_t>>& ids) const {
  trace::Phase p("encode texts");
  Embeddings e;
  e.rows = ids.size();
  e.dim = embedding_dim();
  e.data.resize(e.rows * e.dim);
  if (impl_->clap) impl_->clap->embed_token_ids(ids, e.data.data());
  else if (!ids.empty()) impl_->clip->encode_texts(ids, e.data.data());
  return e;
}

Embeddings Model::embed_texts(const std::vector<std::string>& texts) const {
  std::vector<std::vector<int32_t>> ids;
  ids.reserve(texts.size());
  {
    trace::Phase p("tokenize");
    for (const auto& t : texts) ids.push_back(tokenize(t));
  }
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
  if (!paths.empty()) require_images(*this, paths[0]);
  if (batch_size == 0) batch_size = 1;
  const unsigned workers = impl_->opt.threads > 0 ? static_cast<unsigned>(impl_->opt.threads)
                                                  : std::max(1u, std::thread::hardware_concurrency());
  auto decode = [&](size_t begin) {
    trace::Phase p("decode batch");
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

// ---- audio models (CLAP, api/clap_backend.h) ------------------------------------------------------------------

namespace zeroshot {

Modality Model::modality() const { return impl_->clap ? Modality::Audio : Modality::Image; }
const char* Model::default_template() const { return impl_->clap ? kDefaultAudioTemplate : kDefaultImageTemplate; }

namespace {

void require_audio(const Model& m, const std::string& input) {
  if (m.modality() != Modality::Audio)
    throw Error(input, m.name() + " is an image model (" + m.model_type() + "): it takes images, not audio");
}

}  // namespace

Embeddings Model::embed_audio_files(const std::vector<std::string>& paths) const {
  Embeddings e;
  e.dim = embedding_dim();
  if (paths.empty()) return e;
  require_audio(*this, paths[0]);
  std::vector<audio::ClapFeatures> feats;
  feats.reserve(paths.size());
  for (const auto& p : paths) feats.push_back(impl_->clap->features_of_file(p));
  std::vector<const audio::ClapFeatures*> ptrs;
  for (const auto& f : feats) ptrs.push_back(&f);
  e.rows = paths.size();
  e.data.resize(e.rows * e.dim);
  impl_->clap->encode(ptrs, e.data.data());
  return e;
}

void Model::embed_audio_files(const std::vector<std::string>& paths, size_t batch_size,
                              const ImageResultFn& on_result) const {
  if (paths.empty()) return;
  require_audio(*this, paths[0]);
  impl_->clap->embed_files(paths, batch_size, on_result);
}

void Model::embed_files(const std::vector<std::string>& paths, size_t batch_size, const ImageResultFn& on_result) const {
  if (impl_->clap) embed_audio_files(paths, batch_size, on_result);
  else embed_image_files(paths, batch_size, on_result);
}

}  // namespace zeroshot
