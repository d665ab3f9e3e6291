// Interleaved multi-channel float32 -> mono the way ffmpeg's `-ac 1` does it (see audio.h for the rule).
#pragma once

#include <cstddef>
#include <vector>

namespace zeroshot::audio {

// Speaker positions, numbered like ffmpeg's channel-layout bits (this is also swresample's summation order).
enum class Speaker {
  FL = 0, FR, FC, LFE, BL, BR, FLC, FRC, BC, SL, SR, TC, TFL, TFC, TFR, TBL, TBC, TBR,
  Unknown = 63
};

// Which layout ffmpeg assumes when the file carries no channel map.
enum class LayoutFamily { Default, Flac, Vorbis };

// The positions ffmpeg uses for `channels` channels of this family; empty when it has none (> 8 channels).
std::vector<Speaker> default_layout(int channels, LayoutFamily family);

// Mixing weights for a mono output (swresample's auto matrix, float32), one per input channel; empty when the
// positions are unusable (empty, duplicated or Unknown), and the caller then averages.
std::vector<float> mono_weights(const std::vector<Speaker>& positions);

// Appends frames * channels interleaved samples, mixed to mono, to `out`. `positions` has `channels` entries or
// is empty (plain mean). One channel is copied as is.
void downmix_append(const float* interleaved, size_t frames, int channels, const std::vector<Speaker>& positions,
                    std::vector<float>& out);

}  // namespace zeroshot::audio
