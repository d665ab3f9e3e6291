// Audio decoding from memory (FFmpeg's demuxers and decoders: WAV, FLAC, Ogg, MP3, MP4, Matroska, ...; swresample's
// downmix and resampling to 48 kHz or the file's own rate).
#include <cstddef>
#include <cstdint>

#include "audio/audio.h"
#include "zeroshot/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zeroshot;
  audio::DecodeOptions opt;
  opt.max_seconds = 30;                    // bounds the work per input (the default 600 s is for users)
  opt.target_rate = size & 1 ? 48000 : 0;  // the resampler on half of the inputs
  try {
    audio::decode_memory(data, size, "fuzz", opt);
  } catch (const Error&) {
  }
  return 0;
}
