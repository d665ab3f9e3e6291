// The packed weights file (docs/quantized-format.md, "The packed weights file"): the AVX-512 panels of every
// linear layer of a model at one precision (F32 or BF16), exactly as PackedLinear packs them at load, so that a
// later load maps them read-only instead of packing (no packing loop, no fresh anonymous pages to zero and fault).
//
// A cache that the engine writes and rewrites by itself (api/backend.h says where and when): the file records the
// format version, the fingerprint of the source weights (weights_fingerprint), the precision and the panel layout
// of this build and CPU (nn::packed_layout), and every layer's name, sizes and offset. Opening checks all of it and
// the file's size; the panel bytes themselves are trusted (reading 0.5 GB to check them would cost what the file
// saves): the file is only ever written whole (temp file + rename), so it holds what the writer packed.
// Thread safety: a PackedWeightsFile is immutable once opened; share it freely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nn/precision.h"
#include "util/mapped_file.h"

namespace zeroshot::models {

// "zeroshot-packed-f32.bin", "zeroshot-packed-bf16.bin": the file's name in a model folder.
std::string packed_weights_name(nn::Precision p);

// One layer's panels, as captured at load (LoaderOptions::packed_capture): `name` is the layer's weight names
// joined by '|' (q|k|v stacked), the panels are PackedLinear::panels() of a live layer at `prec`.
struct PackedRecord {
  std::string name;
  nn::Precision prec = nn::Precision::F32;
  int n = 0, k = 0;
  const uint8_t* panels = nullptr;
  size_t bytes = 0;
};

class PackedWeightsFile {
 public:
  // Maps `path` and checks it against the weights' fingerprint, the precision and this machine's panel layout.
  // Throws zeroshot::Error("<path>", why) when it cannot be used: missing, damaged (bad magic, header checksum,
  // truncated, an entry out of bounds or of the wrong size) or stale (another format version, other weights,
  // another layout). The caller decides what follows (the backends rebuild it).
  PackedWeightsFile(const std::string& path, const std::string& fingerprint, nn::Precision p);

  // The panels of layer `name` when the file holds it with exactly [n, k] (64-byte aligned, *bytes set), else null.
  const uint8_t* find(const std::string& name, int n, int k, size_t* bytes) const;
  nn::Precision precision() const { return prec_; }
  const std::string& path() const { return map_.path(); }
  size_t layers() const { return layers_.size(); }

 private:
  struct Entry {
    int n = 0, k = 0;
    uint64_t offset = 0, bytes = 0;
  };
  util::MappedFile map_;
  nn::Precision prec_;
  std::map<std::string, Entry> layers_;
};

// Writes the captured layers at precision `p` to `path` (layers at another precision, such as the f32 projections of
// a bf16 model, are left out: they are packed at load) atomically: the data goes to an unnamed (O_TMPFILE) or ".tmp"
// file in the same folder, which is renamed over `path` only when complete, so `path` is never seen half written, and a
// failure leaves nothing behind. Throws zeroshot::Error naming the path.
void write_packed_weights(const std::string& path, const std::string& fingerprint, nn::Precision p,
                          const std::vector<PackedRecord>& layers);

}  // namespace zeroshot::models
