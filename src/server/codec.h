// Small text codecs the server needs: base64 decoding (with or without a data: URI prefix) and the constant-time
// comparison of API keys.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zeroshot::server {

// RFC 4648 base64 (standard or URL-safe alphabet; padding optional; whitespace ignored). A "data:...;base64,"
// prefix is skipped. Throws zeroshot::Error("<what>: ...") on any other character or a bad length. Written here:
// the Debian C++ libraries we link have no decoder that is strict about input (OpenSSL's EVP_DecodeBlock keeps
// padding bytes as zeros).
std::vector<uint8_t> base64_decode(std::string_view text, const std::string& what);

// True when a == b, in time that depends only on the lengths (never on where they differ).
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace zeroshot::server
