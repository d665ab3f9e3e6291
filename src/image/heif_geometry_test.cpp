// HEIF files that libheif 1.15 mishandles, refused first by decode_heif through heif_geometry's box reader:
// decompression bombs through derived images (a grid or overlay canvas, or a hidden item's ispe, far larger than the
// primary image says: libheif allocated 3 bytes per canvas pixel, 2.7 GB for the overlay a fuzzer found) and derived
// images built from items that are not images (libheif asserts: abort). Hand-built files; the reader reports what the
// boxes say and never reads out of bounds on cut or damaged boxes, nor does any damaged file crash the decode.
#include "image/heif_geometry.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "image/image.h"
#include "support/alloc_watch.h"
#include "zeroshot/error.h"

using namespace zeroshot;
using namespace zeroshot::image;
using Bytes = std::vector<uint8_t>;

namespace {

// `bytes` big-endian bytes of v (zeros above its 8: the reserved fields run to 12 bytes).
Bytes be(uint64_t v, int bytes) {
  Bytes b;
  for (int i = bytes - 1; i >= 0; --i) b.push_back(i < 8 ? static_cast<uint8_t>(v >> (8 * i)) : 0);
  return b;
}
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
Bytes str(const std::string& s) { return Bytes(s.begin(), s.end()); }
Bytes box(const char* type, const Bytes& body) { return cat({be(8 + body.size(), 4), str(type), body}); }
Bytes full_box(const char* type, int version, int flags, const Bytes& body) {
  return box(type, cat({be(version, 1), be(flags, 3), body}));
}

// Overlay data (ImageOverlay): version 0, flags (bit 0: 32-bit fields), 4 fill values, the canvas size, an (x, y)
// offset per image it is built from.
Bytes iovl_data(uint32_t w, uint32_t h, size_t images = 1) {
  return cat({be(0, 1), be(1, 1), be(0, 8), be(w, 4), be(h, 4), Bytes(8 * images, 0)});
}
// Grid data (ImageGrid): version 0, flags 1 (32-bit fields), 1 row and 1 column, the canvas size.
Bytes grid_data(uint32_t w, uint32_t h) { return cat({be(0, 1), be(1, 1), be(0, 1), be(0, 1), be(w, 4), be(h, 4)}); }

// hvcC with no parameter sets (libheif parses it; libde265 then finds nothing to decode): version 1, Main profile,
// 4:2:0, 8 bits, 4-byte NAL lengths, no arrays.
Bytes hvcc() {
  return box("hvcC", cat({be(1, 1), be(1, 1), be(0x60000000, 4), be(0, 6), be(90, 1), be(0xf000, 2), be(0xfc, 1),
                          be(0xfd, 1), be(0xf8, 1), be(0xf8, 1), be(0, 2), be(0x0f, 1), be(0, 1)}));
}

// A 'heic' file: item 1 (the primary, of type `derived`) with `data` in idat, built ('dimg') from `refs` (by
// default item 2, a hidden 'hvc1' image with no coded data). Item 1's ispe says 64 x 64, item 2's tile_w x tile_h.
// Decoding it can only fail (there is nothing to decode), but libheif allocates the derived canvas first.
Bytes heif_file(const char* derived, const Bytes& data, uint32_t tile_w = 64, uint32_t tile_h = 64,
                const std::vector<uint16_t>& refs = {2}) {
  const Bytes hdlr = full_box("hdlr", 0, 0, cat({be(0, 4), str("pict"), be(0, 12), be(0, 1)}));
  const Bytes pitm = full_box("pitm", 0, 0, be(1, 2));
  const Bytes iinf = full_box("iinf", 0, 0,
                              cat({be(2, 2), full_box("infe", 2, 0, cat({be(1, 2), be(0, 2), str(derived), be(0, 1)})),
                                   full_box("infe", 2, 1, cat({be(2, 2), be(0, 2), str("hvc1"), be(0, 1)}))}));
  // Version 1: offset and length of 4 bytes, no base offset; item 1 in idat (construction method 1), item 2 empty.
  const Bytes iloc = full_box("iloc", 1, 0,
                              cat({be(0x4400, 2), be(2, 2),                                               //
                                   be(1, 2), be(1, 2), be(0, 2), be(1, 2), be(0, 4), be(data.size(), 4),  //
                                   be(2, 2), be(0, 2), be(0, 2), be(0, 2)}));
  const Bytes idat = box("idat", data);
  Bytes dimg = cat({be(1, 2), be(refs.size(), 2)});
  for (const uint16_t r : refs) dimg = cat({dimg, be(r, 2)});
  const Bytes iref = full_box("iref", 0, 0, box("dimg", dimg));
  const Bytes ipco = box("ipco", cat({full_box("ispe", 0, 0, cat({be(64, 4), be(64, 4)})),
                                      full_box("ispe", 0, 0, cat({be(tile_w, 4), be(tile_h, 4)})), hvcc()}));
  // Item 1 -> property 1; item 2 -> properties 2 and 3 (1-based indices, essential bit clear).
  const Bytes ipma =
      full_box("ipma", 0, 0, cat({be(2, 4), be(1, 2), be(1, 1), be(1, 1), be(2, 2), be(2, 1), be(2, 1), be(3, 1)}));
  const Bytes meta = full_box("meta", 0, 0, cat({hdlr, pitm, iinf, iloc, idat, iref, box("iprp", cat({ipco, ipma}))}));
  return cat({box("ftyp", cat({str("heic"), be(0, 4), str("mif1"), str("heic")})), meta});
}

std::string decode_error(const Bytes& file, const std::string& name, const DecodeOptions& opt = {}) {
  try {
    decode_memory(file.data(), file.size(), name, opt);
  } catch (const Error& e) {
    return e.what();
  }
  return "(decoded)";
}

}  // namespace

TEST(HeifGeometry, ReadsEverySizeTheFileDeclares) {
  const Bytes overlay = heif_file("iovl", iovl_data(30000, 20000), 640, 480);
  const auto sizes = detail::heif_declared_sizes(overlay.data(), overlay.size());
  EXPECT_TRUE(detail::heif_dangling_references(overlay.data(), overlay.size()).empty());
  ASSERT_EQ(sizes.size(), 3u);
  EXPECT_STREQ(sizes[0].what, "image");
  EXPECT_EQ(sizes[0].width, 64u);
  EXPECT_STREQ(sizes[1].what, "image");
  EXPECT_EQ(sizes[1].width, 640u);
  EXPECT_EQ(sizes[1].height, 480u);
  EXPECT_STREQ(sizes[2].what, "overlay canvas");
  EXPECT_EQ(sizes[2].width, 30000u);
  EXPECT_EQ(sizes[2].height, 20000u);

  const Bytes grid = heif_file("grid", grid_data(1234, 5678));
  const auto g = detail::heif_declared_sizes(grid.data(), grid.size());
  ASSERT_EQ(g.size(), 3u);
  EXPECT_STREQ(g[2].what, "grid canvas");
  EXPECT_EQ(g[2].width, 1234u);
  EXPECT_EQ(g[2].height, 5678u);
}

TEST(HeifGeometry, DerivedCanvasBombsAreRefusedBeforeDecoding) {
  // Each would have libheif allocate >= 1.2 GB (3 planes of 8 bits) before it finds there is nothing to decode.
  const struct {
    Bytes file;
    const char* expect;
  } cases[] = {
      {heif_file("iovl", iovl_data(30000, 30000)), "overlay.heic: HEIF: overlay canvas of 30000x30000 pixels"},
      {heif_file("grid", grid_data(20000, 20000)), "grid.heic: HEIF: grid canvas of 20000x20000 pixels"},
      {heif_file("grid", grid_data(64, 64), 20000, 20000), "tile.heic: HEIF: image of 20000x20000 pixels"},
  };
  for (const auto& c : cases) {
    const std::string name = std::string(c.expect).substr(0, std::string(c.expect).find(':'));
    const std::string msg = decode_error(c.file, name);
    EXPECT_EQ(msg.rfind(c.expect, 0), 0u) << msg;
    EXPECT_NE(msg.find("exceeds the limit of 100000000 pixels"), std::string::npos) << msg;
  }
}

TEST(HeifGeometry, TheLimitIsTheCallersAndSmallCanvasesAreLeftToLibheif) {
  const Bytes file = heif_file("iovl", iovl_data(3000, 3000));
  DecodeOptions small;
  small.max_pixels = 4'000'000;
  EXPECT_EQ(decode_error(file, "o.heic", small).rfind("o.heic: HEIF: overlay canvas of 3000x3000", 0), 0u);
  // Under the default limit the file goes to libheif, which refuses it for its own reason (no coded tile).
  const std::string msg = decode_error(file, "o.heic");
  EXPECT_EQ(msg.rfind("o.heic: HEIF: ", 0), 0u) << msg;
  EXPECT_EQ(msg.find("canvas"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(HeifGeometry, DerivedImagesOfMissingItemsAreRefused) {
  // Item 7 does not exist (libheif aborts on it in an overlay, and refuses it itself in a grid); item 1 is the grid
  // itself (a cycle, which Debian's libheif catches on its own).
  const Bytes missing = heif_file("iovl", iovl_data(64, 64, 2), 64, 64, {7, 2});
  const auto dangling = detail::heif_dangling_references(missing.data(), missing.size());
  ASSERT_EQ(dangling.size(), 1u);
  EXPECT_STREQ(dangling[0].derived, "iovl");
  EXPECT_EQ(dangling[0].item, 1u);
  EXPECT_EQ(dangling[0].missing, 7u);
  EXPECT_EQ(decode_error(missing, "m.heic"), "m.heic: HEIF: iovl item 1 is built from item 7, which is not an image");
  EXPECT_EQ(decode_error(heif_file("grid", grid_data(64, 64), 64, 64, {9}), "g.heic"),
            "g.heic: HEIF: grid item 1 is built from item 9, which is not an image");
  const Bytes cycle = heif_file("grid", grid_data(64, 64), 64, 64, {1});
  EXPECT_TRUE(detail::heif_dangling_references(cycle.data(), cycle.size()).empty());
  const std::string msg = decode_error(cycle, "c.heic");
  EXPECT_EQ(msg.rfind("c.heic: HEIF: ", 0), 0u) << msg;
}

// An iloc whose offset, length and base-offset fields are all 0 bytes wide: its extents take no bytes, so 1.6 KB
// declare 200 items of 65,535 extents each (libheif refuses more than 32 per item). Read as declared that was 13
// million extents, some 200 MB, 1 MB per item (a fuzzer's 32 KB file: 1.9 GB, 5 s); the reader now stops where
// libheif refuses, and no request reaches 64 KB.
TEST(HeifGeometry, ExtentsOfNoBytesAreNotCollected) {
  Bytes items;
  for (uint16_t id = 1; id <= 200; ++id) items = cat({items, be(id, 2), be(0, 2), be(0, 2), be(0xffff, 2)});
  const Bytes iloc = full_box("iloc", 1, 0, cat({be(0, 2), be(200, 2), items}));
  const Bytes file = cat({box("ftyp", cat({str("heic"), be(0, 4), str("mif1"), str("heic")})),
                          full_box("meta", 0, 0, cat({iloc, box("iprp", box("ipco", Bytes{}))}))});
  zeroshot::testing::AllocationWatch watch;
  const auto sizes = detail::heif_declared_sizes(file.data(), file.size());
  watch.stop();
  EXPECT_TRUE(sizes.empty());
  EXPECT_LT(watch.largest(), size_t{64} << 10);  // unbounded, each item's 65,535 extents took 1 MB
  const std::string msg = decode_error(file, "extents.heic");
  EXPECT_EQ(msg.rfind("extents.heic: HEIF: ", 0), 0u) << msg;
}

TEST(HeifGeometry, CutAndDamagedBoxesAreReadSafely) {
  // Under ASan this is the bounds check; everywhere it checks the reader never reports more than the file holds.
  const Bytes good = heif_file("iovl", iovl_data(30000, 30000), 640, 480);
  for (size_t n = 0; n <= good.size(); ++n) {
    const Bytes cut(good.begin(), good.begin() + static_cast<long>(n));
    EXPECT_LE(detail::heif_declared_sizes(cut.data(), cut.size()).size(), 3u);
  }
  std::mt19937 rng(11);
  for (int k = 0; k < 2000; ++k) {
    Bytes bad = good;
    for (int j = 0; j < 4; ++j) bad[rng() % bad.size()] = static_cast<uint8_t>(rng());
    (void)detail::heif_declared_sizes(bad.data(), bad.size());
    (void)detail::heif_dangling_references(bad.data(), bad.size());
    const std::string msg = decode_error(bad, "damaged.heic");
    EXPECT_EQ(msg.rfind("damaged.heic: ", 0), 0u) << msg;
  }
}
