#include "audio/downmix.h"

#include <algorithm>
#include <cstdint>
#include <numbers>

namespace zeroshot::audio {

using S = Speaker;

std::vector<Speaker> default_layout(int channels, LayoutFamily family) {
  switch (channels) {
    case 1: return {S::FC};
    case 2: return {S::FL, S::FR};
    default: break;
  }
  if (family == LayoutFamily::Vorbis) {  // Vorbis I channel order (also Opus mapping family 1)
    switch (channels) {
      case 3: return {S::FL, S::FC, S::FR};
      case 4: return {S::FL, S::FR, S::BL, S::BR};
      case 5: return {S::FL, S::FC, S::FR, S::BL, S::BR};
      case 6: return {S::FL, S::FC, S::FR, S::BL, S::BR, S::LFE};
      case 7: return {S::FL, S::FC, S::FR, S::SL, S::SR, S::BC, S::LFE};
      case 8: return {S::FL, S::FC, S::FR, S::SL, S::SR, S::BL, S::BR, S::LFE};
      default: return {};
    }
  }
  if (family == LayoutFamily::Flac) {  // FLAC format specification, as ffmpeg's FLAC decoder sets them
    switch (channels) {
      case 3: return {S::FL, S::FR, S::FC};
      case 4: return {S::FL, S::FR, S::BL, S::BR};
      case 5: return {S::FL, S::FR, S::FC, S::BL, S::BR};
      case 6: return {S::FL, S::FR, S::FC, S::LFE, S::BL, S::BR};
      case 7: return {S::FL, S::FR, S::FC, S::LFE, S::BC, S::SL, S::SR};
      case 8: return {S::FL, S::FR, S::FC, S::LFE, S::BL, S::BR, S::SL, S::SR};
      default: return {};
    }
  }
  // av_channel_layout_default(): the first layout with that count: 2.1, 4.0, 5.0(back), 5.1(back), 6.1, 7.1.
  switch (channels) {
    case 3: return {S::FL, S::FR, S::LFE};
    case 4: return {S::FL, S::FR, S::FC, S::BC};
    case 5: return {S::FL, S::FR, S::FC, S::BL, S::BR};
    case 6: return {S::FL, S::FR, S::FC, S::LFE, S::BL, S::BR};
    case 7: return {S::FL, S::FR, S::FC, S::LFE, S::BC, S::SL, S::SR};
    case 8: return {S::FL, S::FR, S::FC, S::LFE, S::BL, S::BR, S::SL, S::SR};
    default: return {};
  }
}

std::vector<float> mono_weights(const std::vector<Speaker>& positions) {
  if (positions.empty()) return {};
  uint64_t present = 0;
  for (Speaker p : positions) {
    const int bit = static_cast<int>(p);
    if (p == S::Unknown || (present >> bit & 1)) return {};
    present |= uint64_t{1} << bit;
  }
  auto has = [&](Speaker p) { return (present >> static_cast<int>(p) & 1) != 0; };
  // swresample's defaults: center_mix_level = surround_mix_level = sqrt(1/2) (-3 dB), lfe_mix_level = 0.
  const double h = 0.70710678118654752440;  // M_SQRT1_2
  const double clev = h, slev = h;
  const bool stereo = has(S::FL) || has(S::FR);
  std::vector<float> w;
  for (Speaker p : positions) {
    double c = 0;
    switch (p) {
      case S::FC: c = stereo ? clev * std::numbers::sqrt2 : 1.0; break;
      case S::FL: case S::FR: case S::FLC: case S::FRC: c = h; break;
      case S::BL: case S::BR: case S::SL: case S::SR: case S::BC: c = slev * h; break;
      default: c = 0; break;  // LFE (lfe_mix_level 0), top and other positions: not mixed
    }
    w.push_back(static_cast<float>(c));
  }
  return w;
}

void downmix_append(const float* x, size_t frames, int channels, const std::vector<Speaker>& positions,
                    std::vector<float>& out) {
  const size_t base = out.size();
  out.resize(base + frames);
  float* o = out.data() + base;
  if (channels == 1) {
    std::copy(x, x + frames, o);
    return;
  }
  const std::vector<float> w = mono_weights(positions);
  if (w.empty() || static_cast<int>(w.size()) != channels) {
    // No layout ffmpeg would accept: the mean (a documented deviation).
    const float inv = 1.0f / static_cast<float>(channels);
    for (size_t i = 0; i < frames; ++i) {
      float v = 0;
      for (int c = 0; c < channels; ++c) v += x[i * channels + c];
      o[i] = v * inv;
    }
    return;
  }
  // swresample sums the channels with nonzero weight in layout-bit order, in float, starting from 0.
  std::vector<int> order;
  for (int c = 0; c < channels; ++c)
    if (w[c] != 0.0f) order.push_back(c);
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return static_cast<int>(positions[a]) < static_cast<int>(positions[b]); });
  for (size_t i = 0; i < frames; ++i) {
    const float* s = x + i * channels;
    float v = 0;
    for (int c : order) v += s[c] * w[c];
    o[i] = v;
  }
}

}  // namespace zeroshot::audio
