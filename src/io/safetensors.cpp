#include "io/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "io/json.h"
#include "io/torch_checkpoint.h"
#include "zeroshot/error.h"

namespace zeroshot::io {

namespace {

// Headers of real checkpoints are a few hundred KB; 100 MB is what the reference Rust crate allows.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

bool parse_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"F64", DType::F64}, {"I64", DType::I64},
      {"I32", DType::I32}, {"I16", DType::I16}, {"I8", DType::I8},     {"U8", DType::U8},   {"BOOL", DType::BOOL}};
  for (const auto& [name, t] : table) {
    if (s == name) {
      *out = t;
      return true;
    }
  }
  return false;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64:
    case DType::I64: return 8;
    case DType::F32:
    case DType::I32: return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16: return 2;
    case DType::I8:
    case DType::U8:
    case DType::BOOL: return 1;
  }
  return 1;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafeTensorsFile::SafeTensorsFile(const std::string& path) : file_(path) {
  const uint8_t* base = file_.data();
  const uint64_t size = file_.size();
  if (size < 8)
    throw Error(path,
                "not a safetensors file (" + std::to_string(size) + " bytes, shorter than the 8-byte header length)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base[i];
  if (header_len > kMaxHeaderBytes)
    throw Error(path, "safetensors header length " + std::to_string(header_len) +
                          " is absurd (corrupt or not a safetensors file)");
  if (header_len > size - 8)
    throw Error(path, "truncated: safetensors header of " + std::to_string(header_len) +
                          " bytes runs past the end of the " + std::to_string(size) + "-byte file");

  Json header;
  try {
    header = Json::parse(reinterpret_cast<const char*>(base + 8), reinterpret_cast<const char*>(base + 8 + header_len));
  } catch (const Json::exception& e) {
    throw Error(path, "safetensors header is not valid JSON");
  }
  if (!header.is_object()) throw Error(path, "safetensors header is not a JSON object");

  const uint8_t* buffer = base + 8 + header_len;
  const uint64_t buffer_len = size - 8 - header_len;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const Json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw Error(path, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (m.value().is_string()) metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& what) { return Error(path, "tensor " + name + ": " + what); };
    if (!v.is_object()) throw bad("entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) throw bad("missing dtype");
    if (!v.contains("shape") || !v["shape"].is_array()) throw bad("missing shape");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      throw bad("missing data_offsets");
    TensorView t;
    t.name = name;
    t.file = path;
    if (!parse_dtype(v["dtype"].get<std::string>(), &t.dtype))
      throw bad("unknown dtype " + v["dtype"].get<std::string>());
    uint64_t numel = 1;
    for (const Json& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) throw bad("shape has an invalid dimension");
      uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > (UINT64_MAX / 8) / dim) throw bad("shape is absurdly large");
      numel *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const Json& off = v["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw bad("data_offsets are not non-negative integers");
    uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e) throw bad("data_offsets begin " + std::to_string(b) + " > end " + std::to_string(e));
    if (e > buffer_len)
      throw bad("data_offsets end " + std::to_string(e) + " is past the end of the data (" +
                std::to_string(buffer_len) + " bytes; file truncated?)");
    if (e - b != numel * dtype_size(t.dtype))
      throw bad(std::string(dtype_name(t.dtype)) + " " + shape_str(t.shape) + " needs " +
                std::to_string(numel * dtype_size(t.dtype)) + " bytes but data_offsets span " + std::to_string(e - b));
    t.data = buffer + b;
    t.nbytes = e - b;
    ranges.emplace_back(b, e);
    tensors_.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) {
      std::string a, b;
      for (const auto& [n, t] : tensors_) {
        uint64_t off = static_cast<uint64_t>(t.data - buffer);
        if (off == ranges[i - 1].first && a.empty()) a = n;
        else if (off == ranges[i].first) b = n;
      }
      throw Error(path, "tensors " + a + " and " + b + " overlap in the data buffer");
    }
  }
}

namespace {

std::string head_bytes(const std::string& path, size_t n) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error(path, std::strerror(errno));
  std::string head(n, '\0');
  head.resize(std::fread(head.data(), 1, n, f));
  std::fclose(f);
  return head;
}

bool is_json_index(const std::string& path) {
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) return true;
  const std::string h = head_bytes(path, 16);
  // A safetensors file whose header length happens to start with byte '{' still has its JSON at byte 8.
  if (h.size() > 8 && h[8] == '{') return false;
  size_t i = h.find_first_not_of(" \t\r\n");
  return i != std::string::npos && h[i] == '{';
}

// The tensors of one weights file: a safetensors file or a torch.save checkpoint (told apart by content).
std::vector<LoadedTensor> load_weights_file(const std::string& path) {
  const std::string h = head_bytes(path, 16);
  if (is_torch_checkpoint(reinterpret_cast<const uint8_t*>(h.data()), h.size())) return read_torch_checkpoint(path);
  auto f = std::make_shared<SafeTensorsFile>(path);
  std::vector<LoadedTensor> out;
  for (const auto& [name, t] : f->tensors()) out.push_back({t, f, true});
  return out;
}

}  // namespace

WeightStore WeightStore::open(const std::string& path) {
  WeightStore ws;
  ws.origin_ = path;
  if (!is_json_index(path)) {
    for (auto& t : load_weights_file(path)) ws.add(std::move(t.view), std::move(t.owner));
    return ws;
  }
  Json idx = load_json(path);
  if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object())
    throw Error(path, "index has no \"weight_map\" object");
  std::map<std::string, std::set<std::string>> shards;  // shard -> the tensors the index puts there
  for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
    if (!it.value().is_string()) throw Error(path, "weight_map entry " + it.key() + " is not a file name");
    std::string shard = it.value().get<std::string>();
    if (shard.find("..") != std::string::npos || (!shard.empty() && shard[0] == '/'))
      throw Error(path, "weight_map names a file outside the model folder: " + shard);
    shards[shard].insert(it.key());
  }
  if (shards.empty()) throw Error(path, "empty \"weight_map\"");
  const auto dir = std::filesystem::path(path).parent_path();
  for (const auto& [shard, promised] : shards) {
    const std::string shard_path = (dir / shard).string();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(shard_path, ec))
      throw Error(path, "weight_map names " + shard + ", which is missing (" + shard_path + ")");
    std::set<std::string> found;
    for (auto& t : load_weights_file(shard_path)) {
      found.insert(t.view.name);
      ws.add(std::move(t.view), std::move(t.owner));
    }
    // Every tensor the index promises must be in the shard it names.
    for (const auto& name : promised)
      if (!found.count(name)) throw Error(shard_path, "missing tensor " + name + " (named by " + path + ")");
  }
  return ws;
}

void WeightStore::add(TensorView view, std::shared_ptr<const void> owner) {
  if (auto it = index_.find(view.name); it != index_.end())
    throw Error(view.file, "tensor " + view.name + " also appears in " + it->second.file);
  const std::string name = view.name;
  index_.emplace(name, std::move(view));
  if (owner && (owners_.empty() || owners_.back() != owner)) owners_.push_back(std::move(owner));
}

void WeightStore::add_owned(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            std::vector<uint8_t> bytes, const std::string& file) {
  auto buf = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  TensorView v;
  v.name = name;
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.data = buf->data();
  v.nbytes = buf->size();
  v.file = file;
  if (static_cast<size_t>(v.numel()) * dtype_size(dtype) != v.nbytes)
    throw Error(file, "tensor " + name + ": " + std::to_string(v.nbytes) + " bytes do not match its shape " +
                          shape_str(v.shape));
  add(std::move(v), std::move(buf));
}

WeightStore WeightStore::open_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  for (const std::string& name : weight_file_names()) {
    fs::path p = fs::path(dir) / name;
    std::error_code ec;
    if (fs::exists(p, ec)) return open(p.string());
  }
  throw Error(dir,
              "no model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json");
}

const std::vector<std::string>& weight_file_names() {
  static const std::vector<std::string> names = {"model.safetensors", "model.safetensors.index.json",
                                                 "pytorch_model.bin", "pytorch_model.bin.index.json"};
  return names;
}

std::vector<std::string> open_clip_weight_files() {
  return {"open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
          "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth",
          "model.safetensors",           "pytorch_model.bin",
          "pytorch_model.pth",           "model.pth"};
}

const TensorView& WeightStore::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(origin_, "missing tensor " + name);
  return it->second;
}

const TensorView& WeightStore::get(const std::string& name, const std::vector<int64_t>& shape) const {
  const TensorView& t = get(name);
  if (!t.is_float())
    throw Error(t.file, "tensor " + name + " has dtype " + dtype_name(t.dtype) + ", expected F32, F16 or BF16");
  if (t.shape != shape)
    throw Error(t.file, "tensor " + name + " has shape " + shape_str(t.shape) + ", expected " + shape_str(shape) +
                            " from config.json");
  return t;
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [n, t] : index_) out.push_back(n);
  return out;
}

void write_safetensors(const std::string& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    uint64_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string h = header.dump();
  h.append((8 - (8 + h.size()) % 8) % 8, ' ');
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(path, std::string("cannot write: ") + std::strerror(errno));
  bool ok = true;
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(h.size()) >> (8 * i));
  ok &= std::fwrite(len, 1, 8, f) == 8;
  ok &= std::fwrite(h.data(), 1, h.size(), f) == h.size();
  for (const auto& t : tensors) {
    size_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    if (n) ok &= std::fwrite(t.data, 1, n, f) == n;
  }
  ok &= std::fclose(f) == 0;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path, std::string("cannot write: ") + std::strerror(errno));
  }
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_f32(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void to_f32(const TensorView& t, float* out) {
  const int64_t n = t.numel();
  if (n == 0) return;
  switch (t.dtype) {
    case DType::F32: std::memcpy(out, t.data, static_cast<size_t>(n) * 4); return;
    case DType::F16:
    case DType::BF16: {
      const bool half = t.dtype == DType::F16;
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, t.data + 2 * i, 2);  // data may be unaligned
        out[i] = half ? f16_to_f32(v) : bf16_to_f32(v);
      }
      return;
    }
    default: throw Error(t.file, "tensor " + t.name + " has dtype " + dtype_name(t.dtype) + ", not a float type");
  }
}

std::vector<float> to_f32(const TensorView& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  to_f32(t, v.data());
  return v;
}

}  // namespace zeroshot::io
