#include "classify/label_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <new>
#include <thread>

namespace zeroshot::classify {

namespace fs = std::filesystem;

std::array<uint8_t, 32> label_cache_key(const std::string& model_fingerprint,
                                        const std::vector<std::vector<std::string>>& classes,
                                        const std::vector<std::string>& templates) {
  util::Sha256 h;
  h.field("zeroshot label embeddings");
  h.field(uint64_t{kLabelCacheVersion});
  h.field(model_fingerprint);
  h.field(static_cast<uint64_t>(templates.size()));
  for (const auto& t : templates) h.field(t);
  h.field(static_cast<uint64_t>(classes.size()));
  for (const auto& names : classes) {
    h.field(static_cast<uint64_t>(names.size()));
    for (const auto& n : names) h.field(n);
  }
  return h.digest();
}

std::string resolve_cache_dir(const std::string& option) {
  if (option == "none") return "";
  if (!option.empty()) return option;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && xdg[0] == '/') return std::string(xdg) + "/zeroshot";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/zeroshot";
  return "";
}

std::string label_cache_path(const std::string& dir, const std::array<uint8_t, 32>& key) {
  return dir + "/label-embeddings/" + util::to_hex(key.data(), 16) + ".bin";
}

namespace {

constexpr char kMagic[8] = {'Z', 'S', 'L', 'A', 'B', 'E', 'L', 'S'};
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 32 + 8 + 8 + 32;

void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_u32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool read_all(int fd, uint8_t* p, size_t n) {
  while (n) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool write_all(int fd, const uint8_t* p, size_t n) {
  while (n) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// rows * dim * 4 without overflow; false when it does not fit.
bool payload_bytes(size_t rows, size_t dim, size_t* out) {
  if (dim && rows > (SIZE_MAX - kHeaderBytes) / 4 / dim) return false;
  *out = rows * dim * 4;
  return true;
}

}  // namespace

bool load_label_embeddings(const std::string& path, const std::array<uint8_t, 32>& key, size_t rows, size_t dim,
                           std::vector<float>* out) {
  size_t payload = 0;
  if (!payload_bytes(rows, dim, &payload)) return false;
  // Files are never modified in place (writers rename new ones over them), so one open file stays consistent.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  uint8_t header[kHeaderBytes];
  bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
            static_cast<uint64_t>(st.st_size) == kHeaderBytes + payload && read_all(fd, header, kHeaderBytes);
  ok = ok && std::memcmp(header, kMagic, 8) == 0 && get_u32(header + 8) == kLabelCacheVersion &&
       get_u32(header + 12) == 0 && std::memcmp(header + 16, key.data(), 32) == 0 && get_u64(header + 48) == rows &&
       get_u64(header + 56) == dim;
  std::vector<float> data;
  if (ok) {
    data.resize(rows * dim);
    ok = read_all(fd, reinterpret_cast<uint8_t*>(data.data()), payload);
  }
  ::close(fd);
  if (!ok) return false;
  util::Sha256 h;
  h.update(data.data(), payload);
  const auto sum = h.digest();
  if (std::memcmp(sum.data(), header + 64, 32) != 0) return false;
  for (float v : data)
    if (!std::isfinite(v)) return false;
  // Its access time set to now, explicitly: the last use that `zeroshot cache prune` goes by (noatime / relatime
  // mounts would not update it). Best effort: a read-only cache is still read.
  const struct timespec now_atime[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  ::utimensat(AT_FDCWD, path.c_str(), now_atime, 0);
  *out = std::move(data);
  return true;
}

bool store_label_embeddings(const std::string& path, const std::array<uint8_t, 32>& key, size_t rows, size_t dim,
                            const float* data) {
  size_t payload = 0;
  if (!payload_bytes(rows, dim, &payload)) return false;
  std::error_code ec;
  const fs::path target(path);
  fs::create_directories(target.parent_path(), ec);
  if (ec) return false;

  uint8_t header[kHeaderBytes];
  std::memcpy(header, kMagic, 8);
  put_u32(header + 8, kLabelCacheVersion);
  put_u32(header + 12, 0);
  std::memcpy(header + 16, key.data(), 32);
  put_u64(header + 48, rows);
  put_u64(header + 56, dim);
  util::Sha256 h;
  h.update(data, payload);
  const auto sum = h.digest();
  std::memcpy(header + 64, sum.data(), 32);

  // Unique per process and call: several processes (or threads) may write the same entry at once.
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()) % 1000000) + "." +
                          std::to_string(counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = write_all(fd, header, kHeaderBytes) && write_all(fd, reinterpret_cast<const uint8_t*>(data), payload);
  ok = (::close(fd) == 0) && ok;
  if (ok) ok = ::rename(tmp.c_str(), path.c_str()) == 0;
  if (!ok) ::unlink(tmp.c_str());
  return ok;
}

}  // namespace zeroshot::classify
