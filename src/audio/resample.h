// Sample-rate conversion of mono float32 audio with libsoxr (one-shot, linear phase, flushed).
#pragma once

#include <string>
#include <vector>

namespace zeroshot::audio {

enum class ResampleQuality { High, VeryHigh };  // soxr HQ (20-bit, float engine) / VHQ (28-bit, double engine)

// Output length round(n * to / from) (ffmpeg gives exactly that for the fixtures: 28857 @ 8 kHz -> 173142,
// 132300 @ 44.1 kHz -> 144000), first output sample aligned with the first input sample.
// Throws zeroshot::Error("<name>: ...") if libsoxr fails.
std::vector<float> resample(const std::vector<float>& in, int from, int to, const std::string& name,
                            ResampleQuality quality = ResampleQuality::High);

}  // namespace zeroshot::audio
