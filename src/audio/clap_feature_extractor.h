// Hugging Face's ClapFeatureExtractor (input_features + is_longer), for one clip as the zero-shot pipeline calls it.
//
// Length (max = max_length_s * sampling_rate samples, 480,000 in every CLAP checkpoint):
//   n < max: padding "repeatpad": the clip tiled floor(max / n) times, zeros up to max; "repeat": tiled
//            floor(max / n) + 1 times, cut at max; anything else: zeros up to max. n == max: as is.
//   n > max, truncation "rand_trunc": a window [s, s + max), is_longer = true.
//   n > max, truncation "fusion": the mel of the whole clip (T = 1 + n / hop frames, chunk = max / hop + 1);
//            T == chunk: 4 copies, is_longer = false; otherwise channels [shrink, front, middle, back]: shrink =
//            the [T, mels] mel resized to [chunk, mels] like torch interpolate(bilinear, align_corners=False) in
//            float32; front/middle/back = chunk frames starting in each part of np.array_split(0..T-chunk, 3)
//            (an empty part counts as [0]); is_longer = true.
//   n <= max with "fusion": 4 copies of the padded clip's mel, is_longer = false.
//   Batch rule (fusion): HF sets is_longer = true on one random clip of a batch where none is longer; the
//   pipeline calls the extractor with one clip, so with `short_clip_is_longer` (default) every fused clip whose
//   is_longer came out false gets true, as in HF's pipeline. Pass false for LAION's behaviour.
// Mel: truncation "fusion" uses the HTK scale without norm (HF's mel_filters), anything else Slaney scale with
// Slaney norm (mel_filters_slaney). top_db is ignored, as in HF (its spectrogram call never passes it).
//
// Crops (only clips longer than max):
//   CropMode::Deterministic (default): the fixtures' rule: rand_trunc start = (n - max) / 2 (integer division);
//     fusion: the middle element part[len / 2] of each part.
//   CropMode::Random: HF's draws after np.random.seed(seed) (see numpy_random.h): rand_trunc start =
//     randint(0, n - max + 1); fusion: choice(part) for front, middle, back in that order. Every extract() call
//     reseeds, i.e. it equals HF featurizing this one clip right after np.random.seed(seed); the overload taking
//     a NumpyRandom continues one stream across calls (HF's global state across the pipeline's calls).
// Output: float32 [channels, chunk, mels] (channels 1 for rand_trunc, 4 for fusion).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "audio/mel.h"
#include "audio/numpy_random.h"

namespace zeroshot::audio {

struct ClapFeatureConfig {
  int sampling_rate = 48000;
  int feature_size = 64;  // mel bins
  int fft_window_size = 1024;
  int hop_length = 480;
  int max_length_s = 10;
  double frequency_min = 0;
  double frequency_max = 14000;
  std::string truncation = "fusion";  // "fusion" or "rand_trunc"
  std::string padding = "repeatpad";  // "repeatpad", "repeat", or anything else (zeros)

  // Reads preprocessor_config.json (missing keys keep HF's ClapFeatureExtractor defaults above); throws
  // zeroshot::Error("<path>: ...") on unreadable/invalid JSON, wrong types or values out of range.
  static ClapFeatureConfig load(const std::string& path);
  // Same from parsed JSON text; `where` names it in errors.
  static ClapFeatureConfig parse(const std::string& json_text, const std::string& where);

  bool fusion() const { return truncation == "fusion"; }
  int64_t max_samples() const { return int64_t{max_length_s} * sampling_rate; }
  int chunk_frames() const { return static_cast<int>(max_samples() / hop_length + 1); }
};

enum class CropMode { Deterministic, Random };

struct ClapFeatures {
  int channels = 0;
  int frames = 0;  // chunk frames (1001)
  int mels = 0;
  std::vector<float> data;  // [channels, frames, mels] row-major
  bool is_longer = false;
  // What happened (for reports and tests): frames of the whole clip's mel when fusion ran on it (else 0);
  // rand_trunc crop start in samples, fusion front/middle/back starts in frames (-1 when not used).
  int64_t total_frames = 0;
  int64_t crop_start = -1;
  int64_t front = -1, middle = -1, back = -1;
};

class ClapFeatureExtractor {
 public:
  explicit ClapFeatureExtractor(const ClapFeatureConfig& config);
  ~ClapFeatureExtractor();

  const ClapFeatureConfig& config() const { return config_; }

  // Thread-safe. `samples` mono at config().sampling_rate; n >= 1 (throws zeroshot::Error otherwise).
  // `seed` is used by CropMode::Random only (must be < 2^32).
  ClapFeatures extract(const float* samples, size_t n, CropMode mode = CropMode::Deterministic, uint64_t seed = 0,
                       bool short_clip_is_longer = true) const;
  // CropMode::Random drawing from `rng` (one numpy stream across calls).
  ClapFeatures extract(const float* samples, size_t n, NumpyRandom& rng, bool short_clip_is_longer = true) const;

 private:
  ClapFeatures run(const float* samples, size_t n, NumpyRandom* rng, bool short_clip_is_longer) const;

  ClapFeatureConfig config_;
  std::unique_ptr<LogMelSpectrogram> mel_;
};

}  // namespace zeroshot::audio
