// ISO/IEC 14496-12 boxes and 23008-12 items, as far as needed to find declared image sizes (see heif_geometry.h).
// Field layouts follow libheif 1.15's parser (box.cc: iloc reads offset/length/base-offset sizes of 4 or 8 bytes
// only, extent indices only from version 2; heif_context.cc: grid and iovl data), so what is read here is what
// libheif would read.
#include "image/heif_geometry.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

namespace zeroshot::image::detail {

namespace {

constexpr uint32_t fourcc(const char (&s)[5]) {
  return (uint32_t{static_cast<uint8_t>(s[0])} << 24) | (uint32_t{static_cast<uint8_t>(s[1])} << 16) |
         (uint32_t{static_cast<uint8_t>(s[2])} << 8) | uint32_t{static_cast<uint8_t>(s[3])};
}

// Big-endian reads that turn to "failed" (and read zeros) past the end instead of reading out of bounds.
struct Cursor {
  const uint8_t* p;
  size_t n;
  size_t pos = 0;
  bool failed = false;

  uint64_t read(int bytes) {
    if (bytes < 0 || n - pos < static_cast<size_t>(bytes)) {
      failed = true;
      pos = n;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | p[pos++];
    return v;
  }
  // libheif's rule for iloc's variable fields: 4 or 8 bytes are read, any other size reads nothing and means 0.
  uint64_t read_sized(int bytes) { return bytes == 4 || bytes == 8 ? read(bytes) : 0; }
};

struct Span {
  const uint8_t* p;
  size_t n;
};

// Calls f(type, body) for each box in `s`. A box that claims more than what is left is cut to what is left (the
// reader sees at least what a lenient parser would); a header that does not fit ends the walk.
template <class F>
void for_each_box(Span s, F&& f) {
  size_t pos = 0;
  while (s.n - pos >= 8) {
    Cursor c{s.p + pos, s.n - pos};
    uint64_t size = c.read(4);
    const auto type = static_cast<uint32_t>(c.read(4));
    if (size == 1) {
      size = c.read(8);
      if (c.failed) return;
    } else if (size == 0) {
      size = s.n - pos;
    }
    if (size < c.pos) return;
    size = std::min<uint64_t>(size, s.n - pos);
    f(type, Span{s.p + pos + c.pos, static_cast<size_t>(size) - c.pos});
    pos += static_cast<size_t>(size);
  }
}

Span skip(Span s, size_t k) { return k <= s.n ? Span{s.p + k, s.n - k} : Span{s.p + s.n, 0}; }

struct Extent {
  uint64_t offset, length;
};
struct Location {
  int construction_method = 0;
  uint64_t base_offset = 0;
  std::vector<Extent> extents;
};

void parse_iloc(Span body, std::map<uint32_t, Location>& out) {
  Cursor c{body.p, body.n};
  const auto version = static_cast<int>(c.read(1));
  c.read(3);  // flags
  const auto sizes = static_cast<uint32_t>(c.read(2));
  const int offset_size = static_cast<int>((sizes >> 12) & 0xf);
  const int length_size = static_cast<int>((sizes >> 8) & 0xf);
  const int base_offset_size = static_cast<int>((sizes >> 4) & 0xf);
  const int index_size = version > 1 ? static_cast<int>(sizes & 0xf) : 0;
  const uint64_t items = c.read(version < 2 ? 2 : 4);
  // libheif's security limits (heif_limits.h): past them it refuses the file, so nothing more needs reading. They
  // also bound the work here: an extent of zero-size fields takes no bytes, so a 32 KB file can declare 65535 of
  // them per item for thousands of items (a fuzzer's file made 1.9 GB of them before this limit).
  constexpr uint64_t kMaxItems = 20000, kMaxExtentsPerItem = 32;
  if (items > kMaxItems) return;
  for (uint64_t i = 0; i < items && !c.failed; ++i) {
    Location loc;
    const auto id = static_cast<uint32_t>(c.read(version < 2 ? 2 : 4));
    if (version >= 1) loc.construction_method = static_cast<int>(c.read(2) & 0xf);
    c.read(2);  // data_reference_index
    loc.base_offset = c.read_sized(base_offset_size);
    const uint64_t extents = c.read(2);
    if (extents > kMaxExtentsPerItem) return;
    for (uint64_t e = 0; e < extents && !c.failed; ++e) {
      if (index_size > 0) c.read_sized(index_size);
      const uint64_t offset = c.read_sized(offset_size);
      const uint64_t length = c.read_sized(length_size);
      if (!c.failed) loc.extents.push_back({offset, length});
    }
    if (!c.failed) out.emplace(id, std::move(loc));
  }
}

// iinf as libheif reads it: no entries when the count is 0, else every infe box that follows (the count is not
// used to stop); for a repeated item ID the first entry counts (HeifFile's map insert). Versions 0 and 1 of infe
// carry no item type (0 here, which is no image type).
void parse_iinf(Span body, std::map<uint32_t, uint32_t>& types) {
  Cursor c{body.p, body.n};
  const auto version = static_cast<int>(c.read(1));
  c.read(3);
  const uint64_t count = c.read(version == 0 ? 2 : 4);
  if (c.failed || count == 0) return;
  for_each_box(skip(body, c.pos), [&](uint32_t type, Span infe) {
    if (type != fourcc("infe")) return;
    Cursor e{infe.p, infe.n};
    const auto v = static_cast<int>(e.read(1));
    e.read(3);
    const auto id = static_cast<uint32_t>(e.read(v == 3 ? 4 : 2));
    uint32_t item_type = 0;
    if (v >= 2) {
      e.read(2);  // item_protection_index
      item_type = static_cast<uint32_t>(e.read(4));
    }
    if (!e.failed) types.emplace(id, item_type);
  });
}

// The first `want` bytes of an item's data (fewer when the file holds fewer), gathered across its extents.
std::vector<uint8_t> item_head(const Location& loc, Span file, Span idat, size_t want) {
  const Span from = loc.construction_method == 0 ? file : loc.construction_method == 1 ? idat : Span{nullptr, 0};
  std::vector<uint8_t> out;
  for (const Extent& e : loc.extents) {
    if (out.size() >= want) break;
    const uint64_t start = e.offset + loc.base_offset;
    if (start < e.offset || start >= from.n) break;  // overflow, or outside what holds the data
    const uint64_t avail = std::min<uint64_t>(e.length, from.n - start);
    const auto take = static_cast<size_t>(std::min<uint64_t>(avail, want - out.size()));
    out.insert(out.end(), from.p + start, from.p + start + take);
    if (avail < e.length) break;
  }
  return out;
}

// Output size of grid data (ImageGrid::parse) or overlay data (ImageOverlay::parse): 16-bit fields, or 32-bit ones
// when bit 0 of the flags is set. False when the data is too short to hold it.
bool derived_size(uint32_t type, const std::vector<uint8_t>& d, uint32_t& w, uint32_t& h) {
  if (d.size() < 2) return false;
  const int field = (d[1] & 1) ? 4 : 2;
  const size_t at = type == fourcc("grid") ? 4 : 2 + 4 * 2;  // grid: after rows, columns; iovl: after 4 fill values
  if (d.size() < at + 2 * static_cast<size_t>(field)) return false;
  Cursor c{d.data() + at, static_cast<size_t>(2 * field)};
  w = static_cast<uint32_t>(c.read(field));
  h = static_cast<uint32_t>(c.read(field));
  return true;
}

// The first box of `type` in `s`, if any (libheif's get_child_box).
std::optional<Span> first_box(Span s, uint32_t type) {
  std::optional<Span> found;
  for_each_box(s, [&](uint32_t t, Span b) {
    if (t == type && !found) found = b;
  });
  return found;
}

// iref as libheif 1.15 reads it (Box_iref::parse): after the full-box header, references one after another, each a
// box header (whose size libheif does not use to skip), the from-item, a count and the to-items (16-bit IDs in
// version 0, 32-bit in version 1). Calls f(reference type, from, to) for each complete reference.
template <class F>
void for_each_reference(Span iref, F&& f) {
  Cursor c{iref.p, iref.n};
  const auto version = static_cast<int>(c.read(1));
  c.read(3);
  const int id_bytes = version == 0 ? 2 : 4;
  while (!c.failed && c.pos < c.n) {
    const uint64_t size = c.read(4);
    const auto type = static_cast<uint32_t>(c.read(4));
    if (size == 1) c.read(8);
    if (type == fourcc("uuid")) c.read(16);
    const auto from = static_cast<uint32_t>(c.read(id_bytes));
    const uint64_t count = c.read(2);
    for (uint64_t i = 0; i < count && !c.failed; ++i) {
      const auto to = static_cast<uint32_t>(c.read(id_bytes));
      if (!c.failed) f(type, from, to);
    }
  }
}

}  // namespace

std::vector<HeifDanglingReference> heif_dangling_references(const uint8_t* data, size_t size) {
  std::vector<HeifDanglingReference> out;
  const std::optional<Span> meta = first_box(Span{data, size}, fourcc("meta"));
  if (!meta) return out;
  const Span children = skip(*meta, 4);
  std::map<uint32_t, uint32_t> types;
  if (const auto iinf = first_box(children, fourcc("iinf"))) parse_iinf(*iinf, types);
  const auto iref = first_box(children, fourcc("iref"));
  if (!iref) return out;
  // libheif's item_type_is_image (heif_context.cc).
  const auto is_image = [&](uint32_t id) {
    const auto t = types.find(id);
    if (t == types.end()) return false;
    for (const uint32_t image :
         {fourcc("hvc1"), fourcc("grid"), fourcc("iden"), fourcc("iovl"), fourcc("av01"), fourcc("vvc1")})
      if (t->second == image) return true;
    return false;
  };
  for_each_reference(*iref, [&](uint32_t type, uint32_t from, uint32_t to) {
    if (type != fourcc("dimg") || is_image(to)) return;
    const auto t = types.find(from);
    if (t == types.end()) return;
    const char* derived = t->second == fourcc("grid")   ? "grid"
                          : t->second == fourcc("iden") ? "iden"
                          : t->second == fourcc("iovl") ? "iovl"
                                                        : nullptr;
    if (derived) out.push_back({derived, from, to});
  });
  return out;
}

std::vector<HeifDeclaredSize> heif_declared_sizes(const uint8_t* data, size_t size) {
  std::vector<HeifDeclaredSize> out;
  const Span file{data, size};
  for_each_box(file, [&](uint32_t type, Span meta) {
    if (type != fourcc("meta")) return;
    std::map<uint32_t, uint32_t> types;
    std::map<uint32_t, Location> locations;
    Span idat{nullptr, 0};
    for_each_box(skip(meta, 4), [&](uint32_t t, Span box) {  // meta is a full box: 4 bytes of version and flags
      if (t == fourcc("iinf")) parse_iinf(box, types);
      if (t == fourcc("iloc")) parse_iloc(box, locations);
      if (t == fourcc("idat") && idat.p == nullptr) idat = box;  // libheif reads the first
      if (t != fourcc("iprp")) return;
      for_each_box(box, [&](uint32_t t2, Span ipco) {
        if (t2 != fourcc("ipco")) return;
        for_each_box(ipco, [&](uint32_t t3, Span prop) {
          if (t3 != fourcc("ispe")) return;
          Cursor c{prop.p, prop.n};
          c.read(4);
          const auto w = static_cast<uint32_t>(c.read(4));
          const auto h = static_cast<uint32_t>(c.read(4));
          if (!c.failed) out.push_back({"image", w, h});
        });
      });
    });
    for (const auto& [id, item_type] : types) {
      if (item_type != fourcc("grid") && item_type != fourcc("iovl")) continue;
      const auto loc = locations.find(id);
      if (loc == locations.end()) continue;
      uint32_t w = 0, h = 0;
      if (derived_size(item_type, item_head(loc->second, file, idat, 2 + 4 * 2 + 2 * 4), w, h))
        out.push_back({item_type == fourcc("grid") ? "grid canvas" : "overlay canvas", w, h});
    }
  });
  return out;
}

}  // namespace zeroshot::image::detail
