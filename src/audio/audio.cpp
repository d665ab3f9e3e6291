#include "audio/audio.h"

#include <fcntl.h>
#include <sndfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#include "audio/downmix.h"
#include "audio/resample.h"
#include "zeroshot/error.h"

namespace zeroshot::audio {

namespace {

constexpr int kMaxChannels = 1024;
constexpr int kMaxSampleRate = 768000;
constexpr sf_count_t kBlockSamples = 65536;  // per read, all channels together (256 KiB of floats)

// Random-access bytes for libsndfile's virtual I/O: a memory block or an open file (read with pread, so the
// whole file is never loaded).
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual int64_t size() const = 0;
  // Reads up to n bytes at offset; returns the count read (0 at or past the end).
  virtual size_t read_at(int64_t offset, void* dst, size_t n) const = 0;
};

class MemorySource : public ByteSource {
 public:
  MemorySource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  int64_t size() const override { return static_cast<int64_t>(size_); }
  size_t read_at(int64_t offset, void* dst, size_t n) const override {
    if (offset < 0 || static_cast<uint64_t>(offset) >= size_) return 0;
    const size_t k = std::min(n, size_ - static_cast<size_t>(offset));
    std::memcpy(dst, data_ + offset, k);
    return k;
  }

 private:
  const uint8_t* data_;
  size_t size_;
};

class FileSource : public ByteSource {
 public:
  explicit FileSource(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw Error(path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw Error(path, "not a regular file");
    }
    size_ = st.st_size;
  }
  ~FileSource() override { ::close(fd_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  int64_t size() const override { return size_; }
  size_t read_at(int64_t offset, void* dst, size_t n) const override {
    size_t done = 0;
    while (done < n && offset + static_cast<int64_t>(done) < size_) {
      const ssize_t r = ::pread(fd_, static_cast<char*>(dst) + done, n - done, offset + static_cast<off_t>(done));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      done += static_cast<size_t>(r);
    }
    return done;
  }

 private:
  int fd_ = -1;
  int64_t size_ = 0;
};

// libsndfile virtual I/O over a ByteSource.
struct VirtualFile {
  const ByteSource* src;
  int64_t pos = 0;
};

sf_count_t vio_size(void* user) { return static_cast<VirtualFile*>(user)->src->size(); }
sf_count_t vio_seek(sf_count_t offset, int whence, void* user) {
  auto* f = static_cast<VirtualFile*>(user);
  int64_t base = whence == SEEK_CUR ? f->pos : whence == SEEK_END ? f->src->size() : 0;
  if ((offset > 0 && base > INT64_MAX - offset) || base + offset < 0) return -1;
  f->pos = base + offset;
  return f->pos;
}
sf_count_t vio_read(void* ptr, sf_count_t count, void* user) {
  auto* f = static_cast<VirtualFile*>(user);
  if (count <= 0) return 0;
  const size_t k = f->src->read_at(f->pos, ptr, static_cast<size_t>(count));
  f->pos += static_cast<int64_t>(k);
  return static_cast<sf_count_t>(k);
}
sf_count_t vio_write(const void*, sf_count_t, void*) { return 0; }
sf_count_t vio_tell(void* user) { return static_cast<VirtualFile*>(user)->pos; }

uint32_t le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }

// A RIFF/WAVE "data" chunk that claims more bytes than the file holds: libsndfile (and ffmpeg) clamp it and
// decode what is there; we refuse such a header, as the fixtures ask (bad_huge_header.wav).
void check_riff_data_size(const ByteSource& src, const std::string& name) {
  uint8_t h[12];
  if (src.read_at(0, h, 12) != 12 || std::memcmp(h, "RIFF", 4) != 0 || std::memcmp(h + 8, "WAVE", 4) != 0) return;
  const int64_t size = src.size();
  int64_t off = 12;
  for (int chunks = 0; chunks < 4096 && off + 8 <= size; ++chunks) {
    uint8_t c[8];
    if (src.read_at(off, c, 8) != 8) return;
    const int64_t len = le32(c + 4);
    if (std::memcmp(c, "data", 4) == 0) {
      const int64_t present = size - (off + 8);
      if (len > present)
        throw Error(name, "corrupt WAV header: the data chunk claims " + std::to_string(len) + " bytes but only " +
                              std::to_string(present) + " follow");
      return;
    }
    off += 8 + len + (len & 1);
  }
}

// Bytes per sample of uncompressed subformats; 0 for compressed or unknown ones (FLAC reports PCM_16 etc. too:
// the caller excludes compressing containers).
int pcm_bytes_per_sample(int format) {
  switch (format & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_S8: case SF_FORMAT_PCM_U8: case SF_FORMAT_ULAW: case SF_FORMAT_ALAW: return 1;
    case SF_FORMAT_PCM_16: return 2;
    case SF_FORMAT_PCM_24: return 3;
    case SF_FORMAT_PCM_32: case SF_FORMAT_FLOAT: return 4;
    case SF_FORMAT_DOUBLE: return 8;
    default: return 0;
  }
}

std::string one_line(std::string s) {
  for (char& ch : s)
    if (ch == '\n' || ch == '\r') ch = ' ';
  while (!s.empty() && (s.back() == ' ' || s.back() == '.')) s.pop_back();
  return s;
}

std::vector<Speaker> channel_positions(SNDFILE* f, const SF_INFO& info) {
  const int ch = info.channels;
  if (ch == 1) return default_layout(1, LayoutFamily::Default);
  std::vector<int> map(ch);
  if (sf_command(f, SFC_GET_CHANNEL_MAP_INFO, map.data(), static_cast<int>(sizeof(int) * ch)) == SF_TRUE) {
    std::vector<Speaker> pos;
    for (int m : map) {
      switch (m) {
        case SF_CHANNEL_MAP_MONO: case SF_CHANNEL_MAP_CENTER: case SF_CHANNEL_MAP_FRONT_CENTER:
          pos.push_back(Speaker::FC); break;
        case SF_CHANNEL_MAP_LEFT: case SF_CHANNEL_MAP_FRONT_LEFT: pos.push_back(Speaker::FL); break;
        case SF_CHANNEL_MAP_RIGHT: case SF_CHANNEL_MAP_FRONT_RIGHT: pos.push_back(Speaker::FR); break;
        case SF_CHANNEL_MAP_REAR_CENTER: pos.push_back(Speaker::BC); break;
        case SF_CHANNEL_MAP_REAR_LEFT: pos.push_back(Speaker::BL); break;
        case SF_CHANNEL_MAP_REAR_RIGHT: pos.push_back(Speaker::BR); break;
        case SF_CHANNEL_MAP_LFE: pos.push_back(Speaker::LFE); break;
        case SF_CHANNEL_MAP_FRONT_LEFT_OF_CENTER: pos.push_back(Speaker::FLC); break;
        case SF_CHANNEL_MAP_FRONT_RIGHT_OF_CENTER: pos.push_back(Speaker::FRC); break;
        case SF_CHANNEL_MAP_SIDE_LEFT: pos.push_back(Speaker::SL); break;
        case SF_CHANNEL_MAP_SIDE_RIGHT: pos.push_back(Speaker::SR); break;
        case SF_CHANNEL_MAP_TOP_CENTER: pos.push_back(Speaker::TC); break;
        case SF_CHANNEL_MAP_TOP_FRONT_LEFT: pos.push_back(Speaker::TFL); break;
        case SF_CHANNEL_MAP_TOP_FRONT_RIGHT: pos.push_back(Speaker::TFR); break;
        case SF_CHANNEL_MAP_TOP_FRONT_CENTER: pos.push_back(Speaker::TFC); break;
        case SF_CHANNEL_MAP_TOP_REAR_LEFT: pos.push_back(Speaker::TBL); break;
        case SF_CHANNEL_MAP_TOP_REAR_RIGHT: pos.push_back(Speaker::TBR); break;
        case SF_CHANNEL_MAP_TOP_REAR_CENTER: pos.push_back(Speaker::TBC); break;
        default: pos.push_back(Speaker::Unknown); break;
      }
    }
    if (!mono_weights(pos).empty()) return pos;
  }
  const int sub = info.format & SF_FORMAT_SUBMASK;
  if (sub == SF_FORMAT_VORBIS || sub == SF_FORMAT_OPUS) return default_layout(ch, LayoutFamily::Vorbis);
  if ((info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_FLAC) return default_layout(ch, LayoutFamily::Flac);
  return default_layout(ch, LayoutFamily::Default);
}

std::string seconds(double s) {
  std::ostringstream o;
  o.precision(6);
  o << s << " s";
  return o.str();
}

Waveform decode(const ByteSource& src, const std::string& name, const DecodeOptions& opt) {
  if (src.size() == 0) throw Error(name, "Malformed soundfile: empty file");
  if (opt.target_rate < 0 || opt.target_rate > kMaxSampleRate) throw Error(name, "invalid target sample rate");
  if (!(opt.max_seconds > 0)) throw Error(name, "invalid maximum duration");
  check_riff_data_size(src, name);

  VirtualFile vf{&src, 0};
  SF_VIRTUAL_IO vio{vio_size, vio_seek, vio_read, vio_write, vio_tell};
  SF_INFO info{};
  SNDFILE* f = sf_open_virtual(&vio, SFM_READ, &info, &vf);
  if (!f) {
    // libsndfile keeps the open error in a process-wide variable: with concurrent opens the reason shown may be
    // another thread's; the refusal itself is not affected.
    const std::string why = one_line(sf_error_number(sf_error(nullptr)));
    throw Error(name, "Malformed soundfile or unsupported format (" + why + ")");
  }
  struct Closer {
    SNDFILE* f;
    ~Closer() { sf_close(f); }
  } closer{f};

  if (info.channels <= 0) throw Error(name, "Malformed soundfile: no channels");
  if (info.channels > kMaxChannels) throw Error(name, "too many channels (" + std::to_string(info.channels) + ")");
  if (info.samplerate <= 0 || info.samplerate > kMaxSampleRate)
    throw Error(name, "unsupported sample rate " + std::to_string(info.samplerate));
  if (info.frames == 0) throw Error(name, "Malformed soundfile: no samples");
  const double max_frames = opt.max_seconds * info.samplerate;
  const bool known_length = info.frames > 0 && info.frames < SF_COUNT_MAX;
  if (known_length && static_cast<double>(info.frames) > max_frames)
    throw Error(name, "duration " + seconds(static_cast<double>(info.frames) / info.samplerate) +
                          " exceeds the limit of " + seconds(opt.max_seconds));
  const int major = info.format & SF_FORMAT_TYPEMASK;
  const bool container_compresses = major == SF_FORMAT_FLAC || major == SF_FORMAT_OGG || major == SF_FORMAT_MPEG;
  if (const int bps = pcm_bytes_per_sample(info.format); bps > 0 && known_length && !container_compresses) {
    const double claimed = static_cast<double>(info.frames) * info.channels * bps;
    if (claimed > static_cast<double>(src.size()))
      throw Error(name, "corrupt header: it claims " + std::to_string(info.frames) + " frames but the file has only " +
                            std::to_string(src.size()) + " bytes");
  }

  const std::vector<Speaker> positions = channel_positions(f, info);
  const sf_count_t block_frames = std::max<sf_count_t>(1, kBlockSamples / info.channels);
  std::vector<float> block(static_cast<size_t>(block_frames) * info.channels);
  std::vector<float> mono;
  for (;;) {
    const sf_count_t got = sf_readf_float(f, block.data(), block_frames);
    if (got <= 0) break;  // end of data, or a decode error after which ffmpeg too keeps what it decoded
    downmix_append(block.data(), static_cast<size_t>(got), info.channels, positions, mono);
    if (static_cast<double>(mono.size()) > max_frames)
      throw Error(name, "duration exceeds the limit of " + seconds(opt.max_seconds));
  }
  if (mono.empty()) {
    const int err = sf_error(f);
    throw Error(name, "Malformed soundfile: no samples decoded" +
                          (err ? " (" + one_line(sf_error_number(err)) + ")" : std::string()));
  }
  Waveform w;
  w.sample_rate = info.samplerate;
  if (opt.target_rate > 0 && opt.target_rate != info.samplerate) {
    w.samples = resample(mono, info.samplerate, opt.target_rate, name);
    w.sample_rate = opt.target_rate;
    if (w.samples.empty()) throw Error(name, "Malformed soundfile: no samples after resampling");
  } else {
    w.samples = std::move(mono);
  }
  return w;
}

}  // namespace

Waveform decode_file(const std::string& path, const DecodeOptions& opt) {
  FileSource src(path);
  return decode(src, path, opt);
}

Waveform decode_memory(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt) {
  MemorySource src(data, data ? size : 0);
  return decode(src, name, opt);
}

bool has_mp3_support() {
  SF_INFO info{};
  info.format = SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III;
  info.channels = 1;
  info.samplerate = 48000;
  return sf_format_check(&info) == SF_TRUE;
}

bool has_audio_extension(const std::string& path) {
  const auto dot = path.find_last_of('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return false;
  std::string ext = path.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const char* kExt[] = {"wav", "flac", "ogg", "oga", "opus", "mp3", "aif", "aiff", "aifc", "au", "caf", "w64",
                               "rf64"};
  return std::any_of(std::begin(kExt), std::end(kExt), [&](const char* e) { return ext == e; });
}

}  // namespace zeroshot::audio
