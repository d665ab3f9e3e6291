// A read-only memory-mapped file. Move-only; unmaps on destruction.
// Empty files map to data()==nullptr, size()==0 (mmap refuses length 0).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace zeroshot::util {

class MappedFile {
 public:
  MappedFile() = default;
  // Throws zeroshot::Error("<path>: <strerror>") when the file cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void reset();
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) file into a string. Throws zeroshot::Error naming the path.
std::string read_file(const std::string& path);

}  // namespace zeroshot::util
