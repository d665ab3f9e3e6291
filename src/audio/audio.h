// Audio decoding the way the Hugging Face audio pipelines read a file (`ffmpeg -i pipe:0 -ac 1 -ar <rate> -f f32le`):
// float32 mono at the target rate.
//
// Containers and codecs: whatever the system libsndfile reads (WAV PCM 8/16/24/32-bit, float, double, u-law,
// A-law, WAVE_FORMAT_EXTENSIBLE, extra chunks; AIFF, AU, CAF, W64, RF64; FLAC; Ogg Vorbis and Opus; MP3 through
// mpg123, see has_mp3_support()). Integer samples decode to int / 2^(bits-1), float samples as stored: bit-exact
// with ffmpeg for PCM, float and FLAC; Vorbis within 2.4e-7 (libvorbis versus ffmpeg's decoder); MP3 decoders
// differ slightly (mpg123 versus ffmpeg's mp3float).
//
// Mono, by ffmpeg's default rematrix (libswresample auto matrix, float, no normalization). One channel: as is.
// Otherwise the speaker positions come from the file's channel map when libsndfile reports one
// (WAVE_FORMAT_EXTENSIBLE, CAF, ...), else from the layout ffmpeg assumes for that codec and count (WAV and others:
// ffmpeg's default layout for the count: 2 = stereo, 3 = 2.1, 4 = 4.0, 5 = 5.0(back), 6 = 5.1(back), 7 = 6.1,
// 8 = 7.1; FLAC: the FLAC layouts; Vorbis and Opus: the Vorbis order). Weights as swresample gives a mono
// (front-centre) output: FL, FR, FLC, FRC sqrt(1/2); FC 1 (with FL/FR present: clev * sqrt(2) = 1); BL, BR, SL,
// SR, BC sqrt(1/2) * sqrt(1/2); LFE 0; other positions (top, ...) 0; each weight rounded to float32. The float32
// sum runs in ffmpeg's channel order (FL, FR, FC, LFE, BL, BR, FLC, FRC, BC, SL, SR, ...), one rounding per
// product and per addition, like swresample's C path. So stereo is f32(L * c) + f32(R * c), c = float32(sqrt(1/2)),
// bit-exact with ffmpeg (stereo_3s.wav). More than 8 channels without a usable map (ffmpeg has no default layout
// and refuses them): the plain mean, a documented deviation.
//
// Resampling (file rate != target_rate): libsoxr HQ, linear phase, float32 in and out; output length
// round(n * target / rate), aligned like ffmpeg's (no delay). Not bit-identical to ffmpeg's swresample (see
// fixtures/clap/README: only an embedding-cosine tolerance applies to resampled files): SNR 40 dB (8 kHz speech)
// and 68 dB (44.1 kHz) against ffmpeg; the choice of quality is explained in resample.cpp.
//
// Refusals (zeroshot::Error, one line "<name>: <problem>"), all BEFORE any allocation sized by the header
// (max_seconds <= 0 is refused as an invalid option):
// empty or unrecognised data, zero channels, more than 1024 channels, a sample rate outside [1, 768000],
// uncompressed data (PCM/float) whose header claims more frames than the file's bytes can hold (this includes a
// RIFF "data" chunk larger than the rest of the file, as in bad_huge_header.wav, which libsndfile and ffmpeg
// would silently clamp), a header duration over max_seconds, and a file that decodes to zero samples
// ("Malformed soundfile", as the HF pipeline says). Decoding reads in bounded blocks, so memory follows the data
// actually decoded and stops at max_seconds even when a header under-reports the length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace zeroshot::audio {

// Mono float32 samples.
struct Waveform {
  int sample_rate = 0;
  std::vector<float> samples;
};

struct DecodeOptions {
  int target_rate = 48000;   // resample to this rate (0: keep the file's rate)
  double max_seconds = 600;  // refuse longer audio (checked on the header, then while decoding)
};

Waveform decode_file(const std::string& path, const DecodeOptions& opt = {});
// `name` is used in error messages only.
Waveform decode_memory(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt = {});

// True if the linked libsndfile can read MPEG layer III (libsndfile >= 1.1 built with mpg123).
bool has_mp3_support();

// True if the file name has an extension we try to decode as audio (.wav .flac .ogg .oga .opus .mp3 .aif .aiff
// .aifc .au .caf .w64 .rf64, any case).
bool has_audio_extension(const std::string& path);

}  // namespace zeroshot::audio
