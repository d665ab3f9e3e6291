#include "index/fingerprint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "util/sha256.h"
#include "zeroshot/error.h"

namespace zeroshot::index {

namespace fs = std::filesystem;

namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string file_sha256(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw Error(path, std::string("cannot open: ") + std::strerror(errno));
  util::Sha256 h;
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
  const auto d = h.digest();
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

}  // namespace zeroshot::index
