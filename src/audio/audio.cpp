#include "audio/audio.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
}

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <mutex>
#include <sstream>
#include <utility>

#include "zeroshot/error.h"

// Why FFmpeg's libraries and not libsndfile + libsoxr: the reference pipeline runs the ffmpeg 5.1 CLI, whose
// decoders and swresample these are; the same code gives the same samples (the resampled fixtures bit-exact
// instead of SNR 40 dB), reads M4A/AAC, Opus in WebM and the audio of video files, and libsndfile leaked 5.8 KB
// per malformed Ogg file (issue 19).
namespace zeroshot::audio {

namespace {

constexpr int kMaxChannels = 1024;
constexpr int kMaxSampleRate = 768000;
constexpr int kIoBufferBytes = 1 << 16;

// Demuxers we let probe the data: audio containers and the common video containers (for their audio track).
// Playlist and reference demuxers (hls, concat, ...) are not among them: they would open other files.
constexpr const char* kFormats = "wav,w64,aiff,au,caf,flac,ogg,mp3,mov,matroska,aac,ac3,eac3,avi,asf,wv,ape,tta";

// Random-access bytes: a memory block or an open file (read with pread, so the whole file is never loaded).
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

// AVIOContext callbacks over a ByteSource.
struct Cursor {
  const ByteSource* src;
  int64_t pos = 0;
};

int io_read(void* user, uint8_t* buf, int n) {
  auto* c = static_cast<Cursor*>(user);
  if (n <= 0) return 0;
  const size_t k = c->src->read_at(c->pos, buf, static_cast<size_t>(n));
  if (k == 0) return AVERROR_EOF;
  c->pos += static_cast<int64_t>(k);
  return static_cast<int>(k);
}

int64_t io_seek(void* user, int64_t offset, int whence) {
  auto* c = static_cast<Cursor*>(user);
  const int64_t size = c->src->size();
  whence &= ~AVSEEK_FORCE;
  if (whence == AVSEEK_SIZE) return size;
  const int64_t base = whence == SEEK_CUR ? c->pos : whence == SEEK_END ? size : 0;
  if ((offset > 0 && base > INT64_MAX - offset) || base + offset < 0) return AVERROR(EINVAL);
  c->pos = base + offset;
  return c->pos;
}

// Demuxers that reference other files (mov "dref", ...) reach them through this hook: nothing is opened.
int refuse_io_open(AVFormatContext*, AVIOContext**, const char*, int, AVDictionary**) { return AVERROR(EPERM); }

// Owners of the FFmpeg objects, so that every early exit (a throw) frees them.
struct IoCtx {
  AVIOContext* p = nullptr;
  IoCtx() = default;
  IoCtx(IoCtx&& o) noexcept : p(std::exchange(o.p, nullptr)) {}
  IoCtx(const IoCtx&) = delete;
  IoCtx& operator=(const IoCtx&) = delete;
  IoCtx& operator=(IoCtx&&) = delete;
  ~IoCtx() {
    if (p) av_freep(&p->buffer);  // the buffer may have been replaced by FFmpeg: free the current one
    avio_context_free(&p);
  }
};
struct FormatCtx {
  AVFormatContext* p = nullptr;
  ~FormatCtx() { avformat_close_input(&p); }  // also frees a context that was never opened
};
struct CodecCtx {
  AVCodecContext* p = nullptr;
  ~CodecCtx() { avcodec_free_context(&p); }
};
struct Packet {
  AVPacket* p = av_packet_alloc();
  ~Packet() { av_packet_free(&p); }
};
struct Frame {
  AVFrame* p = av_frame_alloc();
  ~Frame() { av_frame_free(&p); }
};
struct Resampler {
  SwrContext* p = nullptr;
  ~Resampler() { swr_free(&p); }
};

// An AVIOContext over a cursor; without a seek callback it behaves as a pipe.
IoCtx make_io(Cursor* cursor, bool seekable) {
  IoCtx io;
  auto* buffer = static_cast<uint8_t*>(av_malloc(kIoBufferBytes));
  if (!buffer) throw std::bad_alloc();
  io.p = avio_alloc_context(buffer, kIoBufferBytes, 0, cursor, io_read, nullptr, seekable ? io_seek : nullptr);
  if (!io.p) {
    av_free(buffer);
    throw std::bad_alloc();
  }
  return io;
}

std::string av_error(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof buf);
  return buf;
}

std::string seconds(double s) {
  std::ostringstream o;
  o.precision(6);
  o << s << " s";
  return o.str();
}

uint32_t le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }

// RIFF/WAVE headers, read here because through a pipe ffmpeg's WAV demuxer gives no duration:
// - a "data" chunk that claims more bytes than the file holds: ffmpeg clamps it and decodes what is there; we
//   refuse such a header, as the fixtures ask (bad_huge_header.wav);
// - returns the duration the header states (data bytes / block align / rate), or -1 if it does not state one.
double check_riff_header(const ByteSource& src, const std::string& name) {
  uint8_t h[12];
  if (src.read_at(0, h, 12) != 12 || std::memcmp(h, "RIFF", 4) != 0 || std::memcmp(h + 8, "WAVE", 4) != 0) return -1;
  const int64_t size = src.size();
  int64_t off = 12;
  uint32_t rate = 0, block_align = 0;
  for (int chunks = 0; chunks < 4096 && off + 8 <= size; ++chunks) {
    uint8_t c[8];
    if (src.read_at(off, c, 8) != 8) return -1;
    const int64_t len = le32(c + 4);
    if (std::memcmp(c, "fmt ", 4) == 0 && len >= 16) {
      uint8_t f[16];
      if (src.read_at(off + 8, f, 16) != 16) return -1;
      rate = le32(f + 4);
      block_align = f[12] | f[13] << 8;
    } else if (std::memcmp(c, "data", 4) == 0) {
      const int64_t present = size - (off + 8);
      if (len > present)
        throw Error(name, "corrupt WAV header: the data chunk claims " + std::to_string(len) + " bytes but only " +
                              std::to_string(present) + " follow");
      if (rate == 0 || block_align == 0) return -1;
      const int64_t frames = len / block_align;  // whole frames only
      return static_cast<double>(frames) / rate;
    }
    off += 8 + len + (len & 1);
  }
  return -1;
}

// Decoded frames -> mono float32 at the output rate, through one swresample context per input configuration,
// set up as the ffmpeg CLI's auto-inserted `aresample` filter does (default options: this is what makes the
// output identical to `ffmpeg -ac 1 -ar R -f f32le`).
class ToMono {
 public:
  ToMono(const std::string& name, int out_rate, double max_seconds)
      : name_(name), out_rate_(out_rate), max_seconds_(max_seconds) {}
  ~ToMono() { av_channel_layout_uninit(&layout_); }
  ToMono(const ToMono&) = delete;
  ToMono& operator=(const ToMono&) = delete;

  void push(const AVFrame* f) {
    if (f->nb_samples <= 0) return;
    if (!swr_.p || f->format != format_ || f->sample_rate != in_rate_ ||
        av_channel_layout_compare(&f->ch_layout, &layout_) != 0)
      reconfigure(f);
    convert(const_cast<const uint8_t**>(f->extended_data), f->nb_samples);
  }
  // Drains the resampler's delay line, as the filter does at the end of the stream.
  void finish() {
    if (swr_.p) convert(nullptr, 0);
  }
  int rate() const { return out_rate_; }
  std::vector<float>& samples() { return out_; }

 private:
  void reconfigure(const AVFrame* f) {
    finish();
    swr_free(&swr_.p);
    av_channel_layout_uninit(&layout_);
    const int ch = f->ch_layout.nb_channels;
    if (ch <= 0) throw Error(name_, "Malformed soundfile: no channels");
    if (ch > kMaxChannels) throw Error(name_, "too many channels (" + std::to_string(ch) + ")");
    if (f->sample_rate <= 0 || f->sample_rate > kMaxSampleRate)
      throw Error(name_, "unsupported sample rate " + std::to_string(f->sample_rate));
    if (av_channel_layout_copy(&layout_, &f->ch_layout) < 0) throw std::bad_alloc();
    format_ = f->format;
    in_rate_ = f->sample_rate;
    if (out_rate_ == 0) out_rate_ = in_rate_;
    // The CLI's guess for a stream without a channel map: ffmpeg's default layout for the count
    // (2.1 for 3, 4.0 for 4, 5.0(back) for 5, ...).
    AVChannelLayout in{};
    if (layout_.order == AV_CHANNEL_ORDER_UNSPEC) {
      av_channel_layout_default(&in, ch);
    } else if (av_channel_layout_copy(&in, &layout_) < 0) {
      throw std::bad_alloc();
    }
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    int err = swr_alloc_set_opts2(&swr_.p, &mono, AV_SAMPLE_FMT_FLT, out_rate_, &in,
                                  static_cast<AVSampleFormat>(format_), in_rate_, 0, nullptr);
    const bool usable = in.order != AV_CHANNEL_ORDER_UNSPEC || ch == 1;
    av_channel_layout_uninit(&in);
    if (err < 0) throw Error(name_, "cannot convert the audio: " + av_error(err));
    if (!usable) {
      // No layout ffmpeg would know (more than 8 channels without a map; the CLI refuses such a stream):
      // the plain mean, a documented deviation.
      std::vector<double> w(static_cast<size_t>(ch), 1.0 / ch);
      if ((err = swr_set_matrix(swr_.p, w.data(), ch)) < 0)
        throw Error(name_, "cannot mix the channels: " + av_error(err));
    }
    if ((err = swr_init(swr_.p)) < 0) throw Error(name_, "cannot convert the audio: " + av_error(err));
  }

  void convert(const uint8_t** in, int n) {
    for (;;) {
      const int room = swr_get_out_samples(swr_.p, n);
      if (room < 0) throw Error(name_, "cannot convert the audio: " + av_error(room));
      const size_t base = out_.size();
      out_.resize(base + static_cast<size_t>(room) + 16);
      auto* dst = reinterpret_cast<uint8_t*>(out_.data() + base);
      const int got = swr_convert(swr_.p, &dst, room + 16, in, n);
      if (got < 0) {
        out_.resize(base);
        throw Error(name_, "cannot convert the audio: " + av_error(got));
      }
      out_.resize(base + static_cast<size_t>(got));
      if (static_cast<double>(out_.size()) > max_seconds_ * out_rate_)
        throw Error(name_, "duration exceeds the limit of " + seconds(max_seconds_));
      // Input is consumed at once; when flushing, repeat until the delay line is empty.
      if (in || got == 0) return;
    }
  }

  std::string name_;
  int out_rate_;
  double max_seconds_;
  Resampler swr_;
  AVChannelLayout layout_{};
  int format_ = -1;
  int in_rate_ = 0;
  std::vector<float> out_;
};

void quiet_ffmpeg() {
  // FFmpeg logs every damaged packet to stderr; refusals reach the caller as zeroshot::Error instead.
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_level(AV_LOG_QUIET); });
}

Waveform decode(const ByteSource& src, const std::string& name, const DecodeOptions& opt) {
  if (src.size() == 0) throw Error(name, "Malformed soundfile: empty file");
  if (opt.target_rate < 0 || opt.target_rate > kMaxSampleRate) throw Error(name, "invalid target sample rate");
  if (!(opt.max_seconds > 0)) throw Error(name, "invalid maximum duration");
  // A duration the header states is checked before decoding anything.
  if (const double s = check_riff_header(src, name); s > opt.max_seconds)
    throw Error(name, "duration " + seconds(s) + " exceeds the limit of " + seconds(opt.max_seconds));
  quiet_ffmpeg();

  // Probed as the pipeline's `ffmpeg -i pipe:0` probes: from the bytes alone, no file name extension.
  Cursor probe_cursor{&src, 0};
  const AVInputFormat* format = nullptr;
  int err = 0;
  {
    IoCtx probe_io = make_io(&probe_cursor, false);
    err = av_probe_input_buffer2(probe_io.p, &format, "", nullptr, 0, 0);
  }
  if (err < 0 || !format) throw Error(name, "Malformed soundfile or unsupported format (" + av_error(err) + ")");
  // Demuxers read a stream that cannot seek, as through the pipeline's pipe: some read differently when they can
  // (the MP3 demuxer trims the encoder's end padding only on a seekable input: 551 samples fewer than the
  // pipeline at 44.1 kHz). MP4/MOV is the exception: its index may follow the data, which a pipe reaches only
  // while everything fits in the read buffer (the pipeline fails on such files); where both work they decode the
  // same samples (tested).
  const bool seekable = std::strncmp(format->name, "mov,", 4) == 0;
  Cursor cursor{&src, 0};
  IoCtx io = make_io(&cursor, seekable);
  FormatCtx fmt;
  fmt.p = avformat_alloc_context();
  if (!fmt.p) throw std::bad_alloc();
  fmt.p->pb = io.p;
  fmt.p->flags |= AVFMT_FLAG_CUSTOM_IO;
  fmt.p->io_open = refuse_io_open;
  AVDictionary* fopts = nullptr;
  av_dict_set(&fopts, "format_whitelist", kFormats, 0);
  err = avformat_open_input(&fmt.p, "", format, &fopts);  // frees fmt.p on failure
  av_dict_free(&fopts);
  if (err < 0) throw Error(name, "Malformed soundfile or unsupported format (" + av_error(err) + ")");
  if ((err = avformat_find_stream_info(fmt.p, nullptr)) < 0)
    throw Error(name, "Malformed soundfile (" + av_error(err) + ")");
  const AVCodec* codec = nullptr;
  const int index = av_find_best_stream(fmt.p, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
  if (index == AVERROR_STREAM_NOT_FOUND) throw Error(name, "Malformed soundfile: no audio stream");
  if (index < 0 || !codec) throw Error(name, "unsupported audio codec (" + av_error(index) + ")");
  for (unsigned i = 0; i < fmt.p->nb_streams; ++i)
    if (static_cast<int>(i) != index) fmt.p->streams[i]->discard = AVDISCARD_ALL;
  const AVStream* st = fmt.p->streams[index];
  const AVCodecParameters* par = st->codecpar;
  if (par->ch_layout.nb_channels <= 0) throw Error(name, "Malformed soundfile: no channels");
  if (par->ch_layout.nb_channels > kMaxChannels)
    throw Error(name, "too many channels (" + std::to_string(par->ch_layout.nb_channels) + ")");
  if (par->sample_rate <= 0 || par->sample_rate > kMaxSampleRate)
    throw Error(name, "unsupported sample rate " + std::to_string(par->sample_rate));
  // The same for a duration other containers state (not one guessed from the bit rate).
  if (st->duration > 0 && st->duration != AV_NOPTS_VALUE &&
      fmt.p->duration_estimation_method != AVFMT_DURATION_FROM_BITRATE) {
    const double s = static_cast<double>(st->duration) * av_q2d(st->time_base);
    if (s > opt.max_seconds)
      throw Error(name, "duration " + seconds(s) + " exceeds the limit of " + seconds(opt.max_seconds));
  }

  CodecCtx dec;
  dec.p = avcodec_alloc_context3(codec);
  if (!dec.p) throw std::bad_alloc();
  if ((err = avcodec_parameters_to_context(dec.p, par)) < 0)
    throw Error(name, "Malformed soundfile (" + av_error(err) + ")");
  dec.p->pkt_timebase = st->time_base;
  dec.p->thread_count = 1;
  if ((err = avcodec_open2(dec.p, codec, nullptr)) < 0)
    throw Error(name, std::string("cannot open the ") + codec->name + " decoder (" + av_error(err) + ")");

  ToMono mono(name, opt.target_rate, opt.max_seconds);
  Packet pkt;
  Frame frame;
  if (!pkt.p || !frame.p) throw std::bad_alloc();
  auto drain = [&] {
    for (;;) {
      const int r = avcodec_receive_frame(dec.p, frame.p);
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      if (r < 0) return;  // a damaged frame: like the CLI, keep what decoded and go on
      mono.push(frame.p);
      av_frame_unref(frame.p);
    }
  };
  for (;;) {
    err = av_read_frame(fmt.p, pkt.p);
    if (err < 0) break;  // end of data, or damage after which the CLI too keeps what it decoded
    if (pkt.p->stream_index == index) {
      // A packet the decoder rejects is skipped, as the CLI does (it logs it and continues).
      avcodec_send_packet(dec.p, pkt.p);
      drain();
    }
    av_packet_unref(pkt.p);
  }
  avcodec_send_packet(dec.p, nullptr);
  drain();
  mono.finish();

  if (mono.samples().empty()) throw Error(name, "Malformed soundfile: no samples decoded");
  Waveform w;
  w.sample_rate = mono.rate();
  w.samples = std::move(mono.samples());
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

bool has_mp3_support() { return avcodec_find_decoder(AV_CODEC_ID_MP3) != nullptr; }

bool has_audio_extension(const std::string& path) {
  const auto dot = path.find_last_of('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return false;
  std::string ext = path.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const char* kExt[] = {"wav", "flac", "ogg", "oga", "opus", "mp3",  "aif",  "aiff", "aifc", "au",  "caf",
                               "w64", "rf64", "m4a", "aac", "mka",  "weba", "webm", "mp4",  "mkv",  "mov", "wv"};
  return std::any_of(std::begin(kExt), std::end(kExt), [&](const char* e) { return ext == e; });
}

}  // namespace zeroshot::audio
