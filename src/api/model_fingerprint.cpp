#include "api/model_fingerprint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/sha256.h"
#include "zeroshot/error.h"

namespace zeroshot::api {

namespace {

constexpr size_t kSample = 4096;
constexpr int kSamples = 64;
constexpr uint64_t kWholeFileLimit = 4u << 20;
constexpr uint64_t kMaxHeader = 100u << 20;  // the safetensors reader's own limit is lower

class File {
 public:
  explicit File(const std::string& path) : path_(path), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  ~File() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool is_open() const { return fd_ >= 0; }
  uint64_t size() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail();
    return static_cast<uint64_t>(st.st_size);
  }
  // Exactly n bytes at off (the caller keeps off + n <= size()).
  std::string read(uint64_t off, size_t n) const {
    std::string buf(n, '\0');
    size_t got = 0;
    while (got < n) {
      const ssize_t r = ::pread(fd_, buf.data() + got, n - got, static_cast<off_t>(off + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) fail();
      got += static_cast<size_t>(r);
    }
    return buf;
  }
  [[noreturn]] void fail() const {
    throw Error(path_,
                std::string("cannot read for the model fingerprint: ") + (errno ? std::strerror(errno) : "short read"));
  }

 private:
  std::string path_;
  int fd_;
};

void hash_samples(util::Sha256& h, const File& f, uint64_t size) {
  if (size <= kSample * kSamples) {
    h.field(f.read(0, static_cast<size_t>(size)));
    return;
  }
  for (int i = 0; i < kSamples; ++i)
    h.field(f.read((size - kSample) * static_cast<uint64_t>(i) / (kSamples - 1), kSample));
}

}  // namespace

std::string model_fingerprint(const std::vector<std::string>& small_files, const std::vector<std::string>& weight_files,
                              const std::string& precision) {
  namespace fs = std::filesystem;
  util::Sha256 h;
  h.field("zeroshot model fingerprint v1");
  for (const auto& path : small_files) {
    h.field(fs::path(path).filename().string());
    File f(path);
    if (!f.is_open()) {
      if (errno != ENOENT) f.fail();
      h.field("absent");
      continue;
    }
    const uint64_t size = f.size();
    h.field(size);
    if (size <= kWholeFileLimit) h.field(f.read(0, static_cast<size_t>(size)));
    else hash_samples(h, f, size);
  }
  for (const auto& path : weight_files) {
    h.field(fs::path(path).filename().string());
    File f(path);
    if (!f.is_open()) f.fail();
    const uint64_t size = f.size();
    h.field(size);
    if (size >= 8) {  // the safetensors header: every tensor's name, dtype, shape and offsets
      const std::string len = f.read(0, 8);
      uint64_t n = 0;
      for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(len[static_cast<size_t>(i)]);
      if (n <= kMaxHeader && n <= size - 8) h.field(f.read(8, static_cast<size_t>(n)));
    }
    hash_samples(h, f, size);
  }
  h.field(precision);
  const auto d = h.digest();
  return util::to_hex(d.data(), 16);
}

}  // namespace zeroshot::api
