// TempModel: a writable copy of a fixture model (config.json and model.safetensors) in a TempDir, to break one
// thing at a time and see the loader refuse it.
//
// The weights are held as named tensors (read with the engine's reader) and written back with the engine's own
// writer (io::write_safetensors), so a test edits tensors, not bytes: erase one, add one, change a dtype or shape.
// The few damages the writer cannot produce, by design (offsets past the end, misaligned data, a file cut short),
// are done on the written file: edit_raw() and truncate_weights().
// Write failures are test failures.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "support/temp_dir.h"

namespace zeroshot::testing {

struct OwnedTensor {
  io::DType dtype = io::DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

class TempModel {
 public:
  // A copy of `model_dir`'s config.json and model.safetensors (written at once).
  explicit TempModel(const std::string& model_dir);

  std::string dir() const { return dir_.str(); }
  std::string config_path() const { return dir_ / "config.json"; }
  std::string weights_path() const { return dir_ / "model.safetensors"; }
  io::Json& config() { return config_; }
  std::map<std::string, OwnedTensor>& tensors() { return tensors_; }
  std::map<std::string, std::string>& metadata() { return metadata_; }

  void write_config() const;
  // Writes tensors() with io::write_safetensors.
  void write_weights() const;
  // Writes the weights, then keeps only the first `keep_bytes` bytes of the file.
  void truncate_weights(size_t keep_bytes) const;
  // Rewrites the written file from its parts: `edit` gets the header JSON and the data buffer, to damage them in
  // ways the writer refuses to. The framing (little-endian u64 length, space-padded header) is the format's.
  void edit_raw(const std::function<void(io::Json& header, std::string& data)>& edit) const;

 private:
  TempDir dir_{"model"};
  io::Json config_;
  std::map<std::string, OwnedTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace zeroshot::testing
