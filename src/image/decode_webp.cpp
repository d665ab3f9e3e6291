// WebP through libwebp's WebPAnimDecoder with default options, exactly as Pillow's _webp.c does for every WebP
// (still or animated): RGBA output of the first frame composed on the (transparent) canvas; mode RGBA when the
// file has alpha, else RGB (the color channels). The EXIF chunk, if any, is what Pillow keeps as info["exif"].
// The canvas size is read with the demuxer and checked before the decoder allocates the canvas.
#include <webp/decode.h>
#include <webp/demux.h>

#include <cstring>
#include <memory>

#include "image/decode_internal.h"

namespace zeroshot::image::detail {

namespace {

struct DemuxDeleter {
  void operator()(WebPDemuxer* d) const { WebPDemuxDelete(d); }
};
struct AnimDeleter {
  void operator()(WebPAnimDecoder* d) const { WebPAnimDecoderDelete(d); }
};

}  // namespace

Decoded decode_webp(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt) {
  const WebPData bytes{data, size};
  {
    std::unique_ptr<WebPDemuxer, DemuxDeleter> demux(WebPDemux(&bytes));
    if (!demux) throw Error(name, "WebP: invalid or truncated file");
    check_size(WebPDemuxGetI(demux.get(), WEBP_FF_CANVAS_WIDTH), WebPDemuxGetI(demux.get(), WEBP_FF_CANVAS_HEIGHT),
               name, opt);
  }
  std::unique_ptr<WebPAnimDecoder, AnimDeleter> dec(WebPAnimDecoderNew(&bytes, nullptr));
  if (!dec) throw Error(name, "WebP: cannot decode the file");
  WebPAnimInfo info;
  if (!WebPAnimDecoderGetInfo(dec.get(), &info)) throw Error(name, "WebP: cannot read the file information");
  check_size(info.canvas_width, info.canvas_height, name, opt);

  Decoded out;
  WebPChunkIterator chunk;
  if (WebPDemuxGetChunk(WebPAnimDecoderGetDemuxer(dec.get()), "EXIF", 1, &chunk)) {
    out.exif.assign(chunk.chunk.bytes, chunk.chunk.bytes + chunk.chunk.size);
    WebPDemuxReleaseChunkIterator(&chunk);
  }

  uint8_t* rgba = nullptr;
  int timestamp = 0;
  if (!WebPAnimDecoderGetNext(dec.get(), &rgba, &timestamp) || !rgba)
    throw Error(name, "WebP: cannot decode the first frame");
  const int w = static_cast<int>(info.canvas_width), h = static_cast<int>(info.canvas_height);
  // Pillow's mode: "RGBX" (read as "RGB") when the features say no alpha, else "RGBA" (also when unreadable).
  WebPBitstreamFeatures features;
  const bool alpha = !(WebPGetFeatures(data, size, &features) == VP8_STATUS_OK && !features.has_alpha);
  allocate(out.image, w, h, alpha ? PilMode::RGBA : PilMode::RGB);
  uint8_t* dst = out.image.pixels.data();
  const size_t n = static_cast<size_t>(w) * h;
  if (alpha) {
    std::memcpy(dst, rgba, n * 4);
  } else {
    for (size_t i = 0; i < n; ++i, rgba += 4, dst += 3) {
      dst[0] = rgba[0], dst[1] = rgba[1], dst[2] = rgba[2];
    }
  }
  return out;
}

}  // namespace zeroshot::image::detail
