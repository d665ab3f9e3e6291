#include "models/int8_weights.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "io/safetensors.h"
#include "zeroshot/error.h"

namespace zeroshot::models {

namespace {

constexpr const char* kInt8Format = "zeroshot-int8";
constexpr const char* kInt8Version = "1";
constexpr const char* kInt4Format = "zeroshot-int4";
constexpr const char* kInt4Version = "1";

std::string meta_value(const io::SafeTensorsFile& file, const char* key) {
  const auto& m = file.metadata();
  const auto it = m.find(key);
  return it == m.end() ? std::string() : it->second;
}

struct Fnv1a {
  uint64_t h = 1469598103934665603ull;
  void add(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }  // with the terminating 0: no ambiguity
  void add_u64(uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
    add(b, 8);
  }
};

}  // namespace

std::string int8_scale_name(const std::string& weight) { return weight + "_scale"; }
std::string int4_min_name(const std::string& weight) { return weight + "_min"; }

nn::Precision quantized_file_precision(const io::SafeTensorsFile& file) {
  return meta_value(file, "format") == kInt4Format && meta_value(file, "format_version") == kInt4Version
             ? nn::Precision::Int4
             : nn::Precision::Int8;
}

int int4_file_group(const io::SafeTensorsFile& file) {
  const std::string g = meta_value(file, "group_size");
  int v = 0;
  if (g.empty() || g.size() > 4 || g.find_first_not_of("0123456789") != std::string::npos ||
      !nn::int4_group_supported(v = std::stoi(g)))
    throw Error(file.path(),
                "unsupported int4 group size \"" + g + "\" (32, 64 or 128); run `zeroshot quantize` again");
  return v;
}

std::string weights_fingerprint(const io::WeightStore& weights) {
  // Cheap enough to run at every load (a few pages per tensor), and any two different checkpoints differ in it:
  // every tensor's name, dtype, shape and size, and 3 samples of 256 bytes of its data (start, middle, end).
  std::vector<std::string> names = weights.names();
  std::sort(names.begin(), names.end());
  Fnv1a f;
  constexpr size_t kSample = 256;
  for (const std::string& n : names) {
    const io::TensorView& t = weights.get(n);
    f.add(n);
    f.add(std::string(io::dtype_name(t.dtype)));
    f.add_u64(t.shape.size());
    for (int64_t d : t.shape) f.add_u64(static_cast<uint64_t>(d));
    f.add_u64(t.nbytes);
    const size_t s = std::min(kSample, t.nbytes);
    f.add(t.data, s);
    f.add(t.data + (t.nbytes - s) / 2, s);
    f.add(t.data + t.nbytes - s, s);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(f.h));
  return std::string("fnv1a64:") + hex;
}

void write_int8_weights(const std::vector<Int8Record>& records, const io::WeightStore& source,
                        const std::string& path) {
  if (!records.empty() && records.front().precision == nn::Precision::Int4) {
    std::vector<io::TensorData> out;
    const int group = records.front().w4.group;
    for (const Int8Record& r : records) {
      const nn::Int4Weights& q = r.w4;
      if (r.precision != nn::Precision::Int4 || q.group != group) throw Error(path, "mixed quantized weights");
      const int64_t groups = q.groups();
      out.push_back({r.name, io::DType::U8, {q.n, static_cast<int64_t>(q.row_bytes())}, q.q.data()});
      out.push_back({int8_scale_name(r.name), io::DType::F32, {q.n, groups}, q.scale.data()});
      out.push_back({int4_min_name(r.name), io::DType::F32, {q.n, groups}, q.minimum.data()});
    }
    const std::map<std::string, std::string> meta = {
        {"format", kInt4Format},
        {"format_version", kInt4Version},
        {"source_fingerprint", weights_fingerprint(source)},
        {"group_size", std::to_string(group)},
        {"quantization",
         "weight-only, per output row in groups of group_size inputs, asymmetric: w ~= q * scale + min, min = "
         "min(w), scale = (max(w) - min(w)) / 15, q = round_half_even((w - min) / scale) in [0, 15]; byte i of a "
         "row holds input 2i in its low nibble and 2i + 1 in its high one"},
    };
    io::write_safetensors(path, out, meta);
    return;
  }
  std::vector<io::TensorData> out;
  for (const Int8Record& r : records) {
    out.push_back({r.name, io::DType::I8, r.shape, r.w.q.data()});
    out.push_back({int8_scale_name(r.name), io::DType::F32, {r.w.n}, r.w.scale.data()});
  }
  const std::map<std::string, std::string> meta = {
      {"format", kInt8Format},
      {"format_version", kInt8Version},
      {"source_fingerprint", weights_fingerprint(source)},
      {"quantization",
       "per output channel, symmetric: w ~= scale * q, scale = max|w| / 127 (1 for an all-zero row), "
       "q = round_half_even(w / scale) in [-127, 127]"},
  };
  io::write_safetensors(path, out, meta);
}

bool int8_weights_match(const io::SafeTensorsFile& file, const io::WeightStore& weights) {
  const auto& m = file.metadata();
  auto get = [&](const char* k) {
    const auto it = m.find(k);
    return it == m.end() ? std::string() : it->second;
  };
  const bool int8 = get("format") == kInt8Format && get("format_version") == kInt8Version;
  const bool int4 = get("format") == kInt4Format && get("format_version") == kInt4Version;
  return (int8 || int4) && get("source_fingerprint") == weights_fingerprint(weights);
}

}  // namespace zeroshot::models
