// Audio decoding against the fixtures (the HF pipeline's ffmpeg decode, audio/README.md and clap/README.md),
// refusal of bad files before any header-sized allocation, and robustness on corrupted files.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "audio/audio.h"
#include "io/safetensors.h"
#include "support/alloc_watch.h"
#include "support/memory.h"
#include "zeroshot/error.h"

using namespace zeroshot;
using namespace zeroshot::audio;

namespace {

const std::string kFixtures = ZEROSHOT_FIXTURES;
const std::string kAudio = kFixtures + "/audio/";
const std::string kFrontend = kFixtures + "/clap/frontend/";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::vector<float> fixture_waveform(const std::string& file) {
  static const io::SafeTensorsFile st(kFrontend + "decoded.safetensors");
  return io::to_f32(st.tensors().at("waveform/" + file));
}

// A minimal independent WAV reader (RIFF chunks, PCM 16/24-bit and IEEE float 32-bit), the reference for
// "int / 32768, int / 8388608, float as stored".
struct RawWav {
  int channels = 0, rate = 0, bits = 0, tag = 0;
  std::vector<double> samples;  // interleaved, exact values
};

RawWav parse_wav(const std::string& path) {
  const auto b = read_bytes(path);
  auto u16 = [&](size_t o) { return static_cast<uint32_t>(b[o] | b[o + 1] << 8); };
  auto u32 = [&](size_t o) { return u16(o) | u16(o + 2) << 16; };
  RawWav w;
  size_t off = 12;
  while (off + 8 <= b.size()) {
    const std::string id(reinterpret_cast<const char*>(&b[off]), 4);
    const size_t len = u32(off + 4);
    if (id == "fmt ") {
      w.tag = static_cast<int>(u16(off + 8));
      w.channels = static_cast<int>(u16(off + 10));
      w.rate = static_cast<int>(u32(off + 12));
      w.bits = static_cast<int>(u16(off + 22));
    } else if (id == "data") {
      const size_t bytes = w.bits / 8;
      for (size_t p = off + 8; p + bytes <= off + 8 + len && p + bytes <= b.size(); p += bytes) {
        if (w.tag == 3) {
          float f;
          std::memcpy(&f, &b[p], 4);
          w.samples.push_back(f);
        } else if (w.bits == 16) {
          w.samples.push_back(static_cast<int16_t>(u16(p)) / 32768.0);
        } else if (w.bits == 24) {
          int32_t v = static_cast<int32_t>(b[p] | b[p + 1] << 8 | b[p + 2] << 16);
          if (v & 0x800000) v -= 0x1000000;
          w.samples.push_back(v / 8388608.0);
        }
      }
      break;
    }
    off += 8 + len + (len & 1);
  }
  return w;
}

nlohmann::json frontend_meta() {
  std::ifstream f(kFrontend + "rand_trunc.json");
  return nlohmann::json::parse(f);
}

void expect_one_line_error_naming(const std::function<void()>& fn, const std::string& name, const std::string& needle,
                                  size_t max_alloc = 1 << 20) {
  zeroshot::testing::AllocationWatch watch;
  try {
    fn();
    watch.stop();
    ADD_FAILURE() << name << " was accepted";
  } catch (const Error& e) {
    watch.stop();
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(name + ": ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    std::printf("[refused] %s\n", msg.c_str());
  }
  EXPECT_LT(watch.largest(), max_alloc) << name;
}

// WAV bytes of interleaved samples: 16-bit PCM (short) or 32-bit float; with a channel mask, WAVE_FORMAT_EXTENSIBLE.
template <typename T>
std::vector<uint8_t> wav_bytes(const std::vector<T>& x, int channels, int rate, uint32_t channel_mask = 0) {
  constexpr bool kFloat = std::is_same_v<T, float>;
  const uint32_t bits = kFloat ? 32 : 16, block = channels * bits / 8,
                 data = static_cast<uint32_t>(x.size() * bits / 8);
  const uint32_t fmt_len = channel_mask ? 40 : 16;
  std::vector<uint8_t> b;
  auto put = [&](uint32_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  auto tag = [&](const char* t) { b.insert(b.end(), t, t + 4); };
  const uint16_t format = kFloat ? 3 : 1;
  tag("RIFF");
  put(4 + 8 + fmt_len + 8 + data, 4);
  tag("WAVE");
  tag("fmt ");
  put(fmt_len, 4);
  put(channel_mask ? 0xFFFE : format, 2);
  put(channels, 2);
  put(rate, 4);
  put(rate * block, 4);
  put(block, 2);
  put(bits, 2);
  if (channel_mask) {
    put(22, 2);
    put(bits, 2);
    put(channel_mask, 4);
    put(format, 4);  // the subformat GUID: format tag, then 00000000-0010-0080-00AA00389B71
    const uint8_t guid_tail[12] = {0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
    b.insert(b.end(), guid_tail, guid_tail + 12);
  }
  tag("data");
  put(data, 4);
  const size_t at = b.size();
  b.resize(at + data);
  std::memcpy(b.data() + at, x.data(), data);
  return b;
}

// The ffmpeg CLI (Debian package ffmpeg, scripts/install-deps.sh) in a scratch directory: encodes test files in the
// formats we cannot write by hand, and decodes them the way the reference pipeline does.
class Scratch {
 public:
  Scratch() {
    char tmpl[] = "/tmp/zs_audio_test_XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
  }
  ~Scratch() { std::filesystem::remove_all(dir_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  std::string path(const std::string& file) const { return dir_ + "/" + file; }
  void write(const std::string& file, const std::vector<uint8_t>& bytes) const {
    std::ofstream(path(file), std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  // ffmpeg -i <in> ARGS <out>; returns the output file's bytes (empty if ffmpeg failed).
  std::vector<uint8_t> ffmpeg(const std::string& in, const std::string& args, const std::string& out) const {
    const std::string cmd =
        "ffmpeg -nostdin -v error -y " + args_before_ + "-i '" + path(in) + "' " + args + " '" + path(out) + "'";
    if (std::system(cmd.c_str()) != 0) return {};
    return read_bytes(path(out));
  }
  // What `ffmpeg -i pipe:0 -ac 1 -ar 48000 -f f32le` gives for a file (the HF pipeline's decode).
  std::vector<float> reference_decode(const std::string& file) const {
    const std::string out = file + ".f32";
    const std::string cmd =
        "ffmpeg -nostdin -v error -y -i pipe:0 -ac 1 -ar 48000 -f f32le '" + path(out) + "' < '" + path(file) + "'";
    if (std::system(cmd.c_str()) != 0) return {};
    const auto b = read_bytes(path(out));
    std::vector<float> x(b.size() / 4);
    if (!x.empty()) std::memcpy(x.data(), b.data(), x.size() * 4);
    return x;
  }
  std::string args_before_;  // options placed before -i (e.g. an extra lavfi input)

 private:
  std::string dir_;
};

// Encodes interleaved samples with the ffmpeg CLI from a WAV; `args` chooses codec and container by `out`'s name.
template <typename T>
std::vector<uint8_t> encode(const std::vector<T>& x, int channels, int rate, const std::string& args,
                            const std::string& out, uint32_t channel_mask = 0) {
  Scratch s;
  s.write("in.wav", wav_bytes(x, channels, rate, channel_mask));
  return s.ffmpeg("in.wav", args, out);
}

std::vector<float> tone(int n, int rate, double hz, double amp = 0.5) {
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>(amp * std::sin(2 * M_PI * hz * i / rate));
  return x;
}

// Best normalised correlation of `got` with `want` over lags of +-max_lag (codecs add or trim a few samples), on
// 0.1 s in the middle (the exact comparisons are elsewhere; this shows the signal is the tone, undistorted).
double best_correlation(const std::vector<float>& want, const std::vector<float>& got, int max_lag) {
  double best = 0;
  const int n = static_cast<int>(want.size());
  for (int lag = -max_lag; lag <= max_lag; ++lag) {
    double dot = 0, a = 0, b = 0;
    for (int i = n / 2 - 2400; i < n / 2 + 2400; ++i) {
      const int j = i + lag;
      if (j < 0 || j >= static_cast<int>(got.size())) continue;
      dot += double{want[i]} * got[j];
      a += double{want[i]} * want[i];
      b += double{got[j]} * got[j];
    }
    if (a > 0 && b > 0) best = std::max(best, dot / std::sqrt(a * b));
  }
  return best;
}

// ------------------------------------------------------------------------------------------------------------

TEST(Decode, Pcm48kExact) {
  const auto meta = frontend_meta();
  int checked = 0;
  for (const auto& a : meta["audio"]) {
    const std::string file = a["file"];
    if (file.size() < 4 || file.substr(file.size() - 4) != ".wav" || file == "stereo_3s.wav" ||
        file.rfind("resample_", 0) == 0)
      continue;
    SCOPED_TRACE(file);
    const RawWav raw = parse_wav(kAudio + file);
    ASSERT_EQ(raw.channels, 1);
    ASSERT_EQ(raw.rate, 48000);
    const Waveform w = decode_file(kAudio + file);
    EXPECT_EQ(w.sample_rate, 48000);
    ASSERT_EQ(w.samples.size(), raw.samples.size());
    EXPECT_EQ(static_cast<int64_t>(w.samples.size()), a["decoded_samples"].get<int64_t>());
    size_t mismatches = 0;
    for (size_t i = 0; i < raw.samples.size(); ++i) mismatches += static_cast<double>(w.samples[i]) != raw.samples[i];
    EXPECT_EQ(mismatches, 0u);
    ++checked;
  }
  EXPECT_EQ(checked, 15);  // 12 PCM16 + mix_pcm24 + mix_float32 + ... as listed in the fixtures
}

TEST(Decode, FormatsOfTheMixSound) {
  const RawWav pcm16 = parse_wav(kAudio + "mix_pcm16.wav");
  const RawWav pcm24 = parse_wav(kAudio + "mix_pcm24.wav");
  const RawWav flt = parse_wav(kAudio + "mix_float32.wav");
  ASSERT_EQ(pcm24.bits, 24);
  ASSERT_EQ(flt.tag, 3);
  auto exact = [](const Waveform& w, const RawWav& r) {
    if (w.samples.size() != r.samples.size()) return false;
    for (size_t i = 0; i < r.samples.size(); ++i)
      if (static_cast<double>(w.samples[i]) != r.samples[i]) return false;
    return true;
  };
  EXPECT_TRUE(exact(decode_file(kAudio + "mix_pcm24.wav"), pcm24));
  EXPECT_TRUE(exact(decode_file(kAudio + "mix_float32.wav"), flt));
  EXPECT_TRUE(exact(decode_file(kAudio + "mix.flac"), pcm16));  // lossless: the same samples as the PCM16 file

  const Waveform ogg = decode_file(kAudio + "mix.ogg");
  const auto ref = fixture_waveform("mix.ogg");
  ASSERT_EQ(ogg.samples.size(), ref.size());
  double max_abs = 0;
  for (size_t i = 0; i < ref.size(); ++i) max_abs = std::max(max_abs, std::fabs(double{ogg.samples[i]} - ref[i]));
  std::printf("[decode] mix.ogg vs the pipeline's ffmpeg: max|d| %.3g\n", max_abs);
  EXPECT_EQ(max_abs, 0.0);  // ffmpeg's Vorbis decoder, as the pipeline's (libsndfile's libvorbis: 2.4e-7)
}

TEST(Decode, StereoDownmixIsFfmpegs) {
  const RawWav raw = parse_wav(kAudio + "stereo_3s.wav");
  ASSERT_EQ(raw.channels, 2);
  const Waveform w = decode_file(kAudio + "stereo_3s.wav");
  const auto ref = fixture_waveform("stereo_3s.wav");
  ASSERT_EQ(w.samples.size(), ref.size());
  ASSERT_EQ(w.samples.size() * 2, raw.samples.size());
  const float c = static_cast<float>(std::sqrt(0.5));
  size_t vs_ref = 0, vs_rule = 0;
  double vs_plain = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const float l = static_cast<float>(raw.samples[2 * i]), r = static_cast<float>(raw.samples[2 * i + 1]);
    volatile float lc = l * c, rc = r * c;  // two float products, then a float sum
    vs_ref += w.samples[i] != ref[i];
    vs_rule += w.samples[i] != lc + rc;
    const float plain = (l + r) / static_cast<float>(std::sqrt(2.0));  // (L+R)/sqrt(2) in float32
    vs_plain = std::max(vs_plain, std::fabs(double{w.samples[i]} - plain));
  }
  EXPECT_EQ(vs_ref, 0u);
  EXPECT_EQ(vs_rule, 0u);
  EXPECT_LE(vs_plain, 6e-8);
}

// swresample with the CLI's defaults: the pipeline's 48 kHz signal, bit for bit (libsoxr HQ was at SNR 40 / 68 dB).
TEST(Decode, ResampledFilesAreFfmpegs) {
  for (const std::string file : {"resample_8k_speech.wav", "resample_44k1.wav"}) {
    SCOPED_TRACE(file);
    const Waveform w = decode_file(kAudio + file);
    const auto ref = fixture_waveform(file);
    EXPECT_EQ(w.sample_rate, 48000);
    ASSERT_EQ(w.samples.size(), ref.size());
    size_t mismatches = 0;
    double max_abs = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      mismatches += w.samples[i] != ref[i];
      max_abs = std::max(max_abs, std::fabs(double{w.samples[i]} - ref[i]));
    }
    std::printf("[decode] %s vs the pipeline's ffmpeg: %zu of %zu samples differ, max|d| %.3g\n", file.c_str(),
                mismatches, ref.size(), max_abs);
    EXPECT_EQ(mismatches, 0u);
  }
}

TEST(Decode, LengthsMatchThePipeline) {
  const auto meta = frontend_meta();
  for (const auto& a : meta["audio"]) {
    const std::string file = a["file"];
    EXPECT_EQ(static_cast<int64_t>(decode_file(kAudio + file).samples.size()), a["decoded_samples"].get<int64_t>())
        << file;
  }
}

TEST(Decode, MemoryEqualsFile) {
  for (const std::string file : {"mix_pcm16.wav", "mix.flac", "mix.ogg", "stereo_3s.wav", "resample_44k1.wav"}) {
    const auto bytes = read_bytes(kAudio + file);
    EXPECT_EQ(decode_memory(bytes.data(), bytes.size(), file).samples, decode_file(kAudio + file).samples) << file;
  }
}

TEST(Decode, KeepRateAndOtherRates) {
  const Waveform w = decode_file(kAudio + "resample_44k1.wav", {.target_rate = 0});
  EXPECT_EQ(w.sample_rate, 44100);
  EXPECT_EQ(w.samples.size(), 132300u);
  // A 1 kHz tone at 22050 Hz with an odd length: what the ffmpeg CLI gives, still the same tone.
  const int n = 22051;
  const auto bytes = wav_bytes(tone(n, 22050, 1000.0), 1, 22050);
  const Waveform r = decode_memory(bytes.data(), bytes.size(), "tone22k.wav");
  Scratch scratch;
  scratch.write("tone22k.wav", bytes);
  EXPECT_EQ(r.samples, scratch.reference_decode("tone22k.wav"));  // the CLI's samples, and its length (48003)
  double worst = 0;
  for (size_t i = 200; i + 200 < r.samples.size(); ++i)
    worst = std::max(worst, std::fabs(r.samples[i] - 0.5 * std::sin(2 * M_PI * 1000.0 * i / 48000)));
  EXPECT_LT(worst, 1e-3);
}

TEST(Decode, BadFilesRefused) {
  const std::pair<const char*, const char*> cases[] = {
      {"bad_empty.wav", "Malformed soundfile"},
      {"bad_text.wav", "Malformed soundfile"},
      {"bad_truncated.wav", "Malformed soundfile"},
      {"bad_zero_channels.wav", "Malformed soundfile"},
      {"bad_huge_header.wav", "data chunk claims 4294967294 bytes"},
  };
  for (const auto& c : cases) {
    const char* file = c.first;  // not a structured binding: clang 14 cannot capture those in a lambda
    const char* needle = c.second;
    const std::string path = kAudio + file;
    expect_one_line_error_naming([&] { decode_file(path); }, path, needle);
    const auto bytes = read_bytes(path);
    expect_one_line_error_naming([&] { decode_memory(bytes.data(), bytes.size(), file); }, file, needle);
  }
  expect_one_line_error_naming([] { decode_file(kAudio + "no_such_file.wav"); }, kAudio + "no_such_file.wav",
                               "cannot open");
  expect_one_line_error_naming([] { decode_file(kAudio); }, kAudio, "not a regular file");
  expect_one_line_error_naming([] { decode_memory(nullptr, 0, "null"); }, "null", "Malformed soundfile");
}

// Under an address-space limit of what the process already uses + 256 MiB, an allocation sized from the bad
// header (2^31 samples = 8 GiB of floats) would fail; the refusal must come first. (Not under the sanitizers:
// their shadow memory needs an unlimited address space.)
TEST(Decode, HugeHeaderUnderAddressSpaceLimit) {
  if (zeroshot::testing::kSanitized) GTEST_SKIP() << "address-space limits do not work under the sanitizers";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    long pages = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
      std::fclose(f);
    }
    const rlim_t limit = static_cast<rlim_t>(pages) * sysconf(_SC_PAGESIZE) + (256u << 20);
    const rlimit rl{limit, limit};
    if (pages == 0 || setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
    try {
      decode_file(kAudio + "bad_huge_header.wav");
    } catch (const Error&) {
      _exit(0);
    } catch (...) {
      _exit(2);
    }
    _exit(1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "child crashed";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Decode, MaxDuration) {
  const std::string path = kAudio + "long_25s.wav";
  // Refused from the header: no allocation near 25 s of audio (4.8 MB) happens.
  expect_one_line_error_naming([&] { decode_file(path, {.max_seconds = 20}); }, path, "exceeds the limit of 20 s",
                               256 << 10);
  EXPECT_EQ(decode_file(path, {.max_seconds = 25}).samples.size(), 1200000u);  // exactly 25 s is allowed
  // A header that does not give the length (a FLAC STREAMINFO with total samples 0 = unknown) is stopped while
  // decoding.
  std::vector<short> x(48000 * 3);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<short>(i % 2000);
  auto flac = encode(x, 1, 48000, "-c:a flac", "x.flac");
  ASSERT_GT(flac.size(), 26u);
  ASSERT_EQ(std::memcmp(flac.data(), "fLaC", 4), 0);
  uint8_t* streaminfo = flac.data() + 8;
  streaminfo[13] &= 0xF0;
  streaminfo[14] = streaminfo[15] = streaminfo[16] = streaminfo[17] = 0;
  EXPECT_EQ(decode_memory(flac.data(), flac.size(), "x.flac").samples.size(), x.size());
  expect_one_line_error_naming([&] { decode_memory(flac.data(), flac.size(), "x.flac", {.max_seconds = 2}); }, "x.flac",
                               "duration exceeds the limit of 2 s", 8 << 20);
}

// ffmpeg's `-ac 1` weights for layouts it assumes or the file declares (swresample's auto matrix: FL, FR, FLC, FRC
// sqrt(1/2); FC 1 beside FL/FR; back and side sqrt(1/2) * sqrt(1/2); LFE 0); the expected sums are written out
// here in swresample's order (the channel-layout order), one float rounding per product and per addition.
TEST(Decode, MultichannelDownmix) {
  const int frames = 4800;
  auto make = [&](int channels) {  // int16 values, so that PCM files hold them exactly
    std::vector<short> x(frames * channels);
    std::mt19937 rng(channels);
    for (short& v : x) v = static_cast<short>(static_cast<int>(rng() % 32768) - 16384);
    return x;
  };
  const float h = static_cast<float>(std::sqrt(0.5)), q = static_cast<float>(std::sqrt(0.5) * std::sqrt(0.5));
  constexpr uint32_t kFL = 1, kFR = 2, kFC = 4, kSL = 0x200, kSR = 0x400;
  struct Case {
    const char* name;
    int channels;
    uint32_t mask;         // WAVE_FORMAT_EXTENSIBLE channel mask (0: a plain WAV, ffmpeg guesses the layout)
    const char* flac;      // non-null: re-encoded to FLAC by the ffmpeg CLI first
    std::vector<float> w;  // weight per file channel, in swresample's summation order (here: file order)
  };
  const Case cases[] = {
      {"2.1 (ffmpeg's guess for 3 WAV channels)", 3, 0, nullptr, {h, h, 0}},
      {"4.0", 4, 0, nullptr, {h, h, 1, q}},
      {"5.1(back)", 6, 0, nullptr, {h, h, 1, 0, q, q}},
      {"7.1", 8, 0, nullptr, {h, h, 1, 0, q, q, q, q}},
      {"FLAC 3.0", 3, kFL | kFR | kFC, "-c:a flac", {h, h, 1}},
      {"WAVEX quad(side)", 4, kFL | kFR | kSL | kSR, nullptr, {h, h, q, q}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const auto x = make(c.channels);
    const auto bytes =
        c.flac ? encode(x, c.channels, 48000, c.flac, "x.flac", c.mask) : wav_bytes(x, c.channels, 48000, c.mask);
    ASSERT_FALSE(bytes.empty());
    const Waveform w = decode_memory(bytes.data(), bytes.size(), c.name);
    ASSERT_EQ(w.samples.size(), static_cast<size_t>(frames));
    size_t mismatches = 0;
    for (int i = 0; i < frames; ++i) {
      float v = 0;
      for (int ch = 0; ch < c.channels; ++ch)
        if (c.w[ch] != 0) {
          volatile float p = (x[i * c.channels + ch] / 32768.0f) * c.w[ch];
          v += p;
        }
      mismatches += w.samples[i] != v;
    }
    EXPECT_EQ(mismatches, 0u);
  }
  // Vorbis stores 3.0 as (L, C, R); the decoder gives ffmpeg's (FL, FR, FC) back: tones per channel, compared
  // loosely (lossy).
  {
    std::vector<float> x(frames * 3);
    const double freq[3] = {300, 700, 1100};
    for (int i = 0; i < frames; ++i)
      for (int ch = 0; ch < 3; ++ch)
        x[i * 3 + ch] = static_cast<float>(0.3 * std::sin(2 * M_PI * freq[ch] * i / 48000));
    const auto bytes = encode(x, 3, 48000, "-c:a libvorbis", "3ch.ogg", kFL | kFR | kFC);
    ASSERT_FALSE(bytes.empty());
    const Waveform w = decode_memory(bytes.data(), bytes.size(), "3ch.ogg");
    double err = 0, energy = 0;
    for (size_t i = 0; i < std::min<size_t>(w.samples.size(), frames); ++i) {
      const double e = x[i * 3] * h + x[i * 3 + 1] * h + x[i * 3 + 2] * 1.0;
      err += (w.samples[i] - e) * (w.samples[i] - e);
      energy += e * e;
    }
    const double snr = 10 * std::log10(energy / err);
    std::printf("[decode] 3-channel Vorbis downmix vs the weights: SNR %.1f dB\n", snr);
    EXPECT_GT(snr, 20.0);  // the centre channel weighted as a side one would give about 3 dB
  }
  // Ten channels: no ffmpeg layout (the CLI refuses them): the mean.
  {
    const auto x = make(10);
    const auto bytes = wav_bytes(x, 10, 48000);
    const Waveform w = decode_memory(bytes.data(), bytes.size(), "10ch.wav");
    ASSERT_EQ(w.samples.size(), static_cast<size_t>(frames));
    double worst = 0;
    for (int i = 0; i < frames; ++i) {
      double m = 0;
      for (int ch = 0; ch < 10; ++ch) m += x[i * 10 + ch] / 32768.0;
      worst = std::max(worst, std::fabs(w.samples[i] - m / 10));
    }
    EXPECT_LT(worst, 1e-6);
  }
}

// Formats libsndfile could not read, made at test time by the ffmpeg CLI: each decodes to what the pipeline's
// `ffmpeg -i pipe:0 -ac 1 -ar 48000 -f f32le` gives, bit for bit, and to the source tone.
TEST(Decode, CompressedAndVideoContainers) {
  ASSERT_TRUE(has_mp3_support());
  const int rate = 44100, n = rate * 2;
  std::vector<float> stereo(n * 2);
  const auto left = tone(n, rate, 440.0, 0.4), right = tone(n, rate, 440.0, 0.3);
  for (int i = 0; i < n; ++i) {
    stereo[2 * i] = left[i];
    stereo[2 * i + 1] = right[i];
  }
  const auto want = tone(static_cast<int>(int64_t{n} * 48000 / rate), 48000, 440.0);
  struct Case {
    const char* file;
    const char* args;
    bool video;
  };
  const Case cases[] = {
      {"a.m4a", "-c:a aac -b:a 128k", false},
      {"a.aac", "-c:a aac -b:a 128k", false},  // ADTS
      {"a.mp3", "-c:a libmp3lame -b:a 128k", false},
      {"a.opus", "-c:a libopus -b:a 96k", false},
      {"a.webm", "-c:a libopus -b:a 96k", false},
      {"a.ogg", "-c:a libvorbis", false},
      {"a.aiff", "", false},
      {"a.caf", "", false},
      {"a.w64", "", false},
      {"a.wv", "", false},  // WavPack
      {"v.mp4", "-c:v mpeg4 -c:a aac -shortest", true},
      {"v.mkv", "-c:v mpeg4 -c:a libopus -shortest", true},
      {"v.webm", "-c:v libvpx -deadline realtime -c:a libopus -shortest", true},
  };
  Scratch s;
  s.write("in.wav", wav_bytes(stereo, 2, rate));
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    // A video stream first (stream 0), so that finding the audio stream matters.
    s.args_before_ = c.video ? "-f lavfi -i testsrc=size=64x48:rate=10 " : "";
    const std::string args = c.video ? std::string("-map 0:v -map 1:a ") + c.args : c.args;
    const auto bytes = s.ffmpeg("in.wav", args, c.file);
    ASSERT_FALSE(bytes.empty()) << "ffmpeg could not make " << c.file;
    const auto ref = s.reference_decode(c.file);
    ASSERT_FALSE(ref.empty());
    const Waveform w = decode_memory(bytes.data(), bytes.size(), c.file);
    EXPECT_EQ(w.sample_rate, 48000);
    EXPECT_EQ(w.samples, ref);
    const double corr = best_correlation(want, w.samples, 4000);
    std::printf("[decode] %-7s %7zu bytes -> %zu samples (ffmpeg CLI: %zu), correlation with the tone %.6f\n", c.file,
                bytes.size(), w.samples.size(), ref.size(), corr);
    EXPECT_GT(corr, 0.999);
    EXPECT_NEAR(static_cast<double>(w.samples.size()), want.size(), 4000.0);
    EXPECT_EQ(decode_file(s.path(c.file)).samples, w.samples);
  }
}

// An M4A of 20 s whose index (moov) follows the data, as ffmpeg writes it without -movflags faststart: through a
// pipe, ffmpeg (and so the pipeline) fails on it once the data outgrows its read buffer; read seekable, it decodes.
TEST(Decode, Mp4WithIndexAfterTheData) {
  Scratch s;
  s.write("in.wav", wav_bytes(tone(48000 * 20, 48000, 440.0), 1, 48000));
  const auto bytes = s.ffmpeg("in.wav", "-c:a aac -b:a 128k", "long.m4a");
  ASSERT_GT(bytes.size(), 200000u);
  const auto moov = std::search(bytes.begin(), bytes.end(), std::begin("moov"), std::end("moov") - 1);
  const auto mdat = std::search(bytes.begin(), bytes.end(), std::begin("mdat"), std::end("mdat") - 1);
  ASSERT_TRUE(moov != bytes.end() && mdat != bytes.end() && moov > mdat);
  EXPECT_TRUE(s.reference_decode("long.m4a").empty());  // the pipeline's way fails
  const Waveform w = decode_memory(bytes.data(), bytes.size(), "long.m4a");
  EXPECT_NEAR(static_cast<double>(w.samples.size()), 48000.0 * 20, 2048.0);
  EXPECT_GT(best_correlation(tone(48000 * 20, 48000, 440.0), w.samples, 2048), 0.999);
}

// Truncated and byte-flipped versions of good files (the fixtures, and MP3 / M4A / Opus / WebM made from one by
// the ffmpeg CLI): decoded or refused with a one-line zeroshot::Error naming the file, never a crash, another
// exception type, an unbounded allocation, or (under the ASan build, whose LeakSanitizer runs at exit) a leak.
TEST(Decode, CorruptVariantsNeverCrash) {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> files;
  for (const char* f : {"mix_pcm16.wav", "mix_pcm24.wav", "mix_float32.wav", "mix.flac", "mix.ogg", "stereo_3s.wav",
                        "speech_espeak.wav"})
    files.emplace_back(f, read_bytes(kAudio + f));
  {
    Scratch s;
    s.write("in.wav", read_bytes(kAudio + "mix_pcm16.wav"));
    for (const auto& [file, args] : std::vector<std::pair<std::string, std::string>>{{"mix.mp3", "-c:a libmp3lame"},
                                                                                     {"mix.m4a", "-c:a aac"},
                                                                                     {"mix.opus", "-c:a libopus"},
                                                                                     {"mix.webm", "-c:a libopus"}}) {
      files.emplace_back(file, s.ffmpeg("in.wav", args, file));
      ASSERT_FALSE(files.back().second.empty()) << file;
    }
  }
  std::mt19937 rng(1234);
  int decoded = 0, refused = 0;
  size_t largest = 0;
  for (const auto& [file, good] : files) {
    std::vector<std::vector<uint8_t>> variants;
    for (size_t len = 0; len < 96 && len < good.size(); len += 3)
      variants.emplace_back(good.begin(), good.begin() + len);
    for (int k = 0; k < 12; ++k) variants.emplace_back(good.begin(), good.begin() + rng() % good.size());
    for (int k = 0; k < 60; ++k) {
      auto v = good;
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int f = 0; f < flips; ++f) {
        const size_t at = k % 2 ? rng() % std::min<size_t>(v.size(), 128) : rng() % v.size();  // header-heavy
        v[at] = static_cast<uint8_t>(rng());
      }
      variants.push_back(std::move(v));
    }
    for (const auto& v : variants) {
      zeroshot::testing::AllocationWatch watch;
      try {
        const Waveform w = decode_memory(v.data(), v.size(), file, {.max_seconds = 60});
        watch.stop();
        EXPECT_FALSE(w.samples.empty());
        ++decoded;
      } catch (const Error& e) {
        watch.stop();
        EXPECT_EQ(std::string(e.what()).rfind(file + ": ", 0), 0u) << e.what();
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
        ++refused;
      }
      largest = std::max(largest, watch.largest());
    }
  }
  std::printf("[corrupt] %d variants decoded, %d refused; largest single allocation %zu bytes\n", decoded, refused,
              largest);
  // 60 s at the highest accepted rate resampled to 48 kHz is the legitimate ceiling; nothing near a lying header.
  EXPECT_LT(largest, size_t{1} << 30);
}

TEST(Decode, Extensions) {
  EXPECT_TRUE(has_audio_extension("a/b.WAV"));
  EXPECT_TRUE(has_audio_extension("x.flac"));
  EXPECT_TRUE(has_audio_extension("x.mp3"));
  EXPECT_TRUE(has_audio_extension("x.M4A"));
  EXPECT_TRUE(has_audio_extension("x.opus"));
  EXPECT_TRUE(has_audio_extension("clip.webm"));
  EXPECT_TRUE(has_audio_extension("clip.mp4"));
  EXPECT_FALSE(has_audio_extension("x.jpg"));
  EXPECT_FALSE(has_audio_extension("dir.wav/file"));
  EXPECT_FALSE(has_audio_extension("noext"));
}

}  // namespace
