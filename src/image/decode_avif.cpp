// AVIF through libavif, as pillow-avif-plugin (the Pillow plugin that opens AVIF) gives it: the first image,
// converted to 8-bit RGB (RGBA when the file has an alpha plane) with libavif's default YUV -> RGB settings
// (automatic chroma upsampling). pillow-avif-plugin replaces the EXIF orientation with the one equivalent to the
// file's irot / imir boxes (1 when there are none) and Pillow's exif_transpose applies it; the same transformations
// are applied here directly: irot (angle x 90 degrees anti-clockwise), then imir (mode 0: top and bottom exchanged,
// mode 1: left and right), as the HEIF specification orders them. EXIF orientation in the file is not used.
// The size is read at parse time and checked before any frame is decoded.
#include <avif/avif.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "image/decode_internal.h"

namespace zeroshot::image::detail {

namespace {

struct DecoderDestroy {
  void operator()(avifDecoder* d) const { avifDecoderDestroy(d); }
};

void check(avifResult r, const std::string& name, const char* what) {
  if (r != AVIF_RESULT_OK) throw Error(name, std::string("AVIF: ") + what + ": " + avifResultToString(r));
}

}  // namespace

Decoded decode_avif(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt) {
  std::unique_ptr<avifDecoder, DecoderDestroy> dec(avifDecoderCreate());
  if (!dec) throw Error(name, "AVIF: out of memory");
  dec->maxThreads = 1;  // decoding runs in the caller's worker threads already
  dec->imageSizeLimit = static_cast<uint32_t>(std::min<uint64_t>(opt.max_pixels, dec->imageSizeLimit));
  dec->ignoreExif = AVIF_TRUE;
  dec->ignoreXMP = AVIF_TRUE;
  check(avifDecoderSetIOMemory(dec.get(), data, size), name, "cannot read the file");
  check(avifDecoderParse(dec.get()), name, "invalid file");
  avifImage* img = dec->image;
  check_size(img->width, img->height, name, opt);
  check(avifDecoderNextImage(dec.get()), name, "cannot decode the first image");
  img = dec->image;
  check_size(img->width, img->height, name, opt);

  const bool alpha = img->alphaPlane != nullptr;
  Decoded out;
  allocate(out.image, static_cast<int>(img->width), static_cast<int>(img->height),
           alpha ? PilMode::RGBA : PilMode::RGB);
  avifRGBImage rgb;
  avifRGBImageSetDefaults(&rgb, img);
  rgb.depth = 8;
  rgb.format = alpha ? AVIF_RGB_FORMAT_RGBA : AVIF_RGB_FORMAT_RGB;
  rgb.pixels = out.image.pixels.data();
  rgb.rowBytes = img->width * (alpha ? 4 : 3);
  check(avifImageYUVToRGB(img, &rgb), name, "cannot convert to RGB");

  // irot, then imir, with Pillow's transposes: ROTATE_90 (8), ROTATE_180 (3), ROTATE_270 (6); mirrors 4 and 2.
  if (img->transformFlags & AVIF_TRANSFORM_IROT) {
    static const int kRotation[4] = {1, 8, 3, 6};
    out.image = apply_orientation(std::move(out.image), kRotation[img->irot.angle & 3]);
  }
  if (img->transformFlags & AVIF_TRANSFORM_IMIR)
    out.image = apply_orientation(std::move(out.image), img->imir.mode ? 2 : 4);
  out.orientation = 1;
  return out;
}

}  // namespace zeroshot::image::detail
