// The int8 weights file (docs/quantized-format.md), for every model family: each quantized layer's int8 weight
// and per-output-channel scale under the model's own tensor names ("<name>" I8 [out, ...], "<name>_scale" F32
// [out]), and in __metadata__ the format, its version and the fingerprint of the weights it was made from. A
// load at int8 uses the file when that fingerprint matches the weights being loaded, and ignores it otherwise.
// The int4 weights file (zeroshot-int4.safetensors) is the same design for Precision::Int4: "<name>" U8 [out,
// (in + 1) / 2] (two 4-bit values a byte), "<name>_scale" and "<name>_min" F32 [out, groups], the group size in
// __metadata__ (docs/quantized-format.md).
#pragma once

#include <string>
#include <vector>

#include "models/weight_loader.h"

namespace zeroshot::io {
class WeightStore;
class SafeTensorsFile;
}  // namespace zeroshot::io

namespace zeroshot::models {

// The file a model folder may hold, made by `zeroshot quantize`.
inline constexpr const char* kInt8WeightsFile = "zeroshot-int8.safetensors";
inline constexpr const char* kInt4WeightsFile = "zeroshot-int4.safetensors";

// A fingerprint of the weights (names, dtypes, shapes, sizes and sampled bytes of every tensor; FNV-1a 64, hex).
std::string weights_fingerprint(const io::WeightStore& weights);
// True when `file` is an int8 or int4 weights file (format and version we read) made from `weights`.
bool int8_weights_match(const io::SafeTensorsFile& file, const io::WeightStore& weights);
// Int4 for an int4 weights file (format and version we read), else Int8.
nn::Precision quantized_file_precision(const io::SafeTensorsFile& file);
// The group size of an int4 weights file; throws zeroshot::Error naming the file when it is not one we read.
int int4_file_group(const io::SafeTensorsFile& file);
// The name of a weight's scales in the file, and of its group minimums (int4).
std::string int8_scale_name(const std::string& weight);
std::string int4_min_name(const std::string& weight);
// Writes the weights captured during an int8 or int4 build (LoaderOptions::int8_capture; all records of one
// precision) to `path`, atomically.
void write_int8_weights(const std::vector<Int8Record>& records, const io::WeightStore& source, const std::string& path);

}  // namespace zeroshot::models
