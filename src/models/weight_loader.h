// The one weight loader of every model family (CLIP, CLAP, and the layouts translated onto them).
//
// A model's constructor asks the loader for each tensor by name, with the shape its config implies; the loader
//   - checks the shape and that the dtype is F32/F16/BF16 (io::WeightStore::get's errors name file and tensor),
//   - returns f32 data: the memory-mapped tensor in place when it is F32 and aligned (zero-copy mode), else a
//     converted copy that the loader owns until take_buffers() hands it to the model,
//   - builds linear layers in the requested precision, stacking several torch Linear weights along the outputs
//     (q|k|v as one GEMM), and takes int8 weights from a matching int8 weights file (int8_weights.h),
//   - takes the AVX-512 panels of a layer from a packed weights file (packed_weights.h) when it holds them,
//   - releases the mapped pages of every weight it copied or converted (the packed copy is not held twice), and
//     maps in one call the pages of a weight it is about to convert (cheaper than a fault per 16 pages),
//   - records every name it was asked for, so that check_unused() can refuse float tensors that are not part of
//     the model ("unexpected tensor X (not part of a CLIP model with this config.json)"); integer buffers
//     (position_ids, num_batches_tracked, relative_position_index) are not parameters and are ignored.
// Not thread-safe: one loader per model build.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/int4_gemm.h"
#include "nn/linear.h"

namespace zeroshot::io {
class WeightStore;
class SafeTensorsFile;
struct TensorView;
}  // namespace zeroshot::io

namespace zeroshot::models {

class PackedWeightsFile;
struct PackedRecord;

struct NormWeights {
  const float* g = nullptr;
  const float* b = nullptr;
};

// One weight quantized to int8 (per output channel) or, when precision is Int4, to int4 (w4: group-wise), under the
// model's tensor name.
struct Int8Record {
  std::string name;
  std::vector<int64_t> shape;  // the f32 weight's shape
  nn::Int8Weights w;
  nn::Precision precision = nn::Precision::Int8;
  nn::Int4Weights w4;
};

struct LoaderOptions {
  // Read F32 tensors in place (the caller keeps the store alive as long as the model); false: copy every tensor,
  // so the store may be destroyed after the build.
  bool zero_copy = true;
  // Int8 (or int4) weights made beforehand; used for the Int8 (Int4) layers when the file is of that precision
  // and matches the store (int8_weights_match), otherwise ignored (the weights are quantized at load).
  std::shared_ptr<const io::SafeTensorsFile> int8_file;
  // int8_file is known to match the store (a second loader over the same store): not fingerprinted again.
  bool int8_checked = false;
  // When set, every weight quantized at load is also appended here (to write an int8 weights file), and
  // on_quantized(count so far) is called after each.
  std::vector<Int8Record>* int8_capture = nullptr;
  std::function<void(size_t)> on_quantized;
  // Threads that share the packing of each layer (null: the calling thread); must outlive the loader.
  nn::ThreadPool* pool = nullptr;
  // Panels packed beforehand, for the layers at the file's precision that it holds: used in place (mapped), their
  // f32 weights never read. The model keeps the file open as long as its layers.
  std::shared_ptr<const PackedWeightsFile> packed;
  // When set, every layer packed at load into AVX-512 panels is also listed here (its panels stay owned by the
  // layer, which must outlive the list's use): what write_packed_weights stores.
  std::vector<PackedRecord>* packed_capture = nullptr;
};

class WeightLoader {
 public:
  // `family` names the model in errors ("CLIP", "CLAP").
  WeightLoader(const io::WeightStore& store, std::string family, LoaderOptions options = {});
  ~WeightLoader();
  WeightLoader(const WeightLoader&) = delete;
  WeightLoader& operator=(const WeightLoader&) = delete;

  const io::WeightStore& store() const { return store_; }

  // A float tensor of exactly `shape`, as f32 (in place or a copy owned by the loader).
  const float* tensor(const std::string& name, const std::vector<int64_t>& shape);
  // "<prefix>.weight" and "<prefix>.bias", each [dim].
  NormWeights norm(const std::string& prefix, int64_t dim);
  // A scalar parameter ([] in HF checkpoints; some conversions store it as [1]).
  float scalar(const std::string& name);

  // torch Linear layers "<prefix>.weight" [out, in] (+ "<prefix>.bias" [out] when `bias`), several prefixes
  // stacked along the outputs into one [prefixes * out, in] layer, at precision `prec`.
  nn::PackedLinear linear(const std::vector<std::string>& prefixes, int64_t out, int64_t in, bool bias,
                          nn::Precision prec);
  // A weight that is not a torch Linear, as a linear layer over its first dimension: a convolution whose kernel
  // covers its whole input patch ([out, c, kh, kw] -> [out, c*kh*kw]), a projection without bias. `bias`: the
  // bias tensor's name, or "" for none.
  nn::PackedLinear matrix(const std::string& weight, const std::vector<int64_t>& shape, const std::string& bias,
                          nn::Precision prec);

  // The shape checks of linear() / matrix() without building the layer: for layers built later, by another loader
  // over the same store (a tower packed on first use), so that a bad checkpoint is still refused at load.
  void check_linear(const std::vector<std::string>& prefixes, int64_t out, int64_t in, bool bias);
  void check_matrix(const std::string& weight, const std::vector<int64_t>& shape);

  // Throws zeroshot::Error for the first float tensor of the store that none of the calls above read.
  void check_unused() const;

  // Whether int8 layers were read from the int8 weights file.
  bool int8_from_file() const { return from_file_; }
  // Names of the tensors the model reads in place (their pages stay mapped): what a prefetch may map.
  const std::vector<std::string>& in_place() const { return in_place_; }
  // The converted copies the returned pointers point into; the model keeps them.
  std::vector<std::unique_ptr<float[]>> take_buffers() { return std::move(owned_); }

 private:
  const float* weight_f32(const io::TensorView& t, std::vector<float>& tmp, bool converted);
  nn::Int8Weights int8_from_file(const std::vector<std::string>& weights, int64_t out, int64_t in) const;
  nn::Int4Weights int4_from_file(const std::vector<std::string>& weights, int64_t out, int64_t in) const;
  void capture(const std::vector<const io::TensorView*>& views, int64_t out, int64_t in, nn::Precision prec);
  nn::PackedLinear build(const std::vector<std::string>& weights, const std::vector<const io::TensorView*>& views,
                         std::vector<float> bias, int64_t out, int64_t in, nn::Precision prec);

  const io::WeightStore& store_;
  std::string family_;
  LoaderOptions opt_;
  bool from_file_ = false;
  nn::Precision file_precision_ = nn::Precision::Int8;  // of int8_file, when from_file_
  std::vector<std::unique_ptr<float[]>> owned_;
  std::vector<std::string> read_;  // every name asked for (sorted at check time)
  std::vector<std::string> in_place_;
};

// Whether a linear layer at `prec` gets its own packed / converted copy (else the generic f32 path reads the
// weights where they are).
bool linear_is_converted(nn::Precision prec);

}  // namespace zeroshot::models
