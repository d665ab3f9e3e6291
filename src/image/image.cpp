// Format detection by magic bytes, the size guard, and EXIF transposition; the formats live in decode_*.cpp.
#include "image/image.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

#include <sys/mman.h>
#include <sys/stat.h>

#include "image/decode_internal.h"
#include "zeroshot/error.h"

namespace zeroshot::image {

namespace detail {

void check_size(int64_t width, int64_t height, const std::string& name, const DecodeOptions& opt) {
  if (width <= 0 || height <= 0)
    throw Error(name, "invalid image size " + std::to_string(width) + "x" + std::to_string(height));
  // Both are below 2^32 here in every caller, so the product cannot overflow 64 bits.
  const uint64_t pixels = static_cast<uint64_t>(width) * static_cast<uint64_t>(height);
  if (width > 0x7fffffff || height > 0x7fffffff || pixels > opt.max_pixels)
    throw Error(name, "image of " + std::to_string(width) + "x" + std::to_string(height) +
                          " pixels exceeds the limit of " + std::to_string(opt.max_pixels) +
                          " pixels (possible decompression bomb)");
}

void size_pixels(std::vector<uint8_t>& pixels, size_t n) {
  // A 12 MP photo's 36 MB come from a fresh mmap each time (glibc maps blocks over 32 MB), and faulting in its 9,000
  // zeroed 4 KB pages costs more CPU than the zero-fill and ~a quarter of the JPEG decode (measured: ~16 ms per
  // 36 MB buffer written once, ~6 ms with 2 MB pages). So the block is reserved first, untouched, and marked for
  // transparent huge pages (a no-op where THP is off) before resize() first touches it. The zero-fill itself stays
  // (~1.3 ms; std::vector cannot skip it).
  pixels.clear();
  pixels.reserve(n);
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  if (n >= 4 * kHuge) {
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(pixels.data()) + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(pixels.data()) + n) & ~(kHuge - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // advice only
  }
#endif
  pixels.resize(n);
}

void allocate(PilImage& img, int width, int height, PilMode mode) {
  img.width = width;
  img.height = height;
  img.mode = mode;
  size_pixels(img.pixels, static_cast<size_t>(width) * static_cast<size_t>(height) * bytes_per_pixel(mode));
}

std::vector<uint8_t> gray_palette() {
  std::vector<uint8_t> p(768);
  for (int i = 0; i < 256; ++i) p[3 * i] = p[3 * i + 1] = p[3 * i + 2] = static_cast<uint8_t>(i);
  return p;
}

PilImage apply_orientation(PilImage img, int orientation) {
  if (orientation < 2 || orientation > 8) return img;
  const int w = img.width, h = img.height;
  const bool swap = orientation >= 5;  // 5..8 transpose the axes
  const size_t bpp = static_cast<size_t>(bytes_per_pixel(img.mode));
  PilImage out;
  out.mode = img.mode;
  out.palette = std::move(img.palette);
  out.width = swap ? h : w;
  out.height = swap ? w : h;
  size_pixels(out.pixels, img.pixels.size());
  const uint8_t* src = img.pixels.data();
  uint8_t* dst = out.pixels.data();
  // Each of Pillow's Image.transpose methods maps output pixel (x, y) to a source pixel whose index is linear in x
  // and y: origin + x * step_x + y * step_y (in pixels). Tiles of 64 x 64 keep the strided side (a rotation reads
  // the source by columns) within the cache; a 12 MP phone photo is rotated on every import of a portrait shot.
  const int64_t sw = w, sh = h;
  const int64_t maps[7][3] = {
      // {origin, step_x, step_y} of orientations 2..8
      {sw - 1, -1, sw},         // 2 FLIP_LEFT_RIGHT
      {sh * sw - 1, -1, -sw},   // 3 ROTATE_180
      {(sh - 1) * sw, 1, -sw},  // 4 FLIP_TOP_BOTTOM
      {0, sw, 1},               // 5 TRANSPOSE
      {(sh - 1) * sw, -sw, 1},  // 6 ROTATE_270 (90 degrees clockwise)
      {sh * sw - 1, -sw, -1},   // 7 TRANSVERSE
      {sw - 1, sw, -1},         // 8 ROTATE_90 (90 degrees counter-clockwise)
  };
  const int64_t origin = maps[orientation - 2][0], step_x = maps[orientation - 2][1], step_y = maps[orientation - 2][2];
  // The pixel size is a compile-time constant in each instance so the copy is a plain load and store.
  auto run = [&]<size_t B>() {
    constexpr int kTile = 64;
    for (int ty = 0; ty < out.height; ty += kTile) {
      for (int tx = 0; tx < out.width; tx += kTile) {
        const int ye = std::min(ty + kTile, out.height), xe = std::min(tx + kTile, out.width);
        for (int y = ty; y < ye; ++y) {
          int64_t si = origin + int64_t{tx} * step_x + int64_t{y} * step_y;
          uint8_t* d = dst + (static_cast<size_t>(y) * out.width + tx) * B;
          for (int x = tx; x < xe; ++x, si += step_x, d += B) std::memcpy(d, src + static_cast<size_t>(si) * B, B);
        }
      }
    }
  };
  switch (bpp) {
    case 1: run.template operator()<1>(); break;
    case 2: run.template operator()<2>(); break;
    case 3: run.template operator()<3>(); break;
    default: run.template operator()<4>(); break;
  }
  return out;
}

}  // namespace detail

namespace {

bool starts_with(const uint8_t* data, size_t size, const char* magic, size_t n) {
  return size >= n && std::memcmp(data, magic, n) == 0;
}

enum class Isobmff { kNone, kHeif, kAvif };

// An ISO base media file ("....ftyp"): AVIF when its major or a compatible brand is avif/avis, HEIF when one is a
// HEIF image brand; AVIF wins when both appear (an AVIF file may list mif1 too).
Isobmff isobmff_kind(const uint8_t* data, size_t size) {
  if (size < 16 || std::memcmp(data + 4, "ftyp", 4) != 0) return Isobmff::kNone;
  const uint64_t box = (uint64_t{data[0]} << 24) | (uint64_t{data[1]} << 16) | (uint64_t{data[2]} << 8) | data[3];
  const size_t end = static_cast<size_t>(box < 16 ? std::min<uint64_t>(size, 64) : std::min<uint64_t>(box, size));
  bool heif = false;
  for (size_t at = 8; at + 4 <= end; at += 4) {
    if (at == 12) continue;  // minor version
    const char* b = reinterpret_cast<const char*>(data + at);
    if (std::memcmp(b, "avif", 4) == 0 || std::memcmp(b, "avis", 4) == 0) return Isobmff::kAvif;
    for (const char* brand : {"heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1"})
      if (std::memcmp(b, brand, 4) == 0) heif = true;
  }
  return heif ? Isobmff::kHeif : Isobmff::kNone;
}

// The image as stored and the orientation exif_transpose would apply (1 when none).
std::pair<PilImage, int> decode_stored(const uint8_t* data, size_t size, const std::string& name,
                                       const DecodeOptions& opt) {
  detail::Decoded d;
  if (starts_with(data, size, "\xFF\xD8\xFF", 3)) {
    d = detail::decode_jpeg(data, size, name, opt);
  } else if (starts_with(data, size, "\x89PNG\r\n\x1A\n", 8)) {
    d = detail::decode_png(data, size, name, opt);
  } else if (starts_with(data, size, "GIF87a", 6) || starts_with(data, size, "GIF89a", 6)) {
    d = detail::decode_gif(data, size, name, opt);
  } else if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0) {
    d = detail::decode_webp(data, size, name, opt);
  } else if (starts_with(data, size, "BM", 2)) {
    d = detail::decode_bmp(data, size, name, opt);
  } else if (starts_with(data, size, "II*\0", 4) || starts_with(data, size, "MM\0*", 4) ||
             starts_with(data, size, "II+\0", 4) || starts_with(data, size, "MM\0+", 4)) {
    d = detail::decode_tiff(data, size, name, opt);
  } else if (const Isobmff kind = isobmff_kind(data, size); kind != Isobmff::kNone) {
    d = kind == Isobmff::kAvif ? detail::decode_avif(data, size, name, opt)
                               : detail::decode_heif(data, size, name, opt);
  } else {
    throw Error(name, "not a JPEG, PNG, WebP, GIF, BMP, TIFF, HEIF or AVIF file");
  }
  const int o = detail::find_orientation(d);
  return {std::move(d.image), o >= 2 && o <= 8 ? o : 1};
}

PilImage decode_by_magic(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt) {
  auto [image, orientation] = decode_stored(data, size, name, opt);
  return detail::apply_orientation(std::move(image), orientation);
}

}  // namespace

PilImage decode_native_memory(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt) {
  if (size == 0) throw Error(name, "empty file");
  try {
    return decode_by_magic(data, size, name, opt);
  } catch (const std::bad_alloc&) {
    throw Error(name, "out of memory while decoding");
  }
}

StoredRgbImage decode_memory_stored(const uint8_t* data, size_t size, const std::string& name,
                                    const DecodeOptions& opt) {
  if (size == 0) throw Error(name, "empty file");
  try {
    auto [image, orientation] = decode_stored(data, size, name, opt);
    return {to_rgb(std::move(image)), orientation};  // convert("RGB") is per pixel: it commutes with the transpose
  } catch (const std::bad_alloc&) {
    throw Error(name, "out of memory while decoding");
  }
}

RgbImage decode_memory(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& opt) {
  PilImage native = decode_native_memory(data, size, name, opt);
  try {
    return to_rgb(std::move(native));
  } catch (const std::bad_alloc&) {
    throw Error(name, "out of memory while decoding");
  }
}

std::vector<uint8_t> detail::read_file(const std::string& path) {
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error(path, std::string("cannot open: ") + std::strerror(errno));
  std::vector<uint8_t> bytes;
  struct stat st {};
  if (fstat(fileno(f.get()), &st) == 0) {
    if (S_ISDIR(st.st_mode)) throw Error(path, "is a directory");
    if (S_ISREG(st.st_mode) && st.st_size > 0) bytes.reserve(static_cast<size_t>(st.st_size));
  }
  uint8_t buf[1 << 16];
  for (;;) {
    const size_t n = std::fread(buf, 1, sizeof buf, f.get());
    bytes.insert(bytes.end(), buf, buf + n);
    if (n < sizeof buf) break;
  }
  if (std::ferror(f.get())) throw Error(path, std::string("read error: ") + std::strerror(errno));
  return bytes;
}

RgbImage decode_file(const std::string& path, const DecodeOptions& opt) {
  const std::vector<uint8_t> bytes = detail::read_file(path);
  return decode_memory(bytes.data(), bytes.size(), path, opt);
}

StoredRgbImage decode_file_stored(const std::string& path, const DecodeOptions& opt) {
  const std::vector<uint8_t> bytes = detail::read_file(path);
  return decode_memory_stored(bytes.data(), bytes.size(), path, opt);
}

PilImage decode_native_file(const std::string& path, const DecodeOptions& opt) {
  const std::vector<uint8_t> bytes = detail::read_file(path);
  return decode_native_memory(bytes.data(), bytes.size(), path, opt);
}

bool has_image_extension(const std::string& path) {
  const size_t dot = path.find_last_of('.');
  const size_t slash = path.find_last_of("/\\");
  // A name that only starts with a dot (".tiff") has no extension, as Python's os.path.splitext says.
  const size_t start = slash == std::string::npos ? 0 : slash + 1;
  if (dot == std::string::npos || dot <= start) return false;
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == "jpg" || ext == "jpeg" || ext == "png" || ext == "webp" || ext == "gif" || ext == "bmp" ||
         ext == "tif" || ext == "tiff" || ext == "heic" || ext == "heif" || ext == "avif";
}

}  // namespace zeroshot::image
