// Audio decoding the way the Hugging Face audio pipelines read a file (`ffmpeg -i pipe:0 -ac 1 -ar <rate> -f f32le`,
// ffmpeg 5.1): float32 mono at the target rate, with FFmpeg's own libraries (libavformat, libavcodec,
// libswresample), so the samples are the pipeline's bit for bit: PCM, float, FLAC, Vorbis, MP3 and the resampled
// fixtures (8 kHz, 44.1 kHz) are identical to what the pipeline decoded.
//
// Containers (probed from the bytes, as through a pipe; the file name's extension plays no part): WAV (also
// WAVE_FORMAT_EXTENSIBLE, RF64, W64), AIFF, AU, CAF, FLAC, Ogg (Vorbis, Opus, FLAC), MP3, MP4/M4A/MOV (AAC, ALAC,
// ...), Matroska/WebM (Opus, Vorbis, AAC, ...), ADTS AAC, AC-3/E-AC-3, AVI, ASF/WMA, WavPack, APE, TTA. Of a video
// file, the audio stream ffmpeg ranks best is decoded; the other streams are skipped. Demuxers that would open
// other files (playlists, references) are not used, and nothing else is ever opened.
// Demuxing as through a pipe matters: ffmpeg's MP3 demuxer trims the encoder's end padding only on a seekable
// input, so MP3s keep it here, as in the pipeline. MP4/MOV is read seekable (its index may follow the data, which
// a pipe reaches only while the whole file fits in ffmpeg's read buffer; where both work the samples are equal).
//
// Mono and resampling: one swresample context with default options, as the CLI's auto-inserted `aresample`
// filter (stereo: f32(L * c) + f32(R * c), c = float32(sqrt(1/2)); more channels: swresample's auto matrix over
// the file's layout, or over ffmpeg's default layout for the count when the file has none, as the CLI guesses).
// More than 8 channels without a layout ffmpeg knows (the CLI refuses them): the plain mean, a documented
// deviation. A stream whose format, rate or layout changes mid-way gets a new context (the old one flushed).
// Damaged packets are skipped, as the CLI does (it logs them and goes on).
//
// Refusals (zeroshot::Error, one line "<name>: <problem>") (max_seconds <= 0 is refused as an invalid option):
// empty or unrecognised data, no audio stream, zero channels, more than 1024 channels, a sample rate outside
// [1, 768000], a RIFF "data" chunk larger than the rest of the file (bad_huge_header.wav, which ffmpeg would
// silently clamp), a duration stated by the header (WAV; other containers that state one) over max_seconds, and a
// file that decodes to zero samples ("Malformed soundfile", as the HF pipeline says). Decoding stops at
// max_seconds of output even when a header under-reports the length, so memory follows the data actually decoded.
// No allocation is sized from a header. Every FFmpeg object is freed on every path (LeakSanitizer-tested on
// malformed files). FFmpeg's log is silenced process-wide (av_log_set_level) on first use.
//
// Thread safety: decode_file / decode_memory may run concurrently (each call owns its FFmpeg contexts).
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

// True if the linked libavcodec has an MPEG layer III decoder (Debian's always has).
bool has_mp3_support();

// True if the file name has an extension we try to decode as audio (.wav .flac .ogg .oga .opus .mp3 .aif .aiff
// .aifc .au .caf .w64 .rf64 .m4a .aac .mka .weba .webm .mp4 .mkv .mov .wv, any case): video containers are
// listed for their audio track.
bool has_audio_extension(const std::string& path);

}  // namespace zeroshot::audio
