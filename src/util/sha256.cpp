#include "util/sha256.h"

#include <openssl/evp.h>

#include <new>

namespace zeroshot::util {

namespace {
EVP_MD_CTX* ctx(void* p) { return static_cast<EVP_MD_CTX*>(p); }
}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx(ctx_), EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx(ctx_));
    throw std::bad_alloc();
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx(ctx_)); }

void Sha256::update(const void* data, size_t n) {
  if (n) EVP_DigestUpdate(ctx(ctx_), data, n);
}

void Sha256::field(uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  update(b, 8);
}

void Sha256::field(std::string_view s) {
  field(static_cast<uint64_t>(s.size()));
  update(s.data(), s.size());
}

std::array<uint8_t, 32> Sha256::digest() {
  std::array<uint8_t, 32> out{};
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx(ctx_), out.data(), &len);
  return out;
}

void Sha256::reset() {
  if (EVP_DigestInit_ex(ctx(ctx_), EVP_sha256(), nullptr) != 1) throw std::bad_alloc();
}

std::string to_hex(const uint8_t* data, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = digits[data[i] >> 4];
    s[2 * i + 1] = digits[data[i] & 15];
  }
  return s;
}

}  // namespace zeroshot::util
