#include "audio/mel.h"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <mutex>
#include <numbers>

#include "zeroshot/error.h"

namespace zeroshot::audio {

namespace {

// FFTW's planner (and plan destruction) is not thread-safe; execution of a finished plan on other arrays is.
std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

// numpy.linspace(start, stop, num): i * step + start, the last element set to stop.
std::vector<double> linspace(double start, double stop, int num) {
  std::vector<double> y(num);
  const double step = num > 1 ? (stop - start) / (num - 1) : 0.0;
  for (int i = 0; i < num; ++i) y[i] = i * step + start;
  if (num > 1) y[num - 1] = stop;
  return y;
}

struct FftwBuffers {
  double* in = nullptr;
  fftw_complex* out = nullptr;
  explicit FftwBuffers(int n) {
    in = fftw_alloc_real(n);
    out = fftw_alloc_complex(n / 2 + 1);
    if (!in || !out) {
      fftw_free(in);
      fftw_free(out);
      throw std::bad_alloc();
    }
  }
  ~FftwBuffers() {
    fftw_free(in);
    fftw_free(out);
  }
  FftwBuffers(const FftwBuffers&) = delete;
  FftwBuffers& operator=(const FftwBuffers&) = delete;
};

// numpy.pad(mode="reflect") index for position i (may be outside [0, n)): mirror without repeating the edge.
size_t reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  int64_t m = i % period;
  if (m < 0) m += period;
  return static_cast<size_t>(m < n ? m : period - m);
}

}  // namespace

double hertz_to_mel(double hz, MelScale scale) {
  if (scale == MelScale::Htk) return 2595.0 * std::log10(1.0 + hz / 700.0);
  const double logstep = 27.0 / std::log(6.4);
  if (hz >= 1000.0) return 15.0 + std::log(hz / 1000.0) * logstep;
  return 3.0 * hz / 200.0;
}

double mel_to_hertz(double mel, MelScale scale) {
  if (scale == MelScale::Htk) return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0);
  const double logstep = std::log(6.4) / 27.0;
  if (mel >= 15.0) return 1000.0 * std::exp(logstep * (mel - 15.0));
  return 200.0 * mel / 3.0;
}

std::vector<double> mel_filter_bank(int num_frequency_bins, int num_mel_filters, double min_frequency,
                                    double max_frequency, int sampling_rate, bool slaney_norm, MelScale scale) {
  const std::vector<double> mels =
      linspace(hertz_to_mel(min_frequency, scale), hertz_to_mel(max_frequency, scale), num_mel_filters + 2);
  std::vector<double> f(mels.size());
  for (size_t i = 0; i < mels.size(); ++i) f[i] = mel_to_hertz(mels[i], scale);
  // NOLINTNEXTLINE(bugprone-integer-division): transformers' np.linspace(0, sampling_rate // 2, ...), an integer
  const std::vector<double> fft_freqs = linspace(0, sampling_rate / 2, num_frequency_bins);

  std::vector<double> w(static_cast<size_t>(num_frequency_bins) * num_mel_filters);
  for (int b = 0; b < num_frequency_bins; ++b) {
    for (int m = 0; m < num_mel_filters; ++m) {
      const double down = -(f[m] - fft_freqs[b]) / (f[m + 1] - f[m]);
      const double up = (f[m + 2] - fft_freqs[b]) / (f[m + 2] - f[m + 1]);
      double v = std::max(0.0, std::min(down, up));
      if (slaney_norm) v *= 2.0 / (f[m + 2] - f[m]);
      w[static_cast<size_t>(b) * num_mel_filters + m] = v;
    }
  }
  return w;
}

LogMelSpectrogram::LogMelSpectrogram(int fft_size, int hop, const std::vector<double>& filters, int num_mels)
    : fft_size_(fft_size), hop_(hop), num_mels_(num_mels) {
  const int bins = fft_size / 2 + 1;
  if (fft_size < 2 || hop < 1 || num_mels < 1 || filters.size() != static_cast<size_t>(bins) * num_mels)
    throw Error("LogMelSpectrogram", "inconsistent FFT size, hop or filter bank");
  // window_function(n, "hann") = np.hanning(n + 1)[:-1] = 0.5 - 0.5 cos(2 pi k / n).
  window_.resize(fft_size);
  for (int k = 0; k < fft_size; ++k) window_[k] = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * k / fft_size);
  // Each triangle is nonzero on one contiguous run of bins: keep only that run (~1000 instead of 33k products per
  // frame; the zeros do not change the float64 sum beyond its last bit).
  bands_.resize(num_mels);
  for (int m = 0; m < num_mels; ++m) {
    int first = -1, last = -1;
    for (int b = 0; b < bins; ++b) {
      if (filters[static_cast<size_t>(b) * num_mels + m] != 0.0) {
        if (first < 0) first = b;
        last = b;
      }
    }
    if (first < 0) continue;
    bands_[m].first = first;
    for (int b = first; b <= last; ++b) bands_[m].weights.push_back(filters[static_cast<size_t>(b) * num_mels + m]);
  }
  FftwBuffers buf(fft_size);
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  // FFTW_ESTIMATE: the same plan (and bits) on every run; measuring gains little for one 1024-point transform.
  plan_ = fftw_plan_dft_r2c_1d(fft_size, buf.in, buf.out, FFTW_ESTIMATE);
  if (!plan_) throw Error("LogMelSpectrogram", "FFTW could not plan a real FFT of size " + std::to_string(fft_size));
}

LogMelSpectrogram::~LogMelSpectrogram() {
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  fftw_destroy_plan(static_cast<fftw_plan>(plan_));
}

std::vector<float> LogMelSpectrogram::compute(const float* x, size_t n) const {
  if (n == 0) throw Error("spectrogram", "no samples");
  const size_t frames = num_frames(n);
  const int bins = fft_size_ / 2 + 1;
  const int64_t half = fft_size_ / 2;
  std::vector<float> out(frames * num_mels_);
  FftwBuffers buf(fft_size_);
  std::vector<double> power(bins);
  const fftw_plan plan = static_cast<fftw_plan>(plan_);

  for (size_t t = 0; t < frames; ++t) {
    // Frame t covers padded samples [t * hop, t * hop + fft) = original [t * hop - half, ...).
    const int64_t start = static_cast<int64_t>(t) * hop_ - half;
    if (start >= 0 && start + fft_size_ <= static_cast<int64_t>(n)) {
      const float* src = x + start;
      for (int k = 0; k < fft_size_; ++k) buf.in[k] = static_cast<double>(src[k]) * window_[k];
    } else {
      for (int k = 0; k < fft_size_; ++k)
        buf.in[k] = static_cast<double>(x[reflect_index(start + k, static_cast<int64_t>(n))]) * window_[k];
    }
    fftw_execute_dft_r2c(plan, buf.in, buf.out);
    // HF stores the spectrum as complex64, then takes |.|^2 in float64 (np.abs(.., dtype=float64) ** 2, i.e.
    // hypot(re, im)^2; re^2 + im^2 differs by an ulp of float64 and is several times faster than hypot).
    for (int b = 0; b < bins; ++b) {
      const double re = static_cast<float>(buf.out[b][0]);
      const double im = static_cast<float>(buf.out[b][1]);
      power[b] = re * re + im * im;
    }
    float* row = out.data() + t * num_mels_;
    for (int m = 0; m < num_mels_; ++m) {
      const Band& band = bands_[m];
      double s = 0.0;
      for (size_t j = 0; j < band.weights.size(); ++j) s += band.weights[j] * power[band.first + j];
      row[m] = static_cast<float>(10.0 * std::log10(std::max(1e-10, s)));
    }
  }
  return out;
}

}  // namespace zeroshot::audio
