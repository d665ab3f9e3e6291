// A strict reader of NumPy .npy files holding a 2-D matrix of embeddings (what zeroshot.inference and
// clip-retrieval write: img_emb_{i}.npy). Accepted: format versions 1.0-3.0, dtype little-endian float16 ("<f2")
// or float32 ("<f4"), C order, shape (rows, dim), and a file exactly as long as the header says. Anything else
// (another dtype, Fortran order, 1-D or 3-D, a truncated or overlong file, a malformed header) is a
// zeroshot::Error "<file>: <problem>" on one line; nothing is read past what the file holds.
//
// Why our own: the format is one short header (numpy/lib/format.py) and no Debian C++ library reads it; cnpy
// (the usual choice) trusts the header's sizes. Thread-safe: plain functions over a path or bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace zeroshot::index {

struct NpyHeader {
  size_t item_size = 4;  // 2: float16, 4: float32
  uint64_t rows = 0, cols = 0;
  size_t data_offset = 0;  // bytes before the matrix
  uint64_t data_bytes() const { return rows * cols * item_size; }
};

// The header at the start of `data` (the first `size` bytes of a file; `name` names it in errors). The matrix
// itself is not looked at: its length is checked by the callers below.
NpyHeader parse_npy_header(const char* data, size_t size, const std::string& name);

// The header of the file at `path`, checked against the file's length.
NpyHeader read_npy_header(const std::string& path);

// The whole matrix as float32, row-major (rows * cols values); *header (optional) gets its header.
std::vector<float> read_npy_f32(const std::string& path, NpyHeader* header = nullptr);

}  // namespace zeroshot::index
