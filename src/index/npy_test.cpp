// The strict .npy reader: what numpy writes for float16/float32 matrices is read exactly; everything else is a
// one-line error naming the file. (Files written by numpy itself are read in python/tests/test_embeddings_cli.py.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "index/npy.h"
#include "support/temp_dir.h"
#include "zeroshot/error.h"

using namespace zeroshot;
using namespace zeroshot::index;

namespace {

// A version-1.0 .npy file as numpy.save writes it: magic, version, header length, the dictionary padded with
// spaces to a multiple of 64 bytes and ended by "\n", then the data.
std::string npy(const std::string& dict, const std::string& data, int version = 1) {
  std::string h = dict;
  const size_t prefix = version == 1 ? 10 : 12;
  while ((prefix + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(version) + '\0';
  const size_t n = h.size();
  out += static_cast<char>(n & 0xff);
  out += static_cast<char>((n >> 8) & 0xff);
  if (version != 1) out += std::string(2, '\0');
  return out + h + data;
}

std::string dict(const std::string& descr, const std::string& shape, const std::string& order = "False") {
  return "{'descr': '" + descr + "', 'fortran_order': " + order + ", 'shape': " + shape + ", }";
}

template <class T>
std::string bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// The error of reading `content` as a file: one line that starts with the file's path.
std::string error_of(const zeroshot::testing::TempDir& dir, const std::string& content) {
  const std::string path = dir.file("x.npy", content);
  try {
    read_npy_f32(path);
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    return m.substr(path.size() + 2);
  }
  ADD_FAILURE() << "no error for " << content.substr(0, 80);
  return "";
}

TEST(Npy, ReadsFloat32AndFloat16Matrices) {
  const zeroshot::testing::TempDir dir("npy");
  const std::vector<float> f = {0.25f, -1.5f, 3.0f, 1e-3f, 7.0f, -0.125f};
  NpyHeader h;
  const auto got = read_npy_f32(dir.file("f.npy", npy(dict("<f4", "(2, 3)"), bytes(f))), &h);
  EXPECT_EQ(h.rows, 2u);
  EXPECT_EQ(h.cols, 3u);
  EXPECT_EQ(got, f);
  // float16 bit patterns of 1, -2, 0.5, 65504 (largest finite), 2^-24 (smallest subnormal), -0.
  const std::vector<uint16_t> half = {0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000};
  const auto g16 = read_npy_f32(dir.file("h.npy", npy(dict("<f2", "(3, 2)", "False"), bytes(half), 2)), &h);
  EXPECT_EQ(h.item_size, 2u);
  EXPECT_EQ(g16, (std::vector<float>{1.0f, -2.0f, 0.5f, 65504.0f, std::ldexp(1.0f, -24), -0.0f}));
  EXPECT_TRUE(std::signbit(g16[5]));
  // Empty partitions (a shard whose every image failed) are (0, dim).
  EXPECT_TRUE(read_npy_f32(dir.file("e.npy", npy(dict("<f2", "(0, 512)"), ""))).empty());
}

TEST(Npy, RefusesAnythingElseInOneLine) {
  const zeroshot::testing::TempDir dir("npy");
  const std::string six = bytes(std::vector<float>(6, 1.0f));
  EXPECT_NE(error_of(dir, npy(dict("<f8", "(2, 3)"), six + six)).find("dtype '<f8'"), std::string::npos);
  EXPECT_NE(error_of(dir, npy(dict(">f4", "(2, 3)"), six)).find("dtype '>f4'"), std::string::npos);
  EXPECT_NE(error_of(dir, npy(dict("<i4", "(2, 3)"), six)).find("float16"), std::string::npos);
  EXPECT_NE(error_of(dir, npy(dict("<f4", "(2, 3)", "True"), six)).find("Fortran"), std::string::npos);
  EXPECT_NE(error_of(dir, npy(dict("<f4", "(6,)"), six)).find("shape (6,), expected a 2-D"), std::string::npos);
  EXPECT_NE(error_of(dir, npy(dict("<f4", "(1, 2, 3)"), six)).find("2-D"), std::string::npos);
  EXPECT_NE(error_of(dir, npy(dict("<f4", "(2, 3)"), six.substr(0, 23))).find("truncated"), std::string::npos);
  EXPECT_NE(error_of(dir, npy(dict("<f4", "(2, 3)"), six + "x")).find("bytes after"), std::string::npos);
  EXPECT_NE(error_of(dir, npy(dict("<f4", "(99999999999999999, 99999999999)"), six)).find("too large"),
            std::string::npos);
  EXPECT_NE(error_of(dir, "not numpy at all").find("not a .npy file"), std::string::npos);
  EXPECT_NE(error_of(dir, "").find("not a .npy file"), std::string::npos);
  EXPECT_NE(error_of(dir, npy(dict("<f4", "(2, 3)"), six, 4)).find("version 4"), std::string::npos);
  // Malformed dictionaries.
  for (const std::string d : {"{'descr': '<f4', 'shape': (2, 3), }", "{'descr': '<f4', 'fortran_order': False}",
                              "{'descr': '<f4', 'fortran_order': Nope, 'shape': (2, 3), }",
                              "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                              "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }",
                              "{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3), }", "['<f4', False, (2, 3)]",
                              "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } trailing"})
    EXPECT_NE(error_of(dir, npy(d, six)).find("malformed .npy header"), std::string::npos) << d;
  // A header length past the end of the file.
  std::string cut = npy(dict("<f4", "(2, 3)"), six);
  EXPECT_NE(error_of(dir, cut.substr(0, 40)).find("truncated"), std::string::npos);
}

}  // namespace
