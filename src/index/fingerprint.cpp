#include "index/fingerprint.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "zeroshot/error.h"

namespace zeroshot::index {

namespace fs = std::filesystem;

namespace {

struct Sha256 {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  Sha256() {
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) throw Error("sha256", "OpenSSL init failed");
  }
  void update(const void* p, size_t n) { EVP_DigestUpdate(ctx.get(), p, n); }
  std::string final() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(ctx.get(), out, &len);
    return std::string(reinterpret_cast<const char*>(out), len);
  }
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads up to n bytes at `offset`; returns the count (short only at end of file).
size_t pread_full(int fd, char* buf, size_t n, off_t offset, const std::string& path) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, buf + got, n - got, offset + static_cast<off_t>(got));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error(path, std::string("read error: ") + std::strerror(errno));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace

std::string file_sha256(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw Error(path, std::string("cannot open: ") + std::strerror(errno));
  Sha256 h;
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t r = ::read(f.fd, buf.data(), buf.size());
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error(path, std::string("read error: ") + std::strerror(errno));
    }
    if (r == 0) break;
    h.update(buf.data(), static_cast<size_t>(r));
  }
  return h.final();
}

std::string to_hex(const std::string& bytes) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    s += hex[c >> 4];
    s += hex[c & 15];
  }
  return s;
}

std::string model_fingerprint(const std::string& dir) {
  Sha256 h;
  auto add_string = [&](const std::string& s) {
    const uint64_t n = s.size();
    h.update(&n, sizeof n);
    h.update(s.data(), s.size());
  };
  for (const char* name : {"config.json", "preprocessor_config.json"}) {
    const fs::path p = fs::path(dir) / name;
    add_string(name);
    std::error_code ec;
    if (fs::exists(p, ec)) add_string(file_sha256(p.string()));
  }
  std::vector<fs::path> weights;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".safetensors" && it->is_regular_file(ec)) weights.push_back(it->path());
  if (ec) throw Error(dir, "cannot list the model folder: " + ec.message());
  std::sort(weights.begin(), weights.end());
  constexpr size_t kSamples = 16, kChunk = 4096;
  std::vector<char> buf(kChunk);
  for (const auto& w : weights) {
    const std::string p = w.string();
    add_string(w.filename().string());
    Fd f{::open(p.c_str(), O_RDONLY | O_CLOEXEC)};
    if (f.fd < 0) throw Error(p, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) throw Error(p, std::string("cannot stat: ") + std::strerror(errno));
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    h.update(&size, sizeof size);
    for (size_t i = 0; i < kSamples; ++i) {
      const uint64_t span = size > kChunk ? size - kChunk : 0;
      const off_t at = static_cast<off_t>(span * i / (kSamples - 1));
      const size_t n = pread_full(f.fd, buf.data(), kChunk, at, p);
      h.update(buf.data(), n);
    }
  }
  return to_hex(h.final());
}

}  // namespace zeroshot::index
