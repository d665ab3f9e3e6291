// SHA-256, streaming, and lower-case hex: the one hash helper of the engine (label-cache keys, model fingerprints,
// the index's file hashes), over OpenSSL's libcrypto (already a dependency: the hub's TLS and download checks).
//
// A Sha256 object gives one digest() per reset() (the hub restarts it when a download restarts) and is not
// thread-safe; separate objects are independent.
// The constructor throws std::bad_alloc when libcrypto cannot set up a digest context.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace zeroshot::util {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t n);
  // A field: its length (u64 LE) then its bytes, so that ("ab","c") and ("a","bc") hash differently.
  void field(std::string_view s);
  void field(uint64_t v);            // 8 bytes, little-endian
  std::array<uint8_t, 32> digest();  // once; then reset() before the next update
  void reset();                      // back to the hash of no bytes

 private:
  void* ctx_;  // EVP_MD_CTX, kept out of this header
};

std::string to_hex(const uint8_t* data, size_t n);
inline std::string to_hex(std::string_view bytes) {
  return to_hex(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}
inline std::string to_hex(const std::array<uint8_t, 32>& digest) { return to_hex(digest.data(), digest.size()); }

}  // namespace zeroshot::util
