// TIFF through libtiff, into the mode Pillow 9.4's TiffImagePlugin gives (its OPEN_INFO table): the first page
// (IFD 0), strips or tiles, contiguous or separate planes, any compression libtiff decodes (none, LZW, deflate,
// PackBits, JPEG, ...). Pillow itself decodes uncompressed files and hands compressed ones to libtiff; both give
// the image libtiff gives, so libtiff decodes every file here and only the mode mapping follows Pillow:
//   1-bit gray -> "1"; 2/4/8-bit gray -> L (min-is-white inverted); 16-bit gray -> "I;16", held as I (Pillow 9.4's
//   convert("RGB") clips it to 0..255, as I); signed 16 / 32-bit integer gray -> I; gray + alpha -> LA;
//   RGB -> RGB; RGB + unassociated or unspecified-but-missing alpha -> RGBA; RGB + associated alpha -> RGBA
//   un-premultiplied with Pillow's "RGBa" unpacker; RGB + unspecified extra sample -> RGBX, held as RGB;
//   16-bit RGB(A) -> the high byte of each sample; palette (1/2/4/8-bit) -> P with the colormap's high bytes;
//   8-bit CMYK -> CMYK; YCbCr JPEG -> RGB (libjpeg's conversion, JPEGCOLORMODE_RGB, as Pillow asks libtiff).
// Refused (Pillow reads some of them, but into modes this engine does not hold): float samples, LAB, YCbCr that is
// not JPEG-compressed, palette + alpha, 16-bit CMYK and other layouts outside the table.
// The orientation is tag 0x0112 of IFD 0, applied once, as current Pillow does (it transposes a TIFF when it loads
// it and drops the tag; Pillow 9.4 kept the tag, so ImageOps.exif_transpose applied it a second time).
//
// libtiff reports errors through a handler: one per TIFF here (TIFFClientOpenExt, libtiff >= 4.5) keeps the first
// message for the Error and prints nothing; warnings are dropped. Sizes are checked before any strip or tile
// buffer is allocated, and libtiff's own allocations are capped at the pixel limit's worth of bytes.
#include <tiffio.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "image/decode_internal.h"

namespace zeroshot::image::detail {

namespace {

struct MemFile {
  const uint8_t* data;
  size_t size;
  uint64_t pos = 0;
  std::string first_error;
};

tmsize_t mem_read(thandle_t h, void* buf, tmsize_t n) {
  auto* m = static_cast<MemFile*>(h);
  if (n <= 0 || m->pos >= m->size) return 0;
  const size_t k = std::min<uint64_t>(static_cast<uint64_t>(n), m->size - m->pos);
  std::memcpy(buf, m->data + m->pos, k);
  m->pos += k;
  return static_cast<tmsize_t>(k);
}
tmsize_t mem_write(thandle_t, void*, tmsize_t) { return -1; }
toff_t mem_seek(thandle_t h, toff_t off, int whence) {
  auto* m = static_cast<MemFile*>(h);
  uint64_t base = 0;
  if (whence == SEEK_CUR) base = m->pos;
  if (whence == SEEK_END) base = m->size;
  // toff_t is unsigned: a negative offset arrives as a huge value and wraps, which is what libtiff means by it.
  m->pos = base + off;
  return m->pos;
}
int mem_close(thandle_t) { return 0; }
toff_t mem_size(thandle_t h) { return static_cast<MemFile*>(h)->size; }
int mem_map(thandle_t, void**, toff_t*) { return 0; }
void mem_unmap(thandle_t, void*, toff_t) {}

int on_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  auto* m = static_cast<MemFile*>(user);
  if (m->first_error.empty()) {
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    m->first_error = buf;
    for (char& c : m->first_error)
      if (c == '\n' || c == '\r') c = ' ';
    if (m->first_error.empty() && module) m->first_error = module;
  }
  return 1;  // handled: libtiff prints nothing
}
int on_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

struct TiffCloser {
  void operator()(TIFF* t) const { TIFFClose(t); }
};
struct OptionsFree {
  void operator()(TIFFOpenOptions* o) const { TIFFOpenOptionsFree(o); }
};

// What the first page holds, as its tags say.
struct Layout {
  uint32_t width = 0, height = 0;
  uint16_t spp = 1, bps = 1, photometric = 0, planar = PLANARCONFIG_CONTIG, sample_format = SAMPLEFORMAT_UINT;
  uint16_t compression = COMPRESSION_NONE;
  std::vector<uint16_t> extra;  // ExtraSamples values
};

[[noreturn]] void fail(const std::string& name, const MemFile& m, const std::string& what) {
  throw Error(name, "TIFF: " + what + (m.first_error.empty() ? "" : " (" + m.first_error + ")"));
}

// The decoded samples of the whole page, contiguous: `height` rows of `row_bytes` (spp samples of bps bits per
// pixel, rows padded to a byte, 16-bit samples native-endian as libtiff hands them out).
std::vector<uint8_t> read_samples(TIFF* tif, const Layout& l, const std::string& name, const MemFile& m,
                                  size_t& row_bytes) {
  const size_t planes = l.planar == PLANARCONFIG_SEPARATE ? l.spp : 1;
  const size_t plane_spp = planes == 1 ? l.spp : 1;
  const size_t plane_row = (static_cast<size_t>(l.width) * plane_spp * l.bps + 7) / 8;
  row_bytes = (static_cast<size_t>(l.width) * l.spp * l.bps + 7) / 8;
  if (planes > 1 && l.bps % 8 != 0) fail(name, m, "separate planes of " + std::to_string(l.bps) + "-bit samples");
  std::vector<uint8_t> plane(plane_row * l.height);
  std::vector<uint8_t> out(planes == 1 ? 0 : row_bytes * l.height);

  const bool tiled = TIFFIsTiled(tif) != 0;
  uint32_t tw = l.width, th = 0;
  if (tiled) {
    if (!TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw) || !TIFFGetField(tif, TIFFTAG_TILELENGTH, &th) || tw == 0 || th == 0)
      fail(name, m, "missing or zero tile size");
  } else {
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &th);
    th = std::min(std::max<uint32_t>(th, 1), l.height);
  }
  // A strip never holds more than the page; a tile may overhang it (512 x 512 tiles on a small image), but one far
  // larger than both the page and 4 Mpx is a bomb (its buffer would be allocated before anything is decoded).
  if (static_cast<uint64_t>(tw) * th > std::max<uint64_t>(4 * static_cast<uint64_t>(l.width) * l.height, 1u << 22))
    fail(name, m, "tile or strip of " + std::to_string(tw) + "x" + std::to_string(th) + " pixels is too large");
  const tmsize_t chunk_size = tiled ? TIFFTileSize(tif) : TIFFStripSize(tif);
  if (chunk_size <= 0) fail(name, m, "invalid strip or tile size");
  const size_t chunk_row = tiled ? static_cast<size_t>(TIFFTileRowSize(tif)) : plane_row;
  if (chunk_row == 0 || chunk_row * th > static_cast<size_t>(chunk_size)) fail(name, m, "inconsistent tile size");
  std::vector<uint8_t> chunk(static_cast<size_t>(chunk_size));

  const size_t bits_per_pixel = plane_spp * l.bps;
  for (size_t p = 0; p < planes; ++p) {
    for (uint32_t y0 = 0; y0 < l.height; y0 += th) {
      for (uint32_t x0 = 0; x0 < l.width; x0 += tw) {
        const uint32_t index = tiled ? TIFFComputeTile(tif, x0, y0, 0, static_cast<uint16_t>(p))
                                     : TIFFComputeStrip(tif, y0, static_cast<uint16_t>(p));
        // A strip or tile past the end of the file: libtiff would decode what is there and leave the rest blank;
        // Pillow refuses a truncated file, and so does this.
        const uint64_t offset = TIFFGetStrileOffset(tif, index), count = TIFFGetStrileByteCount(tif, index);
        if (count > m.size || offset > m.size - count) fail(name, m, "truncated file (image data past its end)");
        tmsize_t got;
        if (tiled) {
          got = TIFFReadEncodedTile(tif, index, chunk.data(), chunk_size);
        } else {
          got = TIFFReadEncodedStrip(tif, index, chunk.data(), chunk_size);
        }
        if (got < 0) fail(name, m, "cannot decode the image data");
        const uint32_t rows = std::min(th, l.height - y0);
        const uint32_t cols = std::min(tw, l.width - x0);
        // Tile widths are multiples of 16, so x0 starts on a byte for every bit depth.
        const size_t x_byte = x0 * bits_per_pixel / 8;
        const size_t n_bytes = (cols * bits_per_pixel + 7) / 8;
        for (uint32_t r = 0; r < rows; ++r) {
          if ((r + 1) * chunk_row > static_cast<size_t>(got) && !tiled) {
            fail(name, m, "strip " + std::to_string(y0 / th) + " is short");
          }
          std::memcpy(&plane[(y0 + r) * plane_row + x_byte], &chunk[r * chunk_row], n_bytes);
        }
      }
    }
    if (planes == 1) return plane;
    // Interleave plane p into the contiguous layout (8- or 16-bit samples here).
    const size_t bs = l.bps / 8;
    for (size_t y = 0; y < l.height; ++y)
      for (size_t x = 0; x < l.width; ++x)
        std::memcpy(&out[y * row_bytes + (x * l.spp + p) * bs], &plane[y * plane_row + x * bs], bs);
  }
  return out;
}

// Sample `i` of a row of `bits`-bit samples (1, 2, 4, 8), most significant bits first (libtiff's FillOrder is
// already undone).
inline unsigned packed_sample(const uint8_t* row, size_t i, int bits) {
  if (bits == 8) return row[i];
  const size_t bit = i * bits;
  return (row[bit / 8] >> (8 - bits - bit % 8)) & ((1u << bits) - 1);
}

inline uint16_t u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace

Decoded decode_tiff(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt) {
  MemFile m{data, size, 0, {}};
  std::unique_ptr<TIFFOpenOptions, OptionsFree> options(TIFFOpenOptionsAlloc());
  if (!options) throw Error(name, "TIFF: out of memory");
  TIFFOpenOptionsSetErrorHandlerExtR(options.get(), on_error, &m);
  TIFFOpenOptionsSetWarningHandlerExtR(options.get(), on_warning, &m);
  // libtiff's single allocations (strip offsets, decoder state) stay within the pixel limit's worth of RGBA.
  TIFFOpenOptionsSetMaxSingleMemAlloc(
      options.get(), static_cast<tmsize_t>(std::min<uint64_t>(opt.max_pixels, uint64_t{1} << 37) * 8 + (1u << 20)));
  // "m": no memory mapping (the procs above do not map).
  std::unique_ptr<TIFF, TiffCloser> tif(TIFFClientOpenExt(name.c_str(), "rm", &m, mem_read, mem_write, mem_seek,
                                                          mem_close, mem_size, mem_map, mem_unmap, options.get()));
  if (!tif) fail(name, m, "invalid or truncated file");
  TIFF* t = tif.get();

  Layout l;
  if (!TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &l.width) || !TIFFGetField(t, TIFFTAG_IMAGELENGTH, &l.height))
    fail(name, m, "missing image size");
  check_size(l.width, l.height, name, opt);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &l.spp);
  TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &l.bps);
  TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &l.planar);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &l.sample_format);
  TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &l.compression);
  if (!TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &l.photometric)) fail(name, m, "missing PhotometricInterpretation");
  {
    uint16_t n = 0;
    uint16_t* v = nullptr;
    if (TIFFGetField(t, TIFFTAG_EXTRASAMPLES, &n, &v) && v) l.extra.assign(v, v + n);
  }
  Decoded out;
  {
    uint16_t o = 0;
    if (TIFFGetField(t, TIFFTAG_ORIENTATION, &o)) out.orientation = o;
  }

  const uint16_t ph = l.photometric, bps = l.bps, spp = l.spp;
  const bool uint_samples = l.sample_format == SAMPLEFORMAT_UINT;
  const std::string layout = "photometric " + std::to_string(ph) + ", " + std::to_string(spp) + " samples of " +
                             std::to_string(bps) + " bits, sample format " + std::to_string(l.sample_format);
  auto unsupported = [&]() { fail(name, m, "unsupported sample layout (" + layout + ")"); };
  if (spp == 0 || spp > 8 || (bps != 1 && bps != 2 && bps != 4 && bps != 8 && bps != 16 && bps != 32)) unsupported();
  if (ph == PHOTOMETRIC_YCBCR) {
    if (l.compression != COMPRESSION_JPEG || spp != 3 || bps != 8) unsupported();
    // libjpeg converts to RGB, as Pillow's TiffDecode.c asks; the data then reads as 8-bit RGB.
    if (!TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB)) fail(name, m, "cannot set up JPEG decoding");
  }
  const size_t extras = l.extra.size();
  const uint16_t first_extra = extras ? l.extra[0] : 0;

  // Pick the mode (Pillow's OPEN_INFO) before reading any pixel data.
  PilMode mode;
  enum class Unpack {
    kGray,
    kGrayInv,
    kGray16,
    kGrayS16,
    kGray32,
    kLA,
    kRGB,
    kRGBA,
    kRGBa,
    kRGB16,
    kRGBA16,
    kRGBa16,
    kPalette,
    kCMYK
  } unpack;
  const bool gray = ph == PHOTOMETRIC_MINISBLACK || ph == PHOTOMETRIC_MINISWHITE;
  if (gray && spp == 1 && uint_samples && bps <= 8) {
    mode = bps == 1 ? PilMode::k1 : PilMode::L;
    unpack = ph == PHOTOMETRIC_MINISWHITE ? Unpack::kGrayInv : Unpack::kGray;
  } else if (ph == PHOTOMETRIC_MINISBLACK && spp == 1 && bps == 16 && uint_samples) {
    mode = PilMode::I, unpack = Unpack::kGray16;
  } else if (ph == PHOTOMETRIC_MINISBLACK && spp == 1 && bps == 16 && l.sample_format == SAMPLEFORMAT_INT) {
    mode = PilMode::I, unpack = Unpack::kGrayS16;
  } else if (ph == PHOTOMETRIC_MINISBLACK && spp == 1 && bps == 32 &&
             (uint_samples || l.sample_format == SAMPLEFORMAT_INT)) {
    mode = PilMode::I, unpack = Unpack::kGray32;  // Pillow: I;32N / I;32S, both read as int32
  } else if (ph == PHOTOMETRIC_MINISBLACK && spp == 2 && bps == 8 && uint_samples && extras == 1 &&
             first_extra == EXTRASAMPLE_UNASSALPHA) {
    mode = PilMode::LA, unpack = Unpack::kLA;
  } else if ((ph == PHOTOMETRIC_RGB || ph == PHOTOMETRIC_YCBCR) && uint_samples && (bps == 8 || bps == 16) &&
             spp >= 3 && spp == 3 + extras + ((spp == 4 && extras == 0) ? 1 : 0) && (bps == 8 || extras <= 1)) {
    // (spp == 4 without ExtraSamples is Pillow's "missing ExtraSamples" RGBA.)
    const bool has4 = spp >= 4;
    const uint16_t e = extras ? first_extra : (has4 ? EXTRASAMPLE_UNASSALPHA : 0);
    for (size_t i = 1; i < extras; ++i)
      if (l.extra[i] != EXTRASAMPLE_UNSPECIFIED) unsupported();
    if (!has4 || e == EXTRASAMPLE_UNSPECIFIED) {
      mode = PilMode::RGB, unpack = bps == 8 ? Unpack::kRGB : Unpack::kRGB16;
    } else if (e == EXTRASAMPLE_ASSOCALPHA) {
      mode = PilMode::RGBA, unpack = bps == 8 ? Unpack::kRGBa : Unpack::kRGBa16;
    } else if (e == EXTRASAMPLE_UNASSALPHA || (e == 999 && spp == 4 && bps == 8)) {  // 999: Corel Draw 10
      mode = PilMode::RGBA, unpack = bps == 8 ? Unpack::kRGBA : Unpack::kRGBA16;
    } else {
      unsupported();
    }
  } else if (ph == PHOTOMETRIC_PALETTE && spp == 1 && bps <= 8 && uint_samples) {
    mode = PilMode::P, unpack = Unpack::kPalette;
  } else if (ph == PHOTOMETRIC_SEPARATED && bps == 8 && uint_samples && spp >= 4 && spp <= 6 && spp == 4 + extras) {
    mode = PilMode::CMYK, unpack = Unpack::kCMYK;
    uint16_t inkset = INKSET_CMYK;
    TIFFGetFieldDefaulted(t, TIFFTAG_INKSET, &inkset);
    if (inkset != INKSET_CMYK) unsupported();
  } else {
    unsupported();
  }

  if (mode == PilMode::P) {
    uint16_t *r = nullptr, *g = nullptr, *b = nullptr;
    if (!TIFFGetField(t, TIFFTAG_COLORMAP, &r, &g, &b) || !r || !g || !b)
      fail(name, m, "palette image without a colormap");
    // Pillow: the colormap's 2^bps entries, each value // 256; entries past them keep the gray default.
    out.image.palette = gray_palette();
    for (size_t i = 0; i < (size_t{1} << bps); ++i) {
      out.image.palette[3 * i] = static_cast<uint8_t>(r[i] >> 8);
      out.image.palette[3 * i + 1] = static_cast<uint8_t>(g[i] >> 8);
      out.image.palette[3 * i + 2] = static_cast<uint8_t>(b[i] >> 8);
    }
  }

  size_t row_bytes = 0;
  const std::vector<uint8_t> raw = read_samples(t, l, name, m, row_bytes);
  std::vector<uint8_t> palette = std::move(out.image.palette);
  allocate(out.image, static_cast<int>(l.width), static_cast<int>(l.height), mode);
  out.image.palette = std::move(palette);
  const size_t w = l.width;
  const size_t bs = bps / 8;  // bytes per sample for 8/16/32-bit layouts
  for (size_t y = 0; y < l.height; ++y) {
    const uint8_t* row = &raw[y * row_bytes];
    uint8_t* o = &out.image.pixels[y * w * bytes_per_pixel(mode)];
    switch (unpack) {
      case Unpack::kGray:
      case Unpack::kGrayInv: {
        const unsigned max = (1u << bps) - 1;
        const bool inv = unpack == Unpack::kGrayInv;
        for (size_t x = 0; x < w; ++x) {
          unsigned v = packed_sample(row, x, bps);
          if (inv) v = max - v;
          // Pillow's L;2 / L;4 unpackers scale to 0..255 (v * 255 / max); mode "1" holds 0 or 255.
          o[x] = static_cast<uint8_t>(v * 255 / max);
        }
        break;
      }
      case Unpack::kGray16:
      case Unpack::kGrayS16:
        for (size_t x = 0; x < w; ++x) {
          const uint16_t u = u16(row + 2 * x);
          const int32_t v = unpack == Unpack::kGray16 ? static_cast<int32_t>(u) : static_cast<int16_t>(u);
          std::memcpy(o + 4 * x, &v, 4);
        }
        break;
      case Unpack::kGray32: std::memcpy(o, row, 4 * w); break;
      case Unpack::kLA: std::memcpy(o, row, 2 * w); break;
      case Unpack::kRGB:
        for (size_t x = 0; x < w; ++x) std::memcpy(o + 3 * x, row + spp * x, 3);
        break;
      case Unpack::kRGBA:
        for (size_t x = 0; x < w; ++x) std::memcpy(o + 4 * x, row + spp * x, 4);
        break;
      case Unpack::kRGBa:
      case Unpack::kRGBa16:
        for (size_t x = 0; x < w; ++x) {
          uint8_t px[4];
          for (int c = 0; c < 4; ++c)
            px[c] =
                unpack == Unpack::kRGBa ? row[spp * x + c] : static_cast<uint8_t>(u16(row + 2 * (spp * x + c)) >> 8);
          // Pillow's unpackRGBa: a == 0 -> all zero; a == 255 -> as is; else each color * 255 / a, clipped.
          const unsigned a = px[3];
          for (int c = 0; c < 3; ++c)
            o[4 * x + c] = a == 0 ? 0 : (a == 255 ? px[c] : static_cast<uint8_t>(std::min(255u, px[c] * 255u / a)));
          o[4 * x + 3] = px[3];
        }
        break;
      case Unpack::kRGB16:
        for (size_t x = 0; x < w; ++x)
          for (int c = 0; c < 3; ++c) o[3 * x + c] = static_cast<uint8_t>(u16(row + bs * (spp * x + c)) >> 8);
        break;
      case Unpack::kRGBA16:
        for (size_t x = 0; x < w; ++x)
          for (int c = 0; c < 4; ++c) o[4 * x + c] = static_cast<uint8_t>(u16(row + bs * (spp * x + c)) >> 8);
        break;
      case Unpack::kPalette:
        for (size_t x = 0; x < w; ++x) o[x] = static_cast<uint8_t>(packed_sample(row, x, bps));
        break;
      case Unpack::kCMYK:
        for (size_t x = 0; x < w; ++x) std::memcpy(o + 4 * x, row + spp * x, 4);
        break;
    }
  }
  return out;
}

}  // namespace zeroshot::image::detail
