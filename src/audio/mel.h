// Mel scales and triangular mel filter banks as Hugging Face's audio_utils computes them (float64), plus the
// log-mel power spectrogram of audio_utils.spectrogram (periodic Hann, centre reflect padding, float64 rfft whose
// result is stored as complex64, power in float64, mel, max(1e-10, .), 10 log10, cast to float32).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace zeroshot::audio {

enum class MelScale { Htk, Slaney };

// audio_utils.hertz_to_mel / mel_to_hertz.
double hertz_to_mel(double hz, MelScale scale);
double mel_to_hertz(double mel, MelScale scale);

// audio_utils.mel_filter_bank(num_frequency_bins, num_mel_filters, min_frequency, max_frequency, sampling_rate,
// norm = slaney_norm ? "slaney" : None, mel_scale): row-major [num_frequency_bins, num_mel_filters].
std::vector<double> mel_filter_bank(int num_frequency_bins, int num_mel_filters, double min_frequency,
                                    double max_frequency, int sampling_rate, bool slaney_norm, MelScale scale);

// Log-mel spectrogram with a fixed FFT size, hop and filter bank. The window, the sparse filter bank and the FFTW
// plan are made once; compute() is const and thread-safe (each call has its own buffers).
class LogMelSpectrogram {
 public:
  // `filters` as mel_filter_bank returns it, [fft_size / 2 + 1, num_mels].
  LogMelSpectrogram(int fft_size, int hop, const std::vector<double>& filters, int num_mels);
  ~LogMelSpectrogram();
  LogMelSpectrogram(const LogMelSpectrogram&) = delete;
  LogMelSpectrogram& operator=(const LogMelSpectrogram&) = delete;

  // Frames for n samples with centre padding: 1 + n / hop.
  size_t num_frames(size_t n) const { return 1 + n / static_cast<size_t>(hop_); }
  // [num_frames(n), num_mels] row-major float32 dB values of x[0..n) (float32 samples, computed in float64 as HF
  // does after its float32 -> float64 conversion). n >= 1.
  std::vector<float> compute(const float* x, size_t n) const;

  int num_mels() const { return num_mels_; }

 private:
  struct Band {  // one mel filter: its nonzero weights over bins [first, first + weights.size())
    int first = 0;
    std::vector<double> weights;
  };
  int fft_size_;
  int hop_;
  int num_mels_;
  std::vector<double> window_;
  std::vector<Band> bands_;
  void* plan_ = nullptr;  // fftw_plan
};

}  // namespace zeroshot::audio
