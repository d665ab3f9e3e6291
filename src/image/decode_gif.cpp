// GIF through giflib: the first frame, composed as Pillow's GifImagePlugin does for frame 0.
// The canvas is the logical screen, grown to hold the frame if the frame sticks out; it starts filled with the
// frame's transparent index (from the graphic control extensions before the frame) or with index 0; the frame's
// pixels are written at its offset; the indices are mode "P" with the local color table, else the global one,
// or "L" without a table (or with the identity gray ramp, which Pillow drops). Indices past the table's end map
// to (i, i, i), the entries of Pillow's default palette. The background color is not used for frame 0 (Pillow
// does not either).
// giflib reports errors through return codes (no longjmp).
#include <gif_lib.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "image/decode_internal.h"

namespace zeroshot::image::detail {

namespace {

struct Source {
  const uint8_t* data;
  size_t size;
  size_t pos;
};

int on_read(GifFileType* gif, GifByteType* out, int n) {
  auto* s = static_cast<Source*>(gif->UserData);
  if (n <= 0) return 0;
  size_t k = static_cast<size_t>(n);
  if (k > s->size - s->pos) k = s->size - s->pos;
  std::memcpy(out, s->data + s->pos, k);
  s->pos += k;
  return static_cast<int>(k);
}

struct GifCloser {
  void operator()(GifFileType* g) const {
    int err = 0;
    DGifCloseFile(g, &err);
  }
};

[[noreturn]] void fail(const std::string& name, int code) {
  const char* why = GifErrorString(code);
  throw Error(name, std::string("GIF: ") + (why ? why : "decoding failed"));
}

}  // namespace

Decoded decode_gif(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt) {
  Source src{data, size, 0};
  int err = 0;
  std::unique_ptr<GifFileType, GifCloser> gif(DGifOpen(&src, on_read, &err));
  if (!gif) fail(name, err);

  int transparency = -1;
  for (;;) {
    GifRecordType type = UNDEFINED_RECORD_TYPE;
    if (DGifGetRecordType(gif.get(), &type) == GIF_ERROR) fail(name, gif->Error);
    if (type == TERMINATE_RECORD_TYPE) throw Error(name, "GIF: no image in the file");
    if (type == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* block = nullptr;
      if (DGifGetExtension(gif.get(), &code, &block) == GIF_ERROR) fail(name, gif->Error);
      // Graphic control extension: flags, delay (2 bytes), transparent index.
      if (code == GRAPHICS_EXT_FUNC_CODE && block && block[0] >= 4 && (block[1] & 1)) transparency = block[4];
      while (block) {
        if (DGifGetExtensionNext(gif.get(), &block) == GIF_ERROR) fail(name, gif->Error);
      }
      continue;
    }
    if (type != IMAGE_DESC_RECORD_TYPE) continue;

    if (DGifGetImageDesc(gif.get()) == GIF_ERROR) fail(name, gif->Error);
    const GifImageDesc& desc = gif->Image;
    const int64_t fx = desc.Left, fy = desc.Top, fw = desc.Width, fh = desc.Height;
    const int64_t cw = std::max<int64_t>(gif->SWidth, fx + fw), ch = std::max<int64_t>(gif->SHeight, fy + fh);
    check_size(cw, ch, name, opt);
    if (fw <= 0 || fh <= 0) throw Error(name, "GIF: empty frame");

    // Pixel indices of the whole canvas.
    std::vector<uint8_t> index(static_cast<size_t>(cw) * ch, static_cast<uint8_t>(transparency < 0 ? 0 : transparency));
    std::vector<GifPixelType> line(static_cast<size_t>(fw));
    static const int kStart[4] = {0, 4, 2, 1}, kStep[4] = {8, 8, 4, 2};
    const int passes = desc.Interlace ? 4 : 1;
    for (int p = 0; p < passes; ++p) {
      const int start = desc.Interlace ? kStart[p] : 0, step = desc.Interlace ? kStep[p] : 1;
      for (int64_t y = start; y < fh; y += step) {
        if (DGifGetLine(gif.get(), line.data(), static_cast<int>(fw)) == GIF_ERROR) fail(name, gif->Error);
        std::memcpy(&index[static_cast<size_t>(fy + y) * cw + fx], line.data(), static_cast<size_t>(fw));
      }
    }

    Decoded out;
    allocate(out.image, static_cast<int>(cw), static_cast<int>(ch), PilMode::L);
    out.image.pixels = std::move(index);
    const ColorMapObject* map = desc.ColorMap ? desc.ColorMap : gif->SColorMap;
    if (map && map->Colors) {
      // Pillow keeps a color table only if it is not the identity gray ramp (_is_palette_needed); without one the
      // frame is "L".
      bool needed = false;
      for (int i = 0; i < map->ColorCount && i < 256; ++i) {
        const GifColorType& c = map->Colors[i];
        if (c.Red != i || c.Green != i || c.Blue != i) needed = true;
      }
      if (needed) {
        out.image.mode = PilMode::P;
        out.image.palette = gray_palette();
        for (int i = 0; i < map->ColorCount && i < 256; ++i) {
          out.image.palette[3 * i] = map->Colors[i].Red;
          out.image.palette[3 * i + 1] = map->Colors[i].Green;
          out.image.palette[3 * i + 2] = map->Colors[i].Blue;
        }
      }
    }
    return out;
  }
}

}  // namespace zeroshot::image::detail
