// zeroshot::Model: resolves the model argument, asks the family registry (api/backend.h) for the backend of the
// folder, and adds what every family shares: the batched file pipeline, the fingerprint, the weight prefetch.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "api/backend.h"
#include "api/model_fingerprint.h"
#include "io/hub.h"
#include "io/safetensors.h"
#include "nn/ops.h"
#include "util/trace.h"
#include "zeroshot/zeroshot.h"

namespace zeroshot {

namespace fs = std::filesystem;

struct Model::Impl {
  std::string name;
  std::string dir;
  ModelOptions opt;
  std::unique_ptr<api::Backend> backend;

  mutable std::mutex lazy_mutex;
  mutable std::string fingerprint;  // guarded by lazy_mutex; "" until computed

  // Background page-table population of the non-text tower's mapped weights (see prefetch_weights).
  std::atomic<bool> stop_prefetch{false};
  std::thread prefetch;
  ~Impl() {
    stop_prefetch = true;
    if (prefetch.joinable()) prefetch.join();
  }
};

namespace {

// A process that embeds an image first faults in the mapped weights it reads in place, 4 KiB pages, 16 per
// fault: on a VM that costs about as much as the forward pass itself. MADV_POPULATE_READ (Linux 5.14) maps the
// same pages ~40% cheaper, and a thread started at load does it while the caller is still decoding its image or
// reading its label cache. Only weights used in place are mapped (converted ones were read once at load and their
// pages released); the text tower is left to fault on use: a cached label set never reads it. Best effort: any
// failure (an older kernel: EINVAL) just stops the thread.
void prefetch_weights(const io::WeightStore& ws, const std::vector<std::string>& names, const std::atomic<bool>& stop) {
#ifdef MADV_POPULATE_READ
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  for (const auto& name : names) {
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
  (void)names;
  (void)stop;
#endif
}

// Calls for the other modality: one clear error instead of a decoder's complaint.
void require(const Model& m, Modality want, const std::string& input) {
  if (m.modality() == want) return;
  if (want == Modality::Image)
    throw Error(input, m.name() + " is an audio model (" + m.model_type() + "): it takes audio, not images");
  throw Error(input, m.name() + " is an image model (" + m.model_type() + "): it takes images, not audio");
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
  if (!fs::is_directory(impl->dir)) throw Error(name_or_path, "not a model folder");
  impl->backend = api::load_backend(impl->dir, opt);
  if (impl->backend->int8_from_file())
    trace::note(opt.precision == Precision::Int4 ? "int4 weights read from zeroshot-int4.safetensors"
                                                 : "int8 weights read from zeroshot-int8.safetensors");
  if (!std::getenv("ZEROSHOT_NO_PREFETCH"))
    impl->prefetch = std::thread(prefetch_weights, std::cref(impl->backend->weights()),
                                 impl->backend->prefetch_weights(), std::cref(impl->stop_prefetch));
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const std::string& Model::name() const { return impl_->name; }
const std::string& Model::directory() const { return impl_->dir; }
const char* Model::model_type() const { return impl_->backend->model_type(); }
Modality Model::modality() const { return impl_->backend->modality(); }
const char* Model::default_template() const { return impl_->backend->default_template(); }
size_t Model::embedding_dim() const { return impl_->backend->embedding_dim(); }
int Model::image_size() const { return impl_->backend->image_size(); }
float Model::logit_scale() const { return impl_->backend->score_head().scale; }
ScoreHead Model::score_head() const { return impl_->backend->score_head(); }

std::string Model::fingerprint() const {
  std::lock_guard lock(impl_->lazy_mutex);
  if (impl_->fingerprint.empty()) {
    trace::Phase p("fingerprint");
    const io::WeightStore& ws = impl_->backend->weights();
    std::set<std::string> files;  // the weight files actually read, in name order
    for (const auto& name : ws.names()) files.insert(ws.get(name).file);
    std::vector<std::string> small = impl_->backend->definition_files();
    if (files.size() > 1) small.push_back(ws.origin());  // the shard index
    // The decoding mode is a setting of the image path like the precision is of the encoder: the same text
    // goes in next to it (the exact default keeps the fingerprints it always had).
    const nn::Precision prec = api::to_nn_precision(impl_->opt.precision);
    std::string setting = nn::precision_name(prec);
    // Int8 attention changed int8 embeddings: label caches and indexes made with f32 attention must not match.
    if (nn::attention_precision(prec) == nn::AttnPrecision::Int8) setting += "+int8-attention";
    if (impl_->opt.fast_decode) setting += "+fast-decode";
    impl_->fingerprint = api::model_fingerprint(small, {files.begin(), files.end()}, setting);
  }
  return impl_->fingerprint;
}

std::vector<int32_t> Model::tokenize(const std::string& text) const { return impl_->backend->tokenize(text); }

std::vector<float> Model::preprocess_image_file(const std::string& path) const {
  require(*this, Modality::Image, path);
  return impl_->backend->load_file(path).values;
}

std::vector<float> Model::preprocess_image_memory(const uint8_t* data, size_t size, const std::string& name) const {
  require(*this, Modality::Image, name);
  return impl_->backend->load_memory(data, size, name).values;
}

std::vector<float> Model::preprocess_rgb(const uint8_t* rgb, int width, int height, const std::string& name) const {
  require(*this, Modality::Image, name);
  return impl_->backend->load_rgb(rgb, width, height, name).values;
}

Embeddings Model::embed_pixel_values(const float* pixel_values, size_t n) const {
  require(*this, Modality::Image, "pixel_values");
  trace::Phase p("encode images");
  Embeddings e;
  e.rows = n;
  e.dim = embedding_dim();
  e.data.resize(n * e.dim);
  impl_->backend->encode_pixel_values(pixel_values, n, e.data.data());
  return e;
}

int Model::patch_grid() const { return impl_->backend->patch_grid(); }

Embeddings Model::embed_patch_tokens(const float* pixel_values, int vv_blocks) const {
  const int grid = patch_grid();
  if (grid <= 0) impl_->backend->encode_image_tokens(pixel_values, vv_blocks, nullptr);  // throws: no patch tokens
  trace::Phase p("encode patch tokens");
  Embeddings e;
  e.rows = 1 + static_cast<size_t>(grid) * static_cast<size_t>(grid);
  e.dim = embedding_dim();
  e.data.resize(e.rows * e.dim);
  impl_->backend->encode_image_tokens(pixel_values, vv_blocks, e.data.data());
  return e;
}

Embeddings Model::embed_token_ids(const std::vector<std::vector<int32_t>>& ids) const {
  trace::Phase p("encode texts");
  Embeddings e;
  e.rows = ids.size();
  e.dim = embedding_dim();
  e.data.resize(e.rows * e.dim);
  impl_->backend->encode_texts(ids, e.data.data());
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

namespace {

// Every input of `paths`, loaded and encoded: the whole list, failing on the first unreadable file.
Embeddings embed_all(const api::Backend& b, const std::vector<std::string>& paths) {
  Embeddings e;
  e.dim = b.embedding_dim();
  std::vector<api::Input> inputs;
  inputs.reserve(paths.size());
  for (const auto& p : paths) inputs.push_back(b.load_file(p));
  std::vector<const api::Input*> ptrs;
  ptrs.reserve(inputs.size());
  for (const auto& in : inputs) ptrs.push_back(&in);
  e.rows = paths.size();
  e.data.resize(e.rows * e.dim);
  b.encode(ptrs.data(), ptrs.size(), e.data.data());
  return e;
}

}  // namespace

Embeddings Model::embed_image_files(const std::vector<std::string>& paths) const {
  if (!paths.empty()) require(*this, Modality::Image, paths[0]);
  trace::Phase p("encode images");
  return embed_all(*impl_->backend, paths);
}

Embeddings Model::embed_audio_files(const std::vector<std::string>& paths) const {
  if (paths.empty()) {
    Embeddings e;
    e.dim = embedding_dim();
    return e;
  }
  require(*this, Modality::Audio, paths[0]);
  return embed_all(*impl_->backend, paths);
}

void Model::embed_image_files(const std::vector<std::string>& paths, size_t batch_size,
                              const ImageResultFn& on_result) const {
  if (!paths.empty()) require(*this, Modality::Image, paths[0]);
  embed_files(paths, batch_size, on_result);
}

void Model::embed_audio_files(const std::vector<std::string>& paths, size_t batch_size,
                              const ImageResultFn& on_result) const {
  if (!paths.empty()) require(*this, Modality::Audio, paths[0]);
  embed_files(paths, batch_size, on_result);
}

void Model::embed_files(const std::vector<std::string>& paths, size_t batch_size,
                        const ImageResultFn& on_result) const {
  if (paths.empty()) return;
  if (batch_size == 0) batch_size = 1;
  const api::Backend& backend = *impl_->backend;
  const unsigned workers = impl_->opt.threads > 0 ? static_cast<unsigned>(impl_->opt.threads)
                                                  : std::max(1u, std::thread::hardware_concurrency());
  struct Batch {
    std::vector<api::Input> inputs;
    std::vector<std::string> errors;  // per file of the batch; empty when it loaded
  };
  // Loads (decodes + preprocesses) one batch on `workers` threads.
  auto load = [&](size_t begin) {
    trace::Phase p("decode batch");
    const size_t n = std::min(batch_size, paths.size() - begin);
    Batch b;
    b.inputs.resize(n);
    b.errors.resize(n);
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i; (i = next++) < n;) {
        try {
          b.inputs[i] = backend.load_file(paths[begin + i]);
        } catch (const std::exception& e) {
          b.errors[i] = e.what();
        }
      }
    };
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < std::min<size_t>(workers, n); ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    return b;
  };
  const size_t dim = embedding_dim();
  std::future<Batch> pending = std::async(std::launch::async, load, 0);
  for (size_t begin = 0; begin < paths.size(); begin += batch_size) {
    Batch b = pending.get();
    if (begin + batch_size < paths.size()) pending = std::async(std::launch::async, load, begin + batch_size);
    std::vector<const api::Input*> ok;
    for (size_t i = 0; i < b.inputs.size(); ++i)
      if (b.errors[i].empty()) ok.push_back(&b.inputs[i]);
    std::vector<float> e(ok.size() * dim);
    {
      trace::Phase p(modality() == Modality::Image ? "encode images" : "encode audio");
      backend.encode(ok.data(), ok.size(), e.data());
    }
    size_t k = 0;
    for (size_t i = 0; i < b.errors.size(); ++i) {
      const bool good = b.errors[i].empty();
      if (!on_result(begin + i, good ? e.data() + k * dim : nullptr, b.errors[i])) {
        if (pending.valid()) pending.wait();
        return;
      }
      if (good) ++k;
    }
  }
}

}  // namespace zeroshot
