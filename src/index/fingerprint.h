// Content hashes of image files: what the index recognizes a moved or copied file by. (Models are told apart by
// Model::fingerprint().)
#pragma once

#include <string>

namespace zeroshot::index {

// SHA-256 (OpenSSL libcrypto) of a whole file: 32 raw bytes. Throws zeroshot::Error naming the file.
std::string file_sha256(const std::string& path);

}  // namespace zeroshot::index
