// safetensors reader: memory-mapped, validated, zero-copy.
//
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]}, ...,
// "__metadata__": {...}}, then the byte buffer; offsets are relative to the buffer start.
// Validation (each failure throws zeroshot::Error naming the file and the problem): file shorter than 8 bytes,
// header length past the end of the file or absurd, header not a JSON object, unknown dtype, shape with negative
// dims, byte size that does not equal prod(shape) * dtype size, offsets past the end of the buffer, begin > end,
// overlapping tensors.
//
// A model may be split into shards (model.safetensors.index.json with a "weight_map"); WeightStore opens either,
// and PyTorch checkpoints too (pytorch_model.bin and its index: torch_checkpoint.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "util/mapped_file.h"

namespace zeroshot::io {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(DType t);
size_t dtype_size(DType t);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mapped file; may be unaligned for F32
  size_t nbytes = 0;
  std::string file;  // the safetensors file it lives in (for error messages)

  int64_t numel() const;
  bool is_float() const { return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16; }
};

// One .safetensors file.
class SafeTensorsFile {
 public:
  explicit SafeTensorsFile(const std::string& path);  // maps + validates; throws zeroshot::Error
  const std::string& path() const { return file_.path(); }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  util::MappedFile file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All weights of a model: a single file, the shards named by an index file, or tensors gathered from other
// stores and owned buffers (a checkpoint in another layout translated to the names a model reads).
// Every TensorView's data stays valid as long as the store (it keeps the files or buffers it points into alive).
class WeightStore {
 public:
  // `path` is a weights file (safetensors or torch.save's zip / legacy format, told apart by content) or a
  // JSON index ({"weight_map": {tensor: shard}}, as model.safetensors.index.json and
  // pytorch_model.bin.index.json) whose shards may be of either kind. A shard the index names that does not
  // exist, or that lacks a tensor the index puts there: Error.
  static WeightStore open(const std::string& path);
  // Opens the first of weight_file_names() that exists in `dir` (transformers' order); none: Error.
  static WeightStore open_dir(const std::string& dir);

  // Adds `view` under view.name; its data lives in (or is kept alive by) `owner`, which the store holds.
  // Throws zeroshot::Error(view.file, "tensor <name> also appears in <file>") for a duplicate name.
  void add(TensorView view, std::shared_ptr<const void> owner);
  // Adds a tensor holding a copy of `bytes` (numel * dtype size). `file`: the file it was made from, for errors.
  void add_owned(const std::string& name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes,
                 const std::string& file);
  // The file name cited by errors that concern the model as a whole (missing tensors).
  void set_origin(std::string origin) { origin_ = std::move(origin); }

  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // Throws zeroshot::Error("<file>: missing tensor <name>") when absent.
  const TensorView& get(const std::string& name) const;
  // Checks shape and that the dtype is F32/F16/BF16; throws "<file>: tensor <name> has shape [..], expected [..]".
  const TensorView& get(const std::string& name, const std::vector<int64_t>& shape) const;
  // Names of every tensor, for the "unexpected tensors" check.
  std::vector<std::string> names() const;
  // The file name to cite in errors that concern the model as a whole.
  const std::string& origin() const { return origin_; }

 private:
  std::vector<std::shared_ptr<const void>> owners_;
  std::map<std::string, TensorView> index_;
  std::string origin_;
};

// The weight files of a transformers model folder, in the order transformers prefers them: model.safetensors,
// model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json.
const std::vector<std::string>& weight_file_names();

// The weight files of an OpenCLIP folder or hub repo (open_clip_config.json beside them), in open_clip's order
// (factory.py _find_checkpoint_in_dir, open_clip 3.x; its hub download tries open_clip_model.safetensors, then
// open_clip_pytorch_model.bin, the same precedence): open_clip_model.safetensors,
// open_clip_pytorch_model.safetensors, open_clip_pytorch_model.bin, open_clip_pytorch_model.pth,
// model.safetensors, pytorch_model.bin, pytorch_model.pth, model.pth. Each is one file (WeightStore::open).
std::vector<std::string> open_clip_weight_files();

// Converts a F32/F16/BF16 tensor to f32 (copying into `out`, which must hold numel() floats).
void to_f32(const TensorView& t, float* out);
std::vector<float> to_f32(const TensorView& t);

// Writes a safetensors file (header padded with spaces to a multiple of 8 so the data is aligned), atomically:
// to <path>.tmp, then renamed. Throws zeroshot::Error naming the path on I/O failure.
struct TensorData {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // numel * dtype_size bytes
};
void write_safetensors(const std::string& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// IEEE half / bfloat16 -> float, exactly.
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t b);

}  // namespace zeroshot::io
