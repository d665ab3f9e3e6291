#include "models/packed_weights.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "nn/linear.h"
#include "zeroshot/error.h"

namespace zeroshot::models {

namespace {

constexpr char kMagic[8] = {'Z', 'S', 'P', 'A', 'C', 'K', 'E', 'D'};
// 2: the source weight files' paths after the layout (1 had none; a version 1 file is stale, and rebuilt).
constexpr uint32_t kVersion = 2;
// Panels start at page boundaries: aligned for the kernels' 64-byte loads, and each layer's pages are its own.
constexpr uint64_t kAlign = 4096;

uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// Little-endian fields, as the docs give them (every supported CPU is little-endian; written bytewise anyway).
struct Writer {
  std::string b;
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<char>(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<char>(v >> (8 * i)));
  }
  void str(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    b += s;
  }
};

// Reads fields within [p, end); any read past it throws "truncated header".
struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  const std::string& path;
  void need(size_t n) const {
    if (static_cast<size_t>(end - p) < n) throw Error(path, "damaged packed weights file (truncated header)");
  }
  uint64_t le(int bytes) {
    need(static_cast<size_t>(bytes));
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
    p += bytes;
    return v;
  }
  uint32_t u32() { return static_cast<uint32_t>(le(4)); }
  uint64_t u64() { return le(8); }
  std::string str() {
    const uint32_t n = u32();
    need(n);
    std::string s(reinterpret_cast<const char*>(p), n);
    p += n;
    return s;
  }
};

uint64_t align_up(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

void write_all(int fd, const void* data, size_t n, uint64_t offset, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw Error(path, std::string("cannot write the packed weights: ") + std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

std::string temp_name(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

}  // namespace

namespace {
std::string packed_weights_name_suffix(nn::Precision p) { return std::string(nn::precision_name(p)) + ".bin"; }
}  // namespace

std::string packed_weights_name(nn::Precision p) {
  return std::string("zeroshot-packed-") + nn::precision_name(p) + ".bin";
}

namespace {

struct LayerEntry {
  std::string name;
  int n = 0, k = 0;
  uint64_t offset = 0, bytes = 0;
};

// Parses and checks the header of a file of `file_size` bytes whose first `avail` bytes are at `d`: everything but
// what must match the reader (identity, precision, layout), which the caller compares.
PackedWeightsHeader parse_header(const uint8_t* d, size_t avail, uint64_t file_size, const std::string& path,
                                 std::vector<LayerEntry>* layers) {
  auto damaged = [&](const std::string& why) { return Error(path, "damaged packed weights file (" + why + ")"); };
  if (file_size < 24 || avail < 24 || std::memcmp(d, kMagic, sizeof kMagic) != 0)
    throw damaged("not a packed weights file");
  PackedWeightsHeader h;
  h.size = file_size;
  Reader r{d + 8, d + avail, path};
  h.version = r.u32();
  if (h.version != kVersion)
    throw Error(path, "stale packed weights file (format version " + std::to_string(h.version) + ", this build reads " +
                          std::to_string(kVersion) + ")");
  const uint32_t header = r.u32();
  if (header < 32 || header > file_size) throw damaged("truncated: header of " + std::to_string(header) + " bytes");
  const uint64_t stored_size = r.u64();
  if (stored_size != file_size)
    throw damaged("truncated: " + std::to_string(file_size) + " of " + std::to_string(stored_size) + " bytes");
  if (header > avail) throw damaged("truncated header");
  const uint8_t* sum_at = d + header - 8;
  if (Reader{sum_at, d + header, path}.u64() != fnv1a(d, header - 8)) throw damaged("header checksum mismatch");
  r.end = sum_at;
  h.identity = r.str();
  h.precision = r.str();
  h.layout = r.str();
  const uint32_t sources = r.u32();
  for (uint32_t i = 0; i < sources; ++i) h.sources.push_back(r.str());
  // The precisions whose panel sizes follow from [n, k] (every one this build writes).
  nn::Precision sized = nn::Precision::Int4;
  for (const nn::Precision q : {nn::Precision::F32, nn::Precision::BF16, nn::Precision::Int8})
    if (h.precision == nn::precision_name(q)) sized = q;
  const uint32_t count = r.u32();
  uint64_t prev_end = header;
  for (uint32_t i = 0; i < count; ++i) {
    LayerEntry e;
    e.name = r.str();
    const uint32_t n = r.u32(), k = r.u32();
    e.offset = r.u64();
    e.bytes = r.u64();
    if (n == 0 || k == 0 || n > std::numeric_limits<int>::max() || k > std::numeric_limits<int>::max())
      throw damaged("layer " + e.name + " has size " + std::to_string(n) + " x " + std::to_string(k));
    e.n = static_cast<int>(n);
    e.k = static_cast<int>(k);
    if (sized != nn::Precision::Int4 && e.bytes != nn::packed_panel_bytes(e.n, e.k, sized))
      throw damaged("layer " + e.name + " has " + std::to_string(e.bytes) + " bytes of panels");
    if (e.offset % kAlign != 0 || e.offset < prev_end || e.offset > file_size || e.bytes > file_size - e.offset)
      throw damaged("layer " + e.name + " lies outside the file");
    prev_end = e.offset + e.bytes;
    if (layers) layers->push_back(std::move(e));
  }
  if (r.p != r.end) throw damaged("unexpected bytes after the layer table");
  return h;
}

}  // namespace

PackedWeightsFile::PackedWeightsFile(const std::string& path, const std::string& fingerprint, nn::Precision p)
    : map_(path), prec_(p) {
  std::vector<LayerEntry> layers;
  const PackedWeightsHeader h = parse_header(map_.data(), map_.size(), map_.size(), path, &layers);
  auto stale = [&](const std::string& why) { return Error(path, "stale packed weights file (" + why + ")"); };
  if (h.identity != fingerprint) throw stale("made from other weights");
  if (h.precision != nn::precision_name(p)) throw stale("another precision");
  if (h.layout != nn::packed_layout(p)) throw stale("another panel layout or CPU kernels");
  for (LayerEntry& l : layers) {
    const Entry e{l.n, l.k, l.offset, l.bytes};
    if (!layers_.emplace(std::move(l.name), e).second)
      throw Error(path, "damaged packed weights file (a layer is listed twice)");
  }
}

PackedWeightsHeader read_packed_weights_header(const std::string& path) {
  // Read, not mapped: listing a cache of 0.5 GB files needs only their first pages.
  // O_NOATIME: the access time is the file's last use by a load (api/backend.cpp), which listing must not move
  // (refused for a file of another owner: then without).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) throw Error(path, std::string("cannot open: ") + std::strerror(errno));
  std::string head;
  struct stat st {};
  bool ok = ::fstat(fd, &st) == 0;
  if (ok && !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path, "not a regular file");
  }
  if (ok) {
    // The header's size is at offset 12; read at most that much (capped: a damaged size must not allocate GBs).
    uint8_t fixed[24] = {};
    const ssize_t got = ::pread(fd, fixed, sizeof fixed, 0);
    ok = got >= 0;
    uint64_t want = sizeof fixed;
    if (got == static_cast<ssize_t>(sizeof fixed)) {
      uint32_t header = 0;
      for (int i = 0; i < 4; ++i) header |= static_cast<uint32_t>(fixed[12 + i]) << (8 * i);
      want = std::min<uint64_t>({header, static_cast<uint64_t>(st.st_size), uint64_t{64} << 20});
    }
    head.resize(std::max<uint64_t>(want, sizeof fixed));
    size_t have = 0;
    while (ok && have < head.size()) {
      const ssize_t n = ::pread(fd, head.data() + have, head.size() - have, static_cast<off_t>(have));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) ok = false;
      if (n <= 0) break;
      have += static_cast<size_t>(n);
    }
    head.resize(have);
  }
  const int err = errno;
  ::close(fd);
  if (!ok) throw Error(path, std::string("cannot read: ") + std::strerror(err));
  return parse_header(reinterpret_cast<const uint8_t*>(head.data()), head.size(), static_cast<uint64_t>(st.st_size),
                      path, nullptr);
}

std::string packed_weights_cache_name(const std::string& fingerprint, std::vector<std::string> sources,
                                      nn::Precision p) {
  std::sort(sources.begin(), sources.end());
  std::string joined;
  for (const std::string& s : sources) joined.append(s).push_back('\0');
  char where[9];
  std::snprintf(where, sizeof where, "%08x",
                static_cast<unsigned>(fnv1a(reinterpret_cast<const uint8_t*>(joined.data()), joined.size())));
  return fingerprint.substr(fingerprint.find(':') + 1) + "-" + where + "-" + packed_weights_name_suffix(p);
}

bool is_packed_weights_cache_name(const std::string& name) {
  const auto hex_run = [&](size_t from, size_t n) {
    if (name.size() < from + n + 1 || name[from + n] != '-') return false;
    for (size_t i = from; i < from + n; ++i)
      if (!std::isdigit(static_cast<unsigned char>(name[i])) && (name[i] < 'a' || name[i] > 'f')) return false;
    return true;
  };
  if (!hex_run(0, 16)) return false;
  const std::string rest = name.substr(hex_run(17, 8) ? 26 : 17);
  return rest == packed_weights_name_suffix(nn::Precision::F32) ||
         rest == packed_weights_name_suffix(nn::Precision::BF16) ||
         rest == packed_weights_name_suffix(nn::Precision::Int8);
}

std::vector<std::string> remove_superseded_packed_weights(const std::string& written) {
  namespace fs = std::filesystem;
  std::vector<std::string> removed;
  try {
    const PackedWeightsHeader mine = read_packed_weights_header(written);
    if (mine.sources.empty()) return removed;
    std::vector<std::string> mine_sorted = mine.sources;
    std::sort(mine_sorted.begin(), mine_sorted.end());
    std::error_code ec;
    const fs::path self(written);
    for (fs::directory_iterator it(self.parent_path(), ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path& f = it->path();
      if (f.filename() == self.filename() || !is_packed_weights_cache_name(f.filename().string())) continue;
      std::error_code sec;
      if (!fs::is_regular_file(fs::symlink_status(f, sec))) continue;  // a link may lead out of the cache
      try {
        const PackedWeightsHeader other = read_packed_weights_header(f.string());
        std::vector<std::string> other_sorted = other.sources;
        std::sort(other_sorted.begin(), other_sorted.end());
        if (other_sorted != mine_sorted || other.precision != mine.precision) continue;
        // Unlinking a file another process maps is safe on Linux: its mapping keeps the inode (and the pages) until
        // it is unmapped; only the name goes.
        if (::unlink(f.c_str()) == 0) removed.push_back(f.string());
      } catch (const Error&) {
        // damaged or foreign: not this function's to judge
      }
    }
  } catch (const Error&) {
  }
  return removed;
}

bool source_identity(const std::vector<std::string>& files, std::string* out) {
  std::string id;
  for (const std::string& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) return false;
    // (Appended piece by piece: gcc 12 warns falsely, -Wrestrict, on a chain of + here.)
    id.append(";").append(std::to_string(st.st_size)).append("@");
    id.append(std::to_string(st.st_mtim.tv_sec)).append(".").append(std::to_string(st.st_mtim.tv_nsec));
  }
  *out = std::move(id);
  return true;
}

const uint8_t* PackedWeightsFile::find(const std::string& name, int n, int k, size_t* bytes) const {
  const auto it = layers_.find(name);
  if (it == layers_.end() || it->second.n != n || it->second.k != k) return nullptr;
  *bytes = it->second.bytes;
  return map_.data() + it->second.offset;
}

void write_packed_weights(const std::string& path, const std::string& fingerprint, nn::Precision p,
                          const std::vector<PackedRecord>& captured, const std::vector<std::string>& sources) {
  std::vector<PackedRecord> layers;
  for (const PackedRecord& l : captured)
    if (l.prec == p) layers.push_back(l);
  const char* layout = nn::packed_layout(p);
  if (!*layout) throw Error(path, "no packed panel layout for this precision on this CPU");
  // The header's size depends on nothing but the strings, so the offsets can be laid out before it is written.
  Writer w;
  w.b.append(kMagic, sizeof kMagic);
  w.u32(kVersion);
  const size_t header_size_at = w.b.size();
  w.u32(0);  // header size, patched below
  const size_t file_size_at = w.b.size();
  w.u64(0);  // file size, patched below
  w.str(fingerprint);
  w.str(nn::precision_name(p));
  w.str(layout);
  w.u32(static_cast<uint32_t>(sources.size()));
  for (const std::string& s : sources) w.str(s);
  w.u32(static_cast<uint32_t>(layers.size()));
  size_t table = w.b.size();
  for (const PackedRecord& l : layers) table += 4 + l.name.size() + 4 + 4 + 8 + 8;
  const uint64_t header = table + 8;
  std::vector<uint64_t> offsets;
  uint64_t at = align_up(header);
  for (const PackedRecord& l : layers) {
    if (!l.panels || l.bytes != nn::packed_panel_bytes(l.n, l.k, p))
      throw Error(path, "internal error: layer " + l.name + " has no panels of its size");
    offsets.push_back(at);
    at = align_up(at + l.bytes);
  }
  const uint64_t total = layers.empty() ? header : offsets.back() + layers.back().bytes;
  for (size_t i = 0; i < layers.size(); ++i) {
    w.str(layers[i].name);
    w.u32(static_cast<uint32_t>(layers[i].n));
    w.u32(static_cast<uint32_t>(layers[i].k));
    w.u64(offsets[i]);
    w.u64(layers[i].bytes);
  }
  for (int i = 0; i < 4; ++i) w.b[header_size_at + i] = static_cast<char>(header >> (8 * i));
  for (int i = 0; i < 8; ++i) w.b[file_size_at + i] = static_cast<char>(total >> (8 * i));
  w.u64(fnv1a(reinterpret_cast<const uint8_t*>(w.b.data()), w.b.size()));

  // An unnamed file (O_TMPFILE) vanishes by itself if this process dies before it is linked; where the file
  // system lacks it, a named temporary file, removed on failure.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  std::string tmp;
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
  const bool unnamed = fd >= 0;
  if (!unnamed) {
    tmp = temp_name(path);
    fd = ::open(tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) throw Error(path, std::string("cannot create the packed weights file: ") + std::strerror(errno));
  }
  try {
    // The padding between layers stays a hole (reads as zeros, takes no disk).
    if (::ftruncate(fd, static_cast<off_t>(total)) != 0)
      throw Error(path, std::string("cannot size the packed weights file: ") + std::strerror(errno));
    for (size_t i = 0; i < layers.size(); ++i) write_all(fd, layers[i].panels, layers[i].bytes, offsets[i], path);
    write_all(fd, w.b.data(), w.b.size(), 0, path);
    // On disk before the rename: a crash then leaves either no file or a whole one, never one of the right
    // size holding unwritten (zero) pages, which the size checks could not tell from a good one.
    if (::fdatasync(fd) != 0)
      throw Error(path, std::string("cannot write the packed weights: ") + std::strerror(errno));
    if (unnamed) {
      tmp = temp_name(path);
      const std::string self = "/proc/self/fd/" + std::to_string(fd);
      if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
        tmp.clear();
        throw Error(path, std::string("cannot link the packed weights file: ") + std::strerror(errno));
      }
    }
    if (::close(fd) != 0) {
      fd = -1;
      throw Error(path, std::string("cannot write the packed weights: ") + std::strerror(errno));
    }
    fd = -1;
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw Error(path, std::string("cannot rename the packed weights file into place: ") + std::strerror(errno));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    if (!tmp.empty()) ::unlink(tmp.c_str());
    throw;
  }
}

}  // namespace zeroshot::models
