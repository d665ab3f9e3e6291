// ClapFeatureExtractor against the fixtures (HF's extractor on the pipeline's ffmpeg decode, deterministic crop
// rule; clap/README.md), the Random mode against numpy's own draws, and the options the fixtures do not cover.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "audio/audio.h"
#include "audio/clap_feature_extractor.h"
#include "audio/numpy_random.h"
#include "io/safetensors.h"
#include "zeroshot/error.h"

using namespace zeroshot;
using namespace zeroshot::audio;

namespace {

const std::string kFixtures = ZEROSHOT_FIXTURES;
const std::string kAudio = kFixtures + "/audio/";
const std::string kFrontend = kFixtures + "/clap/frontend/";
const std::string kUnfusedConfig = kFixtures + "/clap/clap-tiny-unfused/preprocessor_config.json";
const std::string kFusedConfig = kFixtures + "/clap/clap-tiny-fused/preprocessor_config.json";

nlohmann::json load(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

std::vector<float> fixture_tensor(const io::SafeTensorsFile& st, const std::string& name,
                                  std::vector<int64_t>* shape = nullptr) {
  const auto it = st.tensors().find(name);
  if (it == st.tensors().end()) throw std::runtime_error("missing fixture tensor " + name);
  if (shape) *shape = it->second.shape;
  return io::to_f32(it->second);
}

struct Diff {
  double max_abs = 0, mean_abs = 0;
};

Diff diff(const std::vector<float>& a, const std::vector<float>& b) {
  Diff d;
  if (a.size() != b.size()) return {1e30, 1e30};
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::fabs(static_cast<double>(a[i]) - b[i]);
    d.max_abs = std::max(d.max_abs, e);
    d.mean_abs += e;
  }
  d.mean_abs /= static_cast<double>(a.size());
  return d;
}

// The fixture stores 1 channel where the extractor returned identical copies: expand to `channels`.
std::vector<float> expand(const std::vector<float>& stored, int stored_channels, int channels) {
  if (stored_channels == channels) return stored;
  std::vector<float> out;
  for (int c = 0; c < channels; ++c) out.insert(out.end(), stored.begin(), stored.end());
  return out;
}

const ClapFeatureExtractor& extractor(bool fusion) {
  static const ClapFeatureExtractor unfused(ClapFeatureConfig::load(kUnfusedConfig));
  static const ClapFeatureExtractor fused(ClapFeatureConfig::load(kFusedConfig));
  return fusion ? fused : unfused;
}

// ------------------------------------------------------------------------------------------------------------

TEST(ClapFeatureConfig, LoadsBothCheckpoints) {
  const auto u = ClapFeatureConfig::load(kUnfusedConfig);
  EXPECT_EQ(u.truncation, "rand_trunc");
  EXPECT_FALSE(u.fusion());
  EXPECT_EQ(u.sampling_rate, 48000);
  EXPECT_EQ(u.feature_size, 64);
  EXPECT_EQ(u.fft_window_size, 1024);
  EXPECT_EQ(u.hop_length, 480);
  EXPECT_EQ(u.max_samples(), 480000);
  EXPECT_EQ(u.chunk_frames(), 1001);
  EXPECT_EQ(u.frequency_min, 50);
  EXPECT_EQ(u.frequency_max, 14000);
  EXPECT_EQ(u.padding, "repeatpad");
  const auto f = ClapFeatureConfig::load(kFusedConfig);
  EXPECT_TRUE(f.fusion());
}

TEST(ClapFeatureConfig, ErrorsNameTheFile) {
  auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      ClapFeatureConfig::parse(text, "some/preprocessor_config.json");
      ADD_FAILURE() << "accepted " << text;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind("some/preprocessor_config.json: ", 0), 0u) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  };
  expect_error("{", "invalid JSON");
  expect_error("[]", "not a JSON object");
  expect_error(R"({"truncation": "crop"})", "truncation");
  expect_error(R"({"feature_size": "64"})", "feature_size");
  expect_error(R"({"hop_length": 0})", "hop_length");
  expect_error(R"({"hop_length": 4.5})", "hop_length");
  expect_error(R"({"sampling_rate": -1})", "sampling_rate");
  expect_error(R"({"frequency_min": 500, "frequency_max": 100})", "frequency_min");
  expect_error(R"({"truncation": "fusion", "feature_size": 80})", "feature_size 64");
  try {
    ClapFeatureConfig::load("/nonexistent/preprocessor_config.json");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/preprocessor_config.json"), std::string::npos);
  }
}

// Every audio file of the frontend fixtures, decoded from the file, in both truncation modes.
class FixtureFeatures : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureFeatures, MatchReference) {
  const std::string mode = GetParam();
  const bool fusion = mode == "fusion";
  const auto meta = load(kFrontend + mode + ".json");
  const io::SafeTensorsFile st(kFrontend + mode + ".safetensors");
  const ClapFeatureExtractor& ex = extractor(fusion);
  ASSERT_EQ(meta["truncation"], mode);
  int checked = 0;
  for (const auto& a : meta["audio"]) {
    const std::string file = a["file"];
    SCOPED_TRACE(mode + " " + file);
    const Waveform w = decode_file(kAudio + file);
    ASSERT_EQ(w.sample_rate, 48000);
    EXPECT_EQ(static_cast<int64_t>(w.samples.size()), a["decoded_samples"].get<int64_t>());
    const ClapFeatures f = ex.extract(w.samples.data(), w.samples.size());
    const auto& shape = a["input_features_shape"];
    ASSERT_EQ(f.channels, shape[0].get<int>());
    ASSERT_EQ(f.frames, shape[1].get<int>());
    ASSERT_EQ(f.mels, shape[2].get<int>());
    std::vector<int64_t> st_shape;
    const auto ref = fixture_tensor(st, "input_features/" + file, &st_shape);
    ASSERT_EQ(st_shape[0], a["stored_channels"].get<int64_t>());
    const Diff d = diff(f.data, expand(ref, static_cast<int>(st_shape[0]), f.channels));
    EXPECT_EQ(f.is_longer, a["is_longer"].get<bool>());
    const auto& crop = a["crop"];
    if (!fusion) {
      EXPECT_EQ(f.crop_start, crop.is_null() ? -1 : crop["waveform_start"].get<int64_t>());
    } else if (!crop.is_null()) {
      EXPECT_EQ(f.total_frames, crop["total_frames"].get<int64_t>());
      if (crop.contains("front")) {
        EXPECT_EQ(f.front, crop["front"].get<int64_t>());
        EXPECT_EQ(f.middle, crop["middle"].get<int64_t>());
        EXPECT_EQ(f.back, crop["back"].get<int64_t>());
      } else {
        EXPECT_EQ(f.front, -1);
      }
    } else {
      EXPECT_EQ(f.total_frames, 0);
    }
    // Resampled files too: the decoder resamples with the pipeline's swresample settings, so the fixtures'
    // exact-path tolerance applies to every file (libsoxr was at mean 1.23 / 0.035 dB on the 8 kHz / 44.1 kHz files).
    std::printf("[features] %-10s %-26s max|d| %.3g dB  mean|d| %.3g dB\n", mode.c_str(), file.c_str(), d.max_abs,
                d.mean_abs);
    EXPECT_LE(d.max_abs, 1e-3);
    ++checked;
  }
  EXPECT_EQ(checked, 20);
}

INSTANTIATE_TEST_SUITE_P(Modes, FixtureFeatures, ::testing::Values("rand_trunc", "fusion"));

// The pipeline's own waveforms (ffmpeg's resampler and downmix) through the extractor: exact.
TEST(ClapFeatureExtractor, ReferenceWaveformsAreExact) {
  const io::SafeTensorsFile dec(kFrontend + "decoded.safetensors");
  for (const std::string mode : {"rand_trunc", "fusion"}) {
    const io::SafeTensorsFile st(kFrontend + mode + ".safetensors");
    const bool fusion = mode == "fusion";
    for (const std::string file : {"stereo_3s.wav", "mix.ogg", "resample_8k_speech.wav", "resample_44k1.wav"}) {
      SCOPED_TRACE(mode + " " + file);
      const auto w = fixture_tensor(dec, "waveform/" + file);
      const ClapFeatures f = extractor(fusion).extract(w.data(), w.size());
      std::vector<int64_t> shape;
      const auto ref = fixture_tensor(st, "input_features/" + file, &shape);
      const Diff d = diff(f.data, expand(ref, static_cast<int>(shape[0]), f.channels));
      std::printf("[features from ffmpeg waveform] %-10s %-24s max|d| %.3g dB\n", mode.c_str(), file.c_str(),
                  d.max_abs);
      EXPECT_LE(d.max_abs, 1e-3);
    }
  }
}

// numpy's legacy generator: values printed by numpy 1.24 (np.random.seed(s); np.random.randint(...)).
TEST(NumpyRandom, MatchesNumpy) {
  {
    NumpyRandom r(5);
    EXPECT_EQ(r.randint(0, 720001), 297827);
  }
  {
    NumpyRandom r(5);
    EXPECT_EQ(r.randint(0, 1), 0);  // draws nothing
    EXPECT_EQ(r.randint(0, 501), 355);
  }
  {
    NumpyRandom r(3);  // 64-bit draws
    EXPECT_EQ(r.randint(0, int64_t{1} << 40), 455570294424);
    EXPECT_EQ(r.randint(0, int64_t{1} << 40), 1073054410371);
    EXPECT_EQ(r.randint(-5, int64_t{1} << 33), 521102275);
  }
  {
    NumpyRandom r(3);  // the full 32-bit range, then an offset range
    EXPECT_EQ(r.randint(0, int64_t{1} << 32), 2365658986);
    EXPECT_EQ(r.randint(10, (int64_t{1} << 31) + 10), 303761058);
  }
  EXPECT_THROW(NumpyRandom(uint64_t{1} << 32), Error);
  EXPECT_NO_THROW(NumpyRandom(0xFFFFFFFFull));
}

// CropMode::Random against HF's draws, computed with numpy 1.24 by hand:
//   np.random.seed(s); randint(0, 720001) [long_25s rand_trunc]; randint(0, 481) [len_10s_plus_480, same stream]
//   np.random.seed(s); choice() of each np.array_split(range(0, 1501), 3) part [long_25s fusion]
//   np.random.seed(s); the three choices for len_10s_plus_480 ([0], [1], [] -> [0]) draw nothing: the next
//   randint(0, 1000) is the seed's first one.
TEST(ClapFeatureExtractor, RandomCropsFollowNumpy) {
  struct Case {
    uint64_t seed;
    int64_t rt_long, rt_480, front, middle, back, next;
  };
  const Case cases[] = {{0, 305711, 117, 172, 548, 1118, 684},
                        {1, 128037, 235, 37, 736, 1397, 37},
                        {42, 121958, 435, 102, 936, 1349, 102},
                        {123456789, 507576, 156, 184, 657, 1307, 696},
                        {4294967295, 147746, 12, 419, 791, 1013, 419}};
  const Waveform l = decode_file(kAudio + "long_25s.wav");
  const Waveform p = decode_file(kAudio + "len_10s_plus_480.wav");
  for (const Case& c : cases) {
    SCOPED_TRACE(c.seed);
    NumpyRandom stream(c.seed);
    EXPECT_EQ(extractor(false).extract(l.samples.data(), l.samples.size(), stream).crop_start, c.rt_long);
    EXPECT_EQ(extractor(false).extract(p.samples.data(), p.samples.size(), stream).crop_start, c.rt_480);
    const auto f = extractor(true).extract(l.samples.data(), l.samples.size(), CropMode::Random, c.seed);
    EXPECT_EQ(f.front, c.front);
    EXPECT_EQ(f.middle, c.middle);
    EXPECT_EQ(f.back, c.back);
    NumpyRandom after(c.seed);
    const auto g = extractor(true).extract(p.samples.data(), p.samples.size(), after);
    EXPECT_EQ(g.front, 0);
    EXPECT_EQ(g.middle, 1);
    EXPECT_EQ(g.back, 0);
    EXPECT_EQ(after.randint(0, 1000), c.next);
  }
  // One stream across two clips: np.random.seed(7), then long_25s featurized twice.
  NumpyRandom stream(7);
  const auto a = extractor(true).extract(l.samples.data(), l.samples.size(), stream);
  const auto b = extractor(true).extract(l.samples.data(), l.samples.size(), stream);
  EXPECT_EQ((std::vector<int64_t>{a.front, a.middle, a.back}), (std::vector<int64_t>{175, 697, 1026}));
  EXPECT_EQ((std::vector<int64_t>{b.front, b.middle, b.back}), (std::vector<int64_t>{67, 712, 1408}));
  EXPECT_THROW(extractor(true).extract(l.samples.data(), l.samples.size(), CropMode::Random, uint64_t{1} << 32), Error);
}

// The crops hold what they claim: the rand_trunc window is the exact-length path on that window, and the fusion
// channels are the whole clip's mel rows (shrink channel independent of the crops).
TEST(ClapFeatureExtractor, RandomCropsSelectTheRightData) {
  const Waveform l = decode_file(kAudio + "long_25s.wav");
  const auto r = extractor(false).extract(l.samples.data(), l.samples.size(), CropMode::Random, 0);
  ASSERT_EQ(r.crop_start, 305711);
  const auto window = extractor(false).extract(l.samples.data() + r.crop_start, 480000);
  EXPECT_EQ(r.data, window.data);

  const auto f = extractor(true).extract(l.samples.data(), l.samples.size(), CropMode::Random, 0);
  const auto d = extractor(true).extract(l.samples.data(), l.samples.size());
  const size_t plane = 1001 * 64;
  EXPECT_TRUE(std::equal(f.data.begin(), f.data.begin() + plane, d.data.begin()));  // shrink
  const LogMelSpectrogram mel(1024, 480, mel_filter_bank(513, 64, 50, 14000, 48000, false, MelScale::Htk), 64);
  const auto full = mel.compute(l.samples.data(), l.samples.size());
  ASSERT_EQ(full.size(), 2501u * 64);
  const int64_t starts[3] = {f.front, f.middle, f.back};
  for (int k = 0; k < 3; ++k)
    EXPECT_TRUE(
        std::equal(f.data.begin() + (k + 1) * plane, f.data.begin() + (k + 2) * plane, full.begin() + starts[k] * 64))
        << k;
}

// Padding rules, built here by hand: repeatpad = tile floor(max/n) times + zeros; repeat = tile + 1 times, cut;
// anything else = zeros.
TEST(ClapFeatureExtractor, PaddingModes) {
  const Waveform s = decode_file(kAudio + "short_0p35s.wav");
  const size_t n = s.samples.size(), max = 480000;
  ASSERT_EQ(n, 16800u);
  auto tiled = [&](size_t copies) {
    std::vector<float> x(max, 0.0f);
    for (size_t c = 0; c < copies; ++c)
      for (size_t i = 0; i < n && c * n + i < max; ++i) x[c * n + i] = s.samples[i];
    return x;
  };
  for (const std::string padding : {"repeatpad", "repeat", "max_length"}) {
    SCOPED_TRACE(padding);
    const auto cfg = ClapFeatureConfig::parse(
        R"({"truncation": "rand_trunc", "frequency_min": 50, "padding": ")" + padding + R"("})", "test");
    const ClapFeatureExtractor ex(cfg);
    const size_t copies = padding == "repeatpad" ? max / n : padding == "repeat" ? max / n + 1 : 1;
    const auto x = tiled(copies);
    EXPECT_EQ(ex.extract(s.samples.data(), n).data, ex.extract(x.data(), x.size()).data);
  }
}

TEST(ClapFeatureExtractor, ThreadSafe) {
  const Waveform a = decode_file(kAudio + "long_25s.wav");
  const Waveform b = decode_file(kAudio + "speech_espeak.wav");
  const auto ra = extractor(true).extract(a.samples.data(), a.samples.size());
  const auto rb = extractor(false).extract(b.samples.data(), b.samples.size());
  bool ok_a = true, ok_b = true;
  std::thread t1([&] {
    for (int i = 0; i < 4; ++i) ok_a &= extractor(true).extract(a.samples.data(), a.samples.size()).data == ra.data;
  });
  std::thread t2([&] {
    for (int i = 0; i < 8; ++i) ok_b &= extractor(false).extract(b.samples.data(), b.samples.size()).data == rb.data;
  });
  t1.join();
  t2.join();
  EXPECT_TRUE(ok_a);
  EXPECT_TRUE(ok_b);
}

TEST(ClapFeatureExtractor, ShortClipIsLongerOption) {
  const Waveform w = decode_file(kAudio + "tone_440hz_3s.wav");
  EXPECT_TRUE(extractor(true).extract(w.samples.data(), w.samples.size()).is_longer);
  EXPECT_FALSE(
      extractor(true).extract(w.samples.data(), w.samples.size(), CropMode::Deterministic, 0, false).is_longer);
  EXPECT_FALSE(extractor(false).extract(w.samples.data(), w.samples.size()).is_longer);
  const Waveform c = decode_file(kAudio + "len_10s_plus_240.wav");  // T == 1001: 4 copies, not longer
  const auto f = extractor(true).extract(c.samples.data(), c.samples.size(), CropMode::Deterministic, 0, false);
  EXPECT_FALSE(f.is_longer);
  EXPECT_EQ(f.total_frames, 1001);
  const Waveform l = decode_file(kAudio + "long_25s.wav");
  EXPECT_TRUE(extractor(true).extract(l.samples.data(), l.samples.size(), CropMode::Deterministic, 0, false).is_longer);
}

TEST(ClapFeatureExtractor, EdgeCases) {
  EXPECT_THROW(extractor(false).extract(nullptr, 0), Error);
  const float one = 0.25f;
  const auto f = extractor(false).extract(&one, 1);  // tiled 480,000 times
  ASSERT_EQ(f.data.size(), 1001u * 64);
  for (float v : f.data) ASSERT_TRUE(std::isfinite(v));
  // A constant signal: all energy in bin 0, whose weight is 0 in every filter from 50 Hz: -100 dB everywhere.
  EXPECT_EQ(*std::max_element(f.data.begin(), f.data.end()), -100.0f);
}

// CPU time of this thread per call (wall time is meaningless on a shared, loaded machine), in ms.
double ms_per_call(const std::function<void()>& fn, int reps) {
  auto now = [] {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
  };
  fn();  // warm-up
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now();
    fn();
    best = std::min(best, now() - t0);
  }
  return best;
}

TEST(ClapFeatureExtractor, Speed) {
  const Waveform w = decode_file(kAudio + "exact_10s.wav");
  const Waveform s = decode_file(kAudio + "tone_440hz_3s.wav");
  const Waveform l = decode_file(kAudio + "long_25s.wav");
  const double rt = ms_per_call([&] { extractor(false).extract(w.samples.data(), w.samples.size()); }, 10);
  const double fu = ms_per_call([&] { extractor(true).extract(w.samples.data(), w.samples.size()); }, 10);
  const double sh = ms_per_call([&] { extractor(false).extract(s.samples.data(), s.samples.size()); }, 10);
  const double lo = ms_per_call([&] { extractor(true).extract(l.samples.data(), l.samples.size()); }, 5);
  const double dec = ms_per_call([&] { decode_file(kAudio + "exact_10s.wav"); }, 10);
  const double res = ms_per_call([&] { decode_file(kAudio + "resample_44k1.wav"); }, 10);
  std::printf(
      "[speed] thread CPU time, best of n: front end per 10 s clip: rand_trunc %.2f ms, fusion %.2f ms; "
      "3 s clip (repeatpad) %.2f ms; 25 s clip fusion %.2f ms; decode 10 s PCM16 WAV %.2f ms; decode + "
      "resample 3 s 44.1 kHz WAV %.2f ms\n",
      rt, fu, sh, lo, dec, res);
}

}  // namespace
