// On-disk cache of zero-shot label embeddings, so that a repeated CLI call does not re-encode K labels x T templates.
//
// One file per (model fingerprint, templates, classes): <dir>/label-embeddings/<32 hex of the key>.bin holding the
// K normalized, ensembled label embeddings (little-endian; this engine only runs on little-endian hosts):
//   "ZSLABELS" | u32 format version | u32 0 | key (32 bytes, SHA-256) | u64 K | u64 dim |
//   payload SHA-256 (32 bytes) | K * dim float32
// A file is used only when every header field matches what the caller expects, its size is exact, the payload
// hash matches and every value is finite; anything else (truncated, corrupt, another version or key) is ignored
// and, by the caller, recomputed and rewritten. Writes go to a unique temporary file in the same folder that is then
// renamed over the target, so readers never see a partial file and concurrent writers (same content) are safe.
// Cache failures (read-only or missing home, full disk) are never errors: the embeddings are just computed.
// Nothing is evicted automatically: each file is K * dim * 4 bytes (ImageNet's 1,000 classes x 512: 2 MB). A hit
// sets the file's access time to now, so that `zeroshot cache prune --older-than/--max-size` (tools/
// cmd_cache.cpp) removes the least recently used first.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/sha256.h"

namespace zeroshot::classify {

inline constexpr uint32_t kLabelCacheVersion = 1;

// The key of one label set: SHA-256 over the format version, the model fingerprint, the templates and the classes
// (every name of every class, in order).
std::array<uint8_t, 32> label_cache_key(const std::string& model_fingerprint,
                                        const std::vector<std::vector<std::string>>& classes,
                                        const std::vector<std::string>& templates);

// "" -> $XDG_CACHE_HOME/zeroshot (when absolute, as the XDG spec requires), else $HOME/.cache/zeroshot, else ""
// (no cache). "none" -> "" (disabled). Anything else is used as given.
std::string resolve_cache_dir(const std::string& option);

// The file for `key` under `dir` (dir from resolve_cache_dir, not empty).
std::string label_cache_path(const std::string& dir, const std::array<uint8_t, 32>& key);

// true and `out` filled (rows * dim floats) when a valid file for exactly (key, rows, dim) exists; false otherwise.
// Never throws for a bad file.
bool load_label_embeddings(const std::string& path, const std::array<uint8_t, 32>& key, size_t rows, size_t dim,
                           std::vector<float>* out);
// Atomic write (creating the folders); false on any failure. Never throws for I/O problems.
bool store_label_embeddings(const std::string& path, const std::array<uint8_t, 32>& key, size_t rows, size_t dim,
                            const float* data);

}  // namespace zeroshot::classify
