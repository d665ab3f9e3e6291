#include "models/weight_loader.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "io/safetensors.h"
#include "models/int8_weights.h"
#include "models/packed_weights.h"
#include "zeroshot/error.h"

namespace zeroshot::models {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// Drops the pages of a mapped tensor from this process (the file stays in the page cache): once a weight has
// been converted into packed form, its f32 original would otherwise stay resident for nothing. (The store maps
// the files read-only, so a later read would fault the pages back in from the file.)
void release_pages(const io::TensorView& t) {
  const long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return;
  const uintptr_t b = (reinterpret_cast<uintptr_t>(t.data) + page - 1) & ~static_cast<uintptr_t>(page - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(t.data) + t.nbytes) & ~static_cast<uintptr_t>(page - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

// Maps the pages of a mapped tensor in one call (MADV_POPULATE_READ, Linux 5.14; best effort).
void populate_pages(const io::TensorView& t) {
#ifdef MADV_POPULATE_READ
  const long page = sysconf(_SC_PAGESIZE);
  if (page <= 0 || t.nbytes == 0) return;
  const uintptr_t b = reinterpret_cast<uintptr_t>(t.data) & ~static_cast<uintptr_t>(page - 1);
  const uintptr_t e = reinterpret_cast<uintptr_t>(t.data) + t.nbytes;
  (void)madvise(reinterpret_cast<void*>(b), e - b, MADV_POPULATE_READ);
#else
  (void)t;
#endif
}

bool in_place_ok(const io::TensorView& t) {
  return t.dtype == io::DType::F32 && reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0;
}

}  // namespace

bool linear_is_converted(nn::Precision prec) {
  return prec != nn::Precision::F32 || nn::avx512_kernels(nn::Precision::F32);
}

WeightLoader::WeightLoader(const io::WeightStore& store, std::string family, LoaderOptions options)
    : store_(store), family_(std::move(family)), opt_(std::move(options)) {
  from_file_ = opt_.int8_file && (opt_.int8_checked || int8_weights_match(*opt_.int8_file, store_));
  if (from_file_) file_precision_ = quantized_file_precision(*opt_.int8_file);
}

WeightLoader::~WeightLoader() = default;

const float* WeightLoader::tensor(const std::string& name, const std::vector<int64_t>& shape) {
  const io::TensorView& t = store_.get(name, shape);
  read_.push_back(name);
  if (opt_.zero_copy && in_place_ok(t)) {
    in_place_.push_back(name);
    return reinterpret_cast<const float*>(t.data);
  }
  owned_.emplace_back(new float[static_cast<size_t>(t.numel())]);
  io::to_f32(t, owned_.back().get());
  return owned_.back().get();
}

NormWeights WeightLoader::norm(const std::string& prefix, int64_t dim) {
  return {tensor(prefix + ".weight", {dim}), tensor(prefix + ".bias", {dim})};
}

float WeightLoader::scalar(const std::string& name) {
  const io::TensorView& t = store_.get(name);
  if (!t.is_float() || !(t.shape.empty() || t.shape == std::vector<int64_t>{1}))
    throw Error(t.file, "tensor " + name + " has " + std::string(io::dtype_name(t.dtype)) + " " + shape_str(t.shape) +
                            ", expected a float scalar");
  read_.push_back(name);
  return io::to_f32(t)[0];
}

// The weight as f32 without keeping a copy: in place when the mapping allows, else converted into `tmp`.
// A weight about to be converted has its pages mapped in one call first; a weight used in place is left to
// fault on use (a cached label set never touches the text tower).
const float* WeightLoader::weight_f32(const io::TensorView& t, std::vector<float>& tmp, bool converted) {
  if (converted) populate_pages(t);
  if (in_place_ok(t)) return reinterpret_cast<const float*>(t.data);
  tmp.resize(static_cast<size_t>(t.numel()));
  io::to_f32(t, tmp.data());
  return tmp.data();
}

// The int8 weights of the file, stacked along the outputs (each [out, in] once flattened).
nn::Int8Weights WeightLoader::int8_from_file(const std::vector<std::string>& weights, int64_t out, int64_t in) const {
  nn::Int8Weights q;
  q.n = static_cast<int>(out * static_cast<int64_t>(weights.size()));
  q.k = static_cast<int>(in);
  const auto& tensors = opt_.int8_file->tensors();
  for (const std::string& wn : weights) {
    const auto qt = tensors.find(wn), st = tensors.find(int8_scale_name(wn));
    if (qt == tensors.end() || st == tensors.end() || qt->second.dtype != io::DType::I8 ||
        st->second.dtype != io::DType::F32 || qt->second.numel() != out * in || qt->second.shape.empty() ||
        qt->second.shape[0] != out || st->second.shape != std::vector<int64_t>{out})
      throw Error(opt_.int8_file->path(), "no valid int8 weight " + wn + " with " + std::to_string(out) + " x " +
                                              std::to_string(in) + " values");
    const auto* qd = reinterpret_cast<const int8_t*>(qt->second.data);
    q.q.insert(q.q.end(), qd, qd + qt->second.nbytes);
    const size_t s0 = q.scale.size();
    q.scale.resize(s0 + static_cast<size_t>(out));
    std::memcpy(q.scale.data() + s0, st->second.data, static_cast<size_t>(out) * sizeof(float));
    for (size_t i = s0; i < q.scale.size(); ++i)
      if (!(q.scale[i] > 0.0f) || !std::isfinite(q.scale[i]))
        throw Error(opt_.int8_file->path(), "invalid scale in " + int8_scale_name(wn));
    release_pages(qt->second);  // copied: the packed layer is all that stays resident
  }
  return q;
}

// The int4 weights of the file, stacked along the outputs (each [out, in] once flattened): "<W>" U8 [out, (in + 1)
// / 2], "<W>_scale" and "<W>_min" F32 [out, groups], the group size from the file's metadata.
nn::Int4Weights WeightLoader::int4_from_file(const std::vector<std::string>& weights, int64_t out, int64_t in) const {
  const std::string& path = opt_.int8_file->path();
  nn::Int4Weights q;
  q.n = static_cast<int>(out * static_cast<int64_t>(weights.size()));
  q.k = static_cast<int>(in);
  q.group = int4_file_group(*opt_.int8_file);
  const int64_t groups = q.groups(), row = static_cast<int64_t>(q.row_bytes());
  const auto& tensors = opt_.int8_file->tensors();
  for (const std::string& wn : weights) {
    const auto qt = tensors.find(wn), st = tensors.find(int8_scale_name(wn)), mt = tensors.find(int4_min_name(wn));
    if (qt == tensors.end() || st == tensors.end() || mt == tensors.end() || qt->second.dtype != io::DType::U8 ||
        st->second.dtype != io::DType::F32 || mt->second.dtype != io::DType::F32 ||
        qt->second.shape != std::vector<int64_t>{out, row} || st->second.shape != std::vector<int64_t>{out, groups} ||
        mt->second.shape != std::vector<int64_t>{out, groups})
      throw Error(path, "no valid int4 weight " + wn + " with " + std::to_string(out) + " x " + std::to_string(in) +
                            " values in groups of " + std::to_string(q.group));
    const auto* qd = reinterpret_cast<const uint8_t*>(qt->second.data);
    q.q.insert(q.q.end(), qd, qd + qt->second.nbytes);
    for (const auto* t : {&st->second, &mt->second}) {
      std::vector<float>& dst = t == &st->second ? q.scale : q.minimum;
      const size_t s0 = dst.size();
      dst.resize(s0 + static_cast<size_t>(out * groups));
      std::memcpy(dst.data() + s0, t->data, static_cast<size_t>(out * groups) * sizeof(float));
      release_pages(*t);  // 2 bits per weight at group 32: a third of the file, not to be held twice
    }
    release_pages(qt->second);  // copied: the packed layer is all that stays resident
  }
  nn::check_int4(q, path);
  return q;
}

// Quantizes each weight on its own (int8 scales are per output channel and int4 groups lie within a row, so
// stacking does not change them).
void WeightLoader::capture(const std::vector<const io::TensorView*>& views, int64_t out, int64_t in,
                           nn::Precision prec) {
  std::vector<float> tmp;
  for (const io::TensorView* v : views) {
    const float* w = weight_f32(*v, tmp, true);
    if (prec == nn::Precision::Int4) {
      Int8Record r{v->name, v->shape, {}, prec, nn::quantize_int4(w, static_cast<int>(out), static_cast<int>(in))};
      opt_.int8_capture->push_back(std::move(r));
    } else {
      Int8Record r{v->name, v->shape, nn::quantize_int8(w, static_cast<int>(out), static_cast<int>(in)), prec, {}};
      opt_.int8_capture->push_back(std::move(r));
    }
    if (opt_.on_quantized) opt_.on_quantized(opt_.int8_capture->size());
  }
}

nn::PackedLinear WeightLoader::linear(const std::vector<std::string>& prefixes, int64_t out, int64_t in, bool bias,
                                      nn::Precision prec) {
  // Weights are checked before biases: a wrong width is reported on the matrix, the tensor that shows it best.
  std::vector<std::string> names;
  std::vector<const io::TensorView*> views;
  for (const std::string& p : prefixes) {
    names.push_back(p + ".weight");
    views.push_back(&store_.get(names.back(), {out, in}));
    read_.push_back(names.back());
  }
  std::vector<float> b;
  if (bias) {
    b.reserve(static_cast<size_t>(out) * prefixes.size());
    for (const std::string& p : prefixes) {
      const io::TensorView& t = store_.get(p + ".bias", {out});
      read_.push_back(p + ".bias");
      const size_t at = b.size();
      b.resize(at + static_cast<size_t>(out));
      io::to_f32(t, b.data() + at);
    }
  }
  return build(names, views, std::move(b), out, in, prec);
}

nn::PackedLinear WeightLoader::matrix(const std::string& weight, const std::vector<int64_t>& shape,
                                      const std::string& bias, nn::Precision prec) {
  int64_t in = 1;
  for (size_t i = 1; i < shape.size(); ++i) in *= shape[i];
  const io::TensorView& t = store_.get(weight, shape);
  read_.push_back(weight);
  std::vector<float> b;
  if (!bias.empty()) {
    b = io::to_f32(store_.get(bias, {shape[0]}));
    read_.push_back(bias);
  }
  return build({weight}, {&t}, std::move(b), shape[0], in, prec);
}

void WeightLoader::check_linear(const std::vector<std::string>& prefixes, int64_t out, int64_t in, bool bias) {
  for (const std::string& p : prefixes) {
    store_.get(p + ".weight", {out, in});
    read_.push_back(p + ".weight");
  }
  if (!bias) return;
  for (const std::string& p : prefixes) {
    store_.get(p + ".bias", {out});
    read_.push_back(p + ".bias");
  }
}

void WeightLoader::check_matrix(const std::string& weight, const std::vector<int64_t>& shape) {
  store_.get(weight, shape);
  read_.push_back(weight);
}

// The layer from the weights `views` ([out, in] each, stacked) and bias b (empty: none).
nn::PackedLinear WeightLoader::build(const std::vector<std::string>& weights,
                                     const std::vector<const io::TensorView*>& views, std::vector<float> b, int64_t out,
                                     int64_t in, nn::Precision prec) {
  const int64_t n = out * static_cast<int64_t>(views.size());
  const int ni = static_cast<int>(n), ki = static_cast<int>(in);
  const bool quantized = prec == nn::Precision::Int8 || prec == nn::Precision::Int4;
  std::string key;  // the layer in a packed weights file: its weight names, joined
  if (opt_.packed || opt_.packed_capture)
    for (const std::string& wn : weights) key += (key.empty() ? "" : "|") + wn;
  // The packed weights file first, before an int8 weights file: its int8 panels hold the same values (quantize_int8
  // is deterministic and the int8 file must match these weights), already packed.
  if (opt_.packed && opt_.packed->precision() == prec) {
    size_t bytes = 0;
    if (const uint8_t* panels = opt_.packed->find(key, ni, ki, &bytes)) {
      // The f32 weights are never read, but the fingerprint's samples faulted some of their pages in (the kernel
      // maps whole page-cache folios around a fault): drop them.
      for (const io::TensorView* v : views) release_pages(*v);
      return nn::PackedLinear::from_panels(panels, bytes, b.empty() ? nullptr : b.data(), ni, ki, prec);
    }
  }
  if (quantized && from_file_ && prec == file_precision_) {
    for (const io::TensorView* v : views) release_pages(*v);  // as above: never read
    if (prec == nn::Precision::Int4)
      return nn::PackedLinear(int4_from_file(weights, out, in), b.empty() ? nullptr : b.data());
    nn::PackedLinear l(int8_from_file(weights, out, in), b.empty() ? nullptr : b.data());
    if (opt_.packed_capture && l.panels())
      opt_.packed_capture->push_back({key, prec, ni, ki, l.panels(), l.panel_bytes()});
    return l;
  }
  if (quantized && opt_.int8_capture) capture(views, out, in, prec);
  const bool conv = linear_is_converted(prec);
  std::vector<float> tmp;
  const float* w;
  if (views.size() == 1) {
    w = weight_f32(*views[0], tmp, conv);
  } else {
    tmp.reserve(static_cast<size_t>(n * in));
    std::vector<float> part;
    for (const io::TensorView* v : views) {
      const float* pw = weight_f32(*v, part, conv);
      tmp.insert(tmp.end(), pw, pw + out * in);
    }
    w = tmp.data();
  }
  const bool in_tmp = !tmp.empty() && w == tmp.data();
  if (!conv && opt_.zero_copy && !in_tmp) {
    // The generic f32 path reads the mapped weights in place; its bias must live as long as the model.
    const float* bp = nullptr;
    if (!b.empty()) {
      owned_.emplace_back(new float[b.size()]);
      std::copy(b.begin(), b.end(), owned_.back().get());
      bp = owned_.back().get();
    }
    in_place_.insert(in_place_.end(), weights.begin(), weights.end());
    return nn::PackedLinear(w, bp, ni, ki, prec, nn::KernelChoice::Auto, opt_.pool);
  }
  nn::PackedLinear l = conv ? nn::PackedLinear(w, b.empty() ? nullptr : b.data(), ni, ki, prec, nn::KernelChoice::Auto,
                                               opt_.pool)  // keeps no pointer
                            : nn::PackedLinear(in_tmp ? std::move(tmp) : std::vector<float>(w, w + n * in),
                                               std::move(b), ni, ki, prec, nn::KernelChoice::Auto, opt_.pool);
  if (opt_.zero_copy)
    for (const io::TensorView* v : views) release_pages(*v);
  if (opt_.packed_capture && l.panels())
    opt_.packed_capture->push_back({key, prec, ni, ki, l.panels(), l.panel_bytes()});
  return l;
}

void WeightLoader::check_unused() const {
  std::vector<std::string> read = read_;
  std::sort(read.begin(), read.end());
  for (const std::string& name : store_.names()) {
    if (std::binary_search(read.begin(), read.end(), name)) continue;
    const io::TensorView& tv = store_.get(name);
    if (tv.is_float())  // integer buffers (position_ids) are not parameters
      throw Error(tv.file,
                  "unexpected tensor " + name + " (not part of a " + family_ + " model with this config.json)");
  }
}

}  // namespace zeroshot::models
