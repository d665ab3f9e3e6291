#include "audio/clap_feature_extractor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "io/json.h"
#include "zeroshot/error.h"

namespace zeroshot::audio {

namespace {

int get_int(const io::Json& j, const char* key, int def, int lo, int hi, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return def;
  const io::Json& v = j[key];
  double d = 0;
  if (v.is_number_integer() || v.is_number_unsigned()) {
    d = v.get<double>();
  } else if (v.is_number_float()) {
    d = v.get<double>();
    if (d != std::floor(d)) throw Error(where, std::string(key) + " must be an integer");
  } else {
    throw Error(where, std::string(key) + " must be a number");
  }
  if (d < lo || d > hi)
    throw Error(where, std::string(key) + " = " + v.dump() + " is out of range [" + std::to_string(lo) + ", " +
                           std::to_string(hi) + "]");
  return static_cast<int>(d);
}

double get_double(const io::Json& j, const char* key, double def, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_number()) throw Error(where, std::string(key) + " must be a number");
  const double d = j[key].get<double>();
  if (!std::isfinite(d)) throw Error(where, std::string(key) + " must be finite");
  return d;
}

std::string get_string(const io::Json& j, const char* key, const std::string& def, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_string()) throw Error(where, std::string(key) + " must be a string");
  return j[key].get<std::string>();
}

// torch.nn.functional.interpolate(mode="bilinear", align_corners=False) of a [t, m] float32 map to [out_t, m]
// (the mel axis keeps its size, so its weights are exactly 1 and 0). Matches PyTorch 1.13's CPU kernel bit for
// bit (checked by hand on random maps): float32 scale t / out_t, source index and blend in float64, float32
// weights, lambda0 = 1 - lambda1 in float32.
std::vector<float> shrink_time(const float* mel, int64_t t, int64_t out_t, int m) {
  std::vector<float> out(static_cast<size_t>(out_t) * m);
  const double scale = static_cast<float>(t) / static_cast<float>(out_t);
  for (int64_t d = 0; d < out_t; ++d) {
    double src = scale * (static_cast<double>(d) + 0.5) - 0.5;
    if (src < 0) src = 0;
    const int64_t i0 = static_cast<int64_t>(src);
    const int64_t i1 = i0 + (i0 < t - 1 ? 1 : 0);
    const float l1 = static_cast<float>(std::min(std::max(src - static_cast<double>(i0), 0.0), 1.0));
    const float l0 = 1.0f - l1;
    const float* r0 = mel + i0 * m;
    const float* r1 = mel + i1 * m;
    float* o = out.data() + d * m;
    for (int k = 0; k < m; ++k)
      o[k] = static_cast<float>(static_cast<double>(r0[k]) * l0 + static_cast<double>(r1[k]) * l1);
  }
  return out;
}

ClapFeatureConfig config_from_json(const io::Json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where, "not a JSON object");
  ClapFeatureConfig c;
  c.sampling_rate = get_int(j, "sampling_rate", c.sampling_rate, 1, 768000, where);
  c.feature_size = get_int(j, "feature_size", c.feature_size, 1, 1024, where);
  c.fft_window_size = get_int(j, "fft_window_size", c.fft_window_size, 2, 65536, where);
  c.hop_length = get_int(j, "hop_length", c.hop_length, 1, 65536, where);
  c.max_length_s = get_int(j, "max_length_s", c.max_length_s, 1, 3600, where);
  c.frequency_min = get_double(j, "frequency_min", c.frequency_min, where);
  c.frequency_max = get_double(j, "frequency_max", c.frequency_max, where);
  c.truncation = get_string(j, "truncation", c.truncation, where);
  c.padding = get_string(j, "padding", c.padding, where);
  if (c.frequency_min < 0 || c.frequency_min >= c.frequency_max)
    throw Error(where, "need 0 <= frequency_min < frequency_max");
  if (c.truncation != "fusion" && c.truncation != "rand_trunc")
    throw Error(where, "truncation \"" + c.truncation + "\" is not \"fusion\" or \"rand_trunc\"");
  // HF's fusion resizes the mel to [chunk, 64] whatever feature_size is; only 64 is consistent.
  if (c.fusion() && c.feature_size != 64) throw Error(where, "truncation \"fusion\" needs feature_size 64");
  return c;
}

}  // namespace

ClapFeatureConfig ClapFeatureConfig::parse(const std::string& json_text, const std::string& where) {
  return config_from_json(io::parse_json(json_text, where), where);
}

ClapFeatureConfig ClapFeatureConfig::load(const std::string& path) {
  return config_from_json(io::load_json(path), path);
}

ClapFeatureExtractor::ClapFeatureExtractor(const ClapFeatureConfig& config) : config_(config) {
  const int bins = config.fft_window_size / 2 + 1;
  // HF: truncation "fusion" -> self.mel_filters (HTK, no norm); otherwise self.mel_filters_slaney.
  const bool htk = config.fusion();
  const auto filters = mel_filter_bank(bins, config.feature_size, config.frequency_min, config.frequency_max,
                                       config.sampling_rate, !htk, htk ? MelScale::Htk : MelScale::Slaney);
  mel_ = std::make_unique<LogMelSpectrogram>(config.fft_window_size, config.hop_length, filters, config.feature_size);
}

ClapFeatureExtractor::~ClapFeatureExtractor() = default;

ClapFeatures ClapFeatureExtractor::extract(const float* samples, size_t n, CropMode mode, uint64_t seed,
                                           bool short_clip_is_longer) const {
  if (mode == CropMode::Random) {
    NumpyRandom rng(seed);
    return run(samples, n, &rng, short_clip_is_longer);
  }
  return run(samples, n, nullptr, short_clip_is_longer);
}

ClapFeatures ClapFeatureExtractor::extract(const float* samples, size_t n, NumpyRandom& rng,
                                           bool short_clip_is_longer) const {
  return run(samples, n, &rng, short_clip_is_longer);
}

ClapFeatures ClapFeatureExtractor::run(const float* samples, size_t n, NumpyRandom* rng,
                                       bool short_clip_is_longer) const {
  if (n == 0 || samples == nullptr) throw Error("waveform", "no samples");
  const size_t max = static_cast<size_t>(config_.max_samples());
  const int chunk = config_.chunk_frames();
  const int mels = config_.feature_size;
  const size_t plane = static_cast<size_t>(chunk) * mels;

  ClapFeatures f;
  f.frames = chunk;
  f.mels = mels;
  f.channels = config_.fusion() ? 4 : 1;

  auto fill_copies = [&](const std::vector<float>& mel) {
    f.data.resize(plane * f.channels);
    for (int c = 0; c < f.channels; ++c) std::memcpy(f.data.data() + c * plane, mel.data(), plane * sizeof(float));
  };

  if (n > max && !config_.fusion()) {
    const int64_t overflow = static_cast<int64_t>(n - max);
    const int64_t start = rng ? rng->randint(0, overflow + 1) : overflow / 2;
    f.crop_start = start;
    f.is_longer = true;
    fill_copies(mel_->compute(samples + start, max));
  } else if (n > max) {
    const std::vector<float> mel = mel_->compute(samples, n);
    const int64_t total = static_cast<int64_t>(mel_->num_frames(n));
    f.total_frames = total;
    if (total == chunk) {
      fill_copies(mel);
      f.is_longer = false;
    } else {
      // np.array_split(range(0, total - chunk + 1), 3): the first (count % 3) parts one longer.
      const int64_t count = total - chunk + 1;
      const int64_t q = count / 3, r = count % 3;
      int64_t starts[3];
      for (int k = 0; k < 3; ++k) {
        const int64_t size = q + (k < r ? 1 : 0);
        const int64_t begin = k * q + std::min<int64_t>(k, r);
        if (size == 0) {  // HF replaces an empty part by [0]; choice([0]) draws nothing
          starts[k] = 0;
        } else {
          starts[k] = begin + (rng ? rng->randint(0, size) : size / 2);
        }
      }
      f.front = starts[0];
      f.middle = starts[1];
      f.back = starts[2];
      f.data.resize(plane * 4);
      const std::vector<float> shrunk = shrink_time(mel.data(), total, chunk, mels);
      std::memcpy(f.data.data(), shrunk.data(), plane * sizeof(float));
      for (int k = 0; k < 3; ++k)
        std::memcpy(f.data.data() + (k + 1) * plane, mel.data() + starts[k] * mels, plane * sizeof(float));
      f.is_longer = true;
    }
  } else {
    std::vector<float> x;
    const float* wave = samples;
    if (n < max) {
      x.assign(max, 0.0f);
      size_t copies = 1;  // plain zero padding
      if (config_.padding == "repeatpad") copies = max / n;
      if (config_.padding == "repeat") copies = max / n + 1;
      for (size_t c = 0, at = 0; c < copies && at < max; ++c, at += n)
        std::memcpy(x.data() + at, samples, std::min(n, max - at) * sizeof(float));
      wave = x.data();
    }
    fill_copies(mel_->compute(wave, max));
    f.is_longer = false;
  }
  // HF's batch rule: with fusion, a batch (here: of one) where no clip is longer gets is_longer on a random clip.
  if (config_.fusion() && !f.is_longer && short_clip_is_longer) f.is_longer = true;
  return f;
}

}  // namespace zeroshot::audio
