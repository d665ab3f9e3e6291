// The image sizes a HEIF/AVIF file declares, read from its boxes without decoding anything, so that decode_heif can
// refuse a decompression bomb before libheif allocates for it.
//
// Why not libheif alone: libheif (1.15, Debian 12's) bounds each declared size only to 32768 per side, and it reads a
// 'grid' or 'iovl' (overlay) item's canvas size from the item's data at decode time, after any check a caller can
// make through its API (which exposes neither derived items nor hidden ones). A 5 KB file whose hidden overlay
// declares a 30000 x 30000 canvas made libheif allocate 2.7 GB. Nothing in libheif's public API lists these sizes,
// and no other well-kept library reads HEIF item data, hence this small reader.
//
// Lenient by design: it reports what it can read and skips what it cannot (libheif then reports the file's real
// error). Every 'meta' box, every 'ispe' property and every grid/iovl item it finds is reported, referenced or not,
// so a file cannot hide a size from it by being read differently. Thread-safe; no allocation beyond the result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace zeroshot::image::detail {

struct HeifDeclaredSize {
  const char* what;  // "image" (an ispe property), "grid canvas" or "overlay canvas" (an iovl item)
  uint32_t width, height;
};

std::vector<HeifDeclaredSize> heif_declared_sizes(const uint8_t* data, size_t size);

// A derived image (grid, iden, iovl) built ('dimg' reference) from an item that is not an image. libheif 1.15 looks
// the item up among the images and asserts that it is there: abort(), a crash of the whole process (a server
// included), found by feeding damaged files to it. Read from the boxes libheif reads (the first 'meta', its first
// 'iinf' and 'iref'); every reference of a derived item is checked, not only the first libheif would use.
struct HeifDanglingReference {
  const char* derived;  // "grid", "iden" or "iovl"
  uint32_t item, missing;
};

std::vector<HeifDanglingReference> heif_dangling_references(const uint8_t* data, size_t size);

}  // namespace zeroshot::image::detail
