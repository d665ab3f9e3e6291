// util::Sha256: the FIPS 180-2 example digests, streaming in pieces, and reset() (the hub restarts a hash when a
// download restarts).
#include "util/sha256.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace zeroshot::util {
namespace {

// FIPS 180-2, appendix B.1 ("abc") and the digest of no bytes (as `sha256sum /dev/null` prints it).
constexpr const char* kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* kEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string hex_of(const std::string& s) {
  Sha256 h;
  h.update(s.data(), s.size());
  return to_hex(h.digest());
}

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(hex_of("abc"), kAbc);
  EXPECT_EQ(hex_of(""), kEmpty);
}

TEST(Sha256, PiecesHashAsTheWhole) {
  std::string data;
  for (int i = 0; i < 100000; ++i) data += static_cast<char>(i * 7919 % 251);
  Sha256 h;
  for (size_t off = 0; off < data.size(); off += 333)
    h.update(data.data() + off, std::min<size_t>(333, data.size() - off));
  h.update(nullptr, 0);
  EXPECT_EQ(to_hex(h.digest()), hex_of(data));
}

TEST(Sha256, ResetStartsOver) {
  Sha256 h;
  h.update("partial download", 16);
  h.reset();
  h.update("abc", 3);
  EXPECT_EQ(to_hex(h.digest()), kAbc);
  h.reset();  // after a digest too
  EXPECT_EQ(to_hex(h.digest()), kEmpty);
}

TEST(Sha256, HexIsLowerCaseTwoDigitsPerByte) {
  const uint8_t bytes[] = {0x00, 0x0f, 0xa0, 0xff};
  EXPECT_EQ(to_hex(bytes, 4), "000fa0ff");
  EXPECT_EQ(to_hex(std::string_view("\x01\xfe", 2)), "01fe");
}

}  // namespace
}  // namespace zeroshot::util
