#include "index/npy.h"

#include <cstring>
#include <fstream>
#include <limits>

#include "io/safetensors.h"
#include "zeroshot/error.h"

namespace zeroshot::index {

namespace {

// The header's dictionary is a Python literal; numpy writes only strings, True/False and a tuple of ints in it,
// which is all this parser takes.
class DictParser {
 public:
  DictParser(const char* p, const char* end, const std::string& name) : p_(p), end_(end), name_(name) {}

  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t')) ++p_;
  }
  bool eat(char c) {
    ws();
    if (p_ < end_ && *p_ == c) return ++p_, true;
    return false;
  }
  void expect(char c, const char* what) {
    if (!eat(c)) fail(std::string("malformed .npy header (expected ") + what + ")");
  }
  std::string str() {
    ws();
    if (p_ >= end_ || (*p_ != '\'' && *p_ != '"')) fail("malformed .npy header (expected a quoted string)");
    const char q = *p_++;
    std::string s;
    while (p_ < end_ && *p_ != q) {
      if (*p_ == '\\') fail("malformed .npy header (escape in a string)");
      s += *p_++;
    }
    if (p_ >= end_) fail("malformed .npy header (unterminated string)");
    ++p_;
    return s;
  }
  bool boolean() {
    ws();
    for (const char* w : {"True", "False"}) {
      const size_t n = std::strlen(w);
      if (static_cast<size_t>(end_ - p_) >= n && std::memcmp(p_, w, n) == 0) {
        p_ += n;
        return w[0] == 'T';
      }
    }
    fail("malformed .npy header (fortran_order is not True or False)");
  }
  std::vector<uint64_t> shape() {
    expect('(', "'(' of the shape");
    std::vector<uint64_t> dims;
    while (!eat(')')) {
      ws();
      if (p_ >= end_ || *p_ < '0' || *p_ > '9') fail("malformed .npy header (shape is not a tuple of integers)");
      uint64_t v = 0;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
        if (v > (std::numeric_limits<uint64_t>::max() - 9) / 10) fail("shape dimension too large");
        v = v * 10 + static_cast<uint64_t>(*p_++ - '0');
      }
      dims.push_back(v);
      if (dims.size() > 32) fail("malformed .npy header (shape has too many dimensions)");
      if (!eat(',')) {
        expect(')', "')' closing the shape");
        break;
      }
    }
    return dims;
  }
  bool at_end() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n')) ++p_;
    return p_ == end_;
  }
  [[noreturn]] void fail(const std::string& what) const { throw Error(name_, what); }

 private:
  const char* p_;
  const char* end_;
  const std::string& name_;
};

std::string shape_text(const std::vector<uint64_t>& dims) {
  std::string s = "(";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + (dims.size() == 1 ? ",)" : ")");
}

uint64_t file_size(std::ifstream& f) {
  f.seekg(0, std::ios::end);
  const auto n = f.tellg();
  f.seekg(0);
  return n < 0 ? 0 : static_cast<uint64_t>(n);
}

}  // namespace

NpyHeader parse_npy_header(const char* data, size_t size, const std::string& name) {
  static const char kMagic[] = "\x93NUMPY";
  if (size < 10 || std::memcmp(data, kMagic, 6) != 0) throw Error(name, "not a .npy file (no \\x93NUMPY magic)");
  const auto major = static_cast<unsigned char>(data[6]);
  size_t header_len = 0, prefix = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(data[8]) | (static_cast<size_t>(static_cast<unsigned char>(data[9])) << 8);
    prefix = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) throw Error(name, "truncated .npy header");
    for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(data[8 + i]);
    prefix = 12;
  } else {
    throw Error(name, ".npy format version " + std::to_string(major) + " (this reader knows 1 to 3)");
  }
  if (header_len > size - prefix) throw Error(name, "truncated .npy header");
  DictParser p(data + prefix, data + prefix + header_len, name);
  std::string descr;
  bool fortran = false, have_descr = false, have_order = false, have_shape = false;
  std::vector<uint64_t> dims;
  p.expect('{', "'{'");
  while (!p.eat('}')) {
    const std::string key = p.str();
    p.expect(':', "':'");
    if (key == "descr" && !have_descr) descr = p.str(), have_descr = true;
    else if (key == "fortran_order" && !have_order) fortran = p.boolean(), have_order = true;
    else if (key == "shape" && !have_shape) dims = p.shape(), have_shape = true;
    else p.fail("malformed .npy header (unexpected or repeated key '" + key + "')");
    if (!p.eat(',')) {
      p.expect('}', "'}'");
      break;
    }
  }
  if (!p.at_end()) p.fail("malformed .npy header (text after the dictionary)");
  if (!have_descr || !have_order || !have_shape)
    p.fail("malformed .npy header (descr, fortran_order or shape missing)");
  NpyHeader h;
  if (descr == "<f2") h.item_size = 2;
  else if (descr == "<f4") h.item_size = 4;
  else throw Error(name, "dtype '" + descr + "', expected float16 ('<f2') or float32 ('<f4') embeddings");
  if (fortran) throw Error(name, "Fortran-ordered array, expected C order");
  if (dims.size() != 2) throw Error(name, "shape " + shape_text(dims) + ", expected a 2-D matrix (rows, dim)");
  h.rows = dims[0];
  h.cols = dims[1];
  if (h.cols == 0 && h.rows != 0) throw Error(name, "shape " + shape_text(dims) + ": rows of dimension 0");
  constexpr uint64_t kMax = uint64_t{1} << 50;  // far beyond any file; keeps rows * cols * item_size from wrapping
  if (h.rows > kMax || h.cols > kMax || (h.cols && h.rows > kMax / h.cols)) {
    throw Error(name, "shape " + shape_text(dims) + " too large");
  }
  h.data_offset = prefix + header_len;
  return h;
}

NpyHeader read_npy_header(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path, "cannot open");
  const uint64_t size = file_size(f);
  std::string head(static_cast<size_t>(std::min<uint64_t>(size, 1 << 16)), '\0');
  f.read(head.data(), static_cast<std::streamsize>(head.size()));
  if (!f) throw Error(path, "cannot read");
  NpyHeader h = parse_npy_header(head.data(), head.size(), path);
  const uint64_t want = h.data_offset + h.data_bytes();
  if (size < want)
    throw Error(path, "truncated: the header's shape needs " + std::to_string(want) + " bytes, the file has " +
                          std::to_string(size));
  if (size > want)
    throw Error(path,
                std::to_string(size - want) + " bytes after the matrix the header describes (not one .npy array)");
  return h;
}

std::vector<float> read_npy_f32(const std::string& path, NpyHeader* header) {
  const NpyHeader h = read_npy_header(path);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path, "cannot open");
  f.seekg(static_cast<std::streamoff>(h.data_offset));
  std::vector<float> out(h.rows * h.cols);
  if (h.item_size == 4) {
    f.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(h.data_bytes()));
  } else {
    std::vector<uint16_t> half(out.size());
    f.read(reinterpret_cast<char*>(half.data()), static_cast<std::streamsize>(h.data_bytes()));
    for (size_t i = 0; i < half.size(); ++i) out[i] = io::f16_to_f32(half[i]);
  }
  if (!f) throw Error(path, "cannot read (changed while being read?)");
  if (header) *header = h;
  return out;
}

}  // namespace zeroshot::index
