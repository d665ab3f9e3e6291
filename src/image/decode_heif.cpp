// HEIC / HEIF through libheif, as pillow-heif (the Pillow plugin that opens them) gives them: the primary image,
// decoded to 8-bit interleaved RGB, or RGBA when it has an alpha channel (HDR images converted to 8 bits), with
// libheif applying the HEIF transformations (clap crop, irot rotation, imir mirroring). pillow-heif then resets the
// EXIF orientation to 1 (the transformations are the authority in HEIF), so no EXIF orientation is applied here.
// Before libheif reads the file, its boxes are read here (heif_geometry.h) for what libheif 1.15 mishandles: every
// size the file declares (each ispe property, each grid or overlay canvas) is checked against the pixel limit, and a
// derived image built from an item that is not an image is refused (libheif would abort). The primary image's
// sizes are checked again through libheif's API.
#include <libheif/heif.h>

#include <cstring>
#include <memory>

#include "image/decode_internal.h"
#include "image/heif_geometry.h"

namespace zeroshot::image::detail {

namespace {

struct ContextFree {
  void operator()(heif_context* c) const { heif_context_free(c); }
};
struct HandleRelease {
  void operator()(heif_image_handle* h) const { heif_image_handle_release(h); }
};
struct ImageRelease {
  void operator()(heif_image* i) const { heif_image_release(i); }
};
struct OptionsFree {
  void operator()(heif_decoding_options* o) const { heif_decoding_options_free(o); }
};

void check(const heif_error& e, const std::string& name, const char* what) {
  if (e.code == heif_error_Ok) return;
  std::string msg = e.message ? e.message : "";
  for (char& c : msg)
    if (c == '\n' || c == '\r') c = ' ';
  throw Error(name, std::string("HEIF: ") + what + (msg.empty() ? "" : ": " + msg));
}

}  // namespace

Decoded decode_heif(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt) {
  // libheif allocates a canvas for every grid and overlay it composes, hidden ones included, at up to 32768 x 32768
  // (3 GB). Zero sizes are left to libheif, which refuses them where they matter.
  for (const HeifDeclaredSize& s : heif_declared_sizes(data, size)) {
    if (static_cast<uint64_t>(s.width) * s.height > opt.max_pixels)
      throw Error(name, std::string("HEIF: ") + s.what + " of " + std::to_string(s.width) + "x" +
                            std::to_string(s.height) + " pixels exceeds the limit of " +
                            std::to_string(opt.max_pixels) + " pixels (possible decompression bomb)");
  }
  for (const HeifDanglingReference& r : heif_dangling_references(data, size))
    throw Error(name, std::string("HEIF: ") + r.derived + " item " + std::to_string(r.item) + " is built from item " +
                          std::to_string(r.missing) + ", which is not an image");
  std::unique_ptr<heif_context, ContextFree> ctx(heif_context_alloc());
  if (!ctx) throw Error(name, "HEIF: out of memory");
  check(heif_context_read_from_memory_without_copy(ctx.get(), data, size, nullptr), name, "invalid file");
  heif_image_handle* raw_handle = nullptr;
  check(heif_context_get_primary_image_handle(ctx.get(), &raw_handle), name, "no primary image");
  std::unique_ptr<heif_image_handle, HandleRelease> handle(raw_handle);
  // ispe: the coded size before the transformations, which can only crop it or swap its axes.
  check_size(heif_image_handle_get_ispe_width(handle.get()), heif_image_handle_get_ispe_height(handle.get()), name,
             opt);
  check_size(heif_image_handle_get_width(handle.get()), heif_image_handle_get_height(handle.get()), name, opt);
  const bool alpha = heif_image_handle_has_alpha_channel(handle.get()) != 0;

  std::unique_ptr<heif_decoding_options, OptionsFree> options(heif_decoding_options_alloc());
  if (!options) throw Error(name, "HEIF: out of memory");
  options->convert_hdr_to_8bit = 1;
  heif_image* raw_image = nullptr;
  check(heif_decode_image(handle.get(), &raw_image, heif_colorspace_RGB,
                          alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB, options.get()),
        name, "cannot decode the image");
  std::unique_ptr<heif_image, ImageRelease> image(raw_image);
  const int w = heif_image_get_width(image.get(), heif_channel_interleaved);
  const int h = heif_image_get_height(image.get(), heif_channel_interleaved);
  check_size(w, h, name, opt);
  int stride = 0;
  const uint8_t* plane = heif_image_get_plane_readonly(image.get(), heif_channel_interleaved, &stride);
  const int bpp = alpha ? 4 : 3;
  if (!plane || stride < w * bpp) throw Error(name, "HEIF: decoder returned no 8-bit pixels");

  Decoded out;
  out.orientation = 1;  // see the top of the file
  allocate(out.image, w, h, alpha ? PilMode::RGBA : PilMode::RGB);
  const size_t row = static_cast<size_t>(w) * bpp;
  for (int y = 0; y < h; ++y) std::memcpy(&out.image.pixels[y * row], plane + static_cast<size_t>(y) * stride, row);
  return out;
}

}  // namespace zeroshot::image::detail
