// EXIF orientation, found the way Pillow's Image.getexif() finds it (used by ImageOps.exif_transpose).
#include <libexif/exif-data.h>

#include <cstring>
#include <memory>

#include "image/decode_internal.h"

namespace zeroshot::image::detail {

namespace {

// Orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block; -1 when the tag is absent, 0 when present
// but unusable (Pillow then gets a tuple or an odd type and does not transpose). Pillow's Exif.load() strips a leading
// "Exif\0\0" and parses the rest as TIFF; libexif wants that header, so it is put back when absent.
int exif_orientation(const std::vector<uint8_t>& exif) {
  static const uint8_t kHeader[6] = {'E', 'x', 'i', 'f', 0, 0};
  std::vector<uint8_t> buf;
  if (exif.size() < 6 || std::memcmp(exif.data(), kHeader, 6) != 0) {
    buf.assign(kHeader, kHeader + 6);
    buf.insert(buf.end(), exif.begin(), exif.end());
  } else {
    buf = exif;
  }
  if (buf.size() <= 6 + 8) return -1;  // no room for a TIFF header

  struct Unref {
    void operator()(ExifData* d) const { exif_data_unref(d); }
  };
  std::unique_ptr<ExifData, Unref> ed(exif_data_new());
  if (!ed) return -1;
  // Parse only: no "fixing" of the data (which could add a default orientation), no maker notes.
  exif_data_unset_option(ed.get(), EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
  exif_data_unset_option(ed.get(), EXIF_DATA_OPTION_IGNORE_UNKNOWN_TAGS);
  exif_data_set_option(ed.get(), EXIF_DATA_OPTION_DONT_CHANGE_MAKER_NOTE);
  exif_data_load_data(ed.get(), buf.data(), static_cast<unsigned int>(buf.size()));

  ExifEntry* e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
  if (!e) return -1;
  if (!e->data || e->components != 1) return 0;
  const ExifByteOrder order = exif_data_get_byte_order(ed.get());
  switch (e->format) {
    case EXIF_FORMAT_SHORT:
      if (e->size >= 2) return exif_get_short(e->data, order);
      break;
    case EXIF_FORMAT_SSHORT:
      if (e->size >= 2) return exif_get_sshort(e->data, order);
      break;
    case EXIF_FORMAT_LONG:
      if (e->size >= 4) return static_cast<int>(exif_get_long(e->data, order) & 0xffff);
      break;
    case EXIF_FORMAT_SLONG:
      if (e->size >= 4) return static_cast<int>(exif_get_slong(e->data, order));
      break;
    case EXIF_FORMAT_BYTE:
    case EXIF_FORMAT_SBYTE:
      if (e->size >= 1) return e->data[0];
      break;
    default: break;
  }
  return 0;
}

// Pillow: re.search(r'tiff:Orientation(="|>)([0-9])', xmp) -> int(match[2]).
int xmp_orientation(const std::string& xmp) {
  static const char kKey[] = "tiff:Orientation";
  const size_t n = sizeof(kKey) - 1;
  for (size_t pos = xmp.find(kKey); pos != std::string::npos; pos = xmp.find(kKey, pos + 1)) {
    size_t p = pos + n;
    if (p + 1 < xmp.size() && xmp[p] == '=' && xmp[p + 1] == '"') {
      p += 2;
    } else if (p < xmp.size() && xmp[p] == '>') {
      p += 1;
    } else {
      continue;
    }
    if (p < xmp.size() && xmp[p] >= '0' && xmp[p] <= '9') return xmp[p] - '0';
  }
  return 0;
}

}  // namespace

int find_orientation(const Decoded& d) {
  if (d.orientation >= 0) return d.orientation;
  int o = d.exif.empty() ? -1 : exif_orientation(d.exif);
  if (o < 0) o = d.xmp.empty() ? 0 : xmp_orientation(d.xmp);
  return o;
}

}  // namespace zeroshot::image::detail
