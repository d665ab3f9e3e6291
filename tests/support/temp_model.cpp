#include "support/temp_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

namespace zeroshot::testing {

TempModel::TempModel(const std::string& model_dir) {
  config_ = io::load_json(model_dir + "/config.json");
  const io::SafeTensorsFile f(model_dir + "/model.safetensors");
  for (const auto& [name, t] : f.tensors())
    tensors_[name] = {t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)};
  metadata_ = f.metadata();
  write_config();
  write_weights();
}

void TempModel::write_config() const { write_file(config_path(), config_.dump(2)); }

void TempModel::write_weights() const {
  std::vector<io::TensorData> v;
  for (const auto& [name, t] : tensors_) {
    size_t n = io::dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    // The writer reads numel * dtype size bytes: a tensor edited into another shape needs bytes to match.
    if (n != t.bytes.size()) {
      ADD_FAILURE() << name << ": " << t.bytes.size() << " bytes for " << n << " in its shape";
      return;
    }
    v.push_back({name, t.dtype, t.shape, t.bytes.data()});
  }
  io::write_safetensors(weights_path(), v, metadata_);
}

void TempModel::truncate_weights(size_t keep_bytes) const {
  write_weights();
  std::filesystem::resize_file(weights_path(),
                               std::min<uintmax_t>(keep_bytes, std::filesystem::file_size(weights_path())));
}

void TempModel::edit_raw(const std::function<void(io::Json& header, std::string& data)>& edit) const {
  write_weights();
  const std::string bytes = read_file(weights_path());
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<uint8_t>(bytes[i]);
  io::Json header = io::Json::parse(bytes.substr(8, len));
  std::string data = bytes.substr(8 + len);
  edit(header, data);
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((static_cast<uint64_t>(h.size()) >> (8 * i)) & 0xff);
  write_file(weights_path(), out + h + data);
}

}  // namespace zeroshot::testing
