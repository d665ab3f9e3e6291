// The packed weights file (docs/quantized-format.md, "The packed weights file"): the AVX-512 panels of every
// linear layer of a model at one precision (F32, BF16 or Int8: the panels and their column scales and sums),
// exactly as PackedLinear packs them at load, so that a
// later load maps them read-only instead of packing (no packing loop, no fresh anonymous pages to zero and fault).
//
// A cache that the engine writes and rewrites by itself (api/backend.h says where and when): the file records the
// format version, the fingerprint of the source weights (weights_fingerprint), the precision and the panel layout
// of this build and CPU (nn::packed_layout), the paths of the source weight files (not checked at open: they let
// `zeroshot cache` and the writer tell a file whose source changed or vanished), and every layer's name, sizes and
// offset. Opening checks all of it (but the paths) and
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

// What a packed weights file says about itself, read from its header alone (the panels are not touched), for the
// cache's listing and pruning: no check against this build's precision or layout is made here.
struct PackedWeightsHeader {
  uint32_t version = 0;
  std::string identity;              // the source identity: weights fingerprint + source_identity()
  std::string precision, layout;     // as written ("f32", "bf16", "int8"; nn::packed_layout of the writer)
  std::vector<std::string> sources;  // absolute paths of the source weight files, in source_identity()'s order
  uint64_t size = 0;                 // the file's size
};
// Throws zeroshot::Error("<path>", why) for a file that is unreadable, damaged (as the constructor above says) or of
// another format version ("stale packed weights file (format version 1, this build reads 2)").
PackedWeightsHeader read_packed_weights_header(const std::string& path);

// ";<size>@<mtime seconds>.<nanoseconds>" for each file, in order: the part of the identity that a weights file
// edited in place changes even where the fingerprint's samples miss the edit. False when a file cannot be stat'ed.
bool source_identity(const std::vector<std::string>& files, std::string* out);

// Writes the captured layers at precision `p` to `path` (layers at another precision, such as the f32 projections of
// a bf16 model, are left out: they are packed at load) atomically: the data goes to an unnamed (O_TMPFILE) or ".tmp"
// file in the same folder, which is renamed over `path` only when complete, so `path` is never seen half written, and a
// failure leaves nothing behind. Throws zeroshot::Error naming the path.
// `sources`: the source weight files (absolute paths), recorded for read_packed_weights_header.
void write_packed_weights(const std::string& path, const std::string& fingerprint, nn::Precision p,
                          const std::vector<PackedRecord>& layers, const std::vector<std::string>& sources = {});

// The file's name in the cache: "<fingerprint's 16 hex digits>-<8 hex digits>-<f32|bf16|int8>.bin", the middle part a
// hash of the source files' paths (sorted). Two model folders holding the same weights (a copy, a second download)
// get one file each: one shared name made each folder's load find the other's file stale (its source identity
// differs) and rewrite it, every time the two were used in turn.
std::string packed_weights_cache_name(const std::string& fingerprint, std::vector<std::string> sources,
                                      nn::Precision p);

// True for the names the cache gives packed weights files: packed_weights_cache_name's, and the
// "<16 hex digits>-<f32|bf16|int8>.bin" of earlier versions (still listed and pruned by `zeroshot cache`, and removed
// by remove_superseded_packed_weights once a file for the same sources is written).
bool is_packed_weights_cache_name(const std::string& file_name);

// After `written` (just written by write_packed_weights with `sources`) replaced a model's weights: removes the other
// files of its folder made from the same source files at the same precision (from another version of them, or under
// an earlier version's name), which no load can use again. Only regular files with a cache name and a readable header
// of this format are considered (a symbolic link, a foreign or damaged file is left alone: `zeroshot cache prune` deals
// with damaged ones). Returns the removed paths; never throws (a file that cannot be removed is left).
std::vector<std::string> remove_superseded_packed_weights(const std::string& written);

}  // namespace zeroshot::models
