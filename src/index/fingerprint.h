// Content hashes: of image files (what the index recognizes a moved or copied file by) and of model folders (what
// tells one model's embeddings from another's).
#pragma once

#include <string>

namespace zeroshot::index {

// SHA-256 (OpenSSL libcrypto) of a whole file: 32 raw bytes. Throws zeroshot::Error naming the file.
std::string file_sha256(const std::string& path);

// Lower-case hex of raw bytes.
std::string to_hex(const std::string& bytes);

// A fingerprint of the model in folder `dir` that changes when its weights or its image preprocessing change:
// SHA-256 over config.json, preprocessor_config.json and, for every *.safetensors file, its size plus 16 evenly
// spaced 4 KiB samples (fine-tuning touches every tensor, so a sample that misses the change is not a concern;
// hashing gigabytes on every run would be). Hex, 64 characters.
std::string model_fingerprint(const std::string& dir);

}  // namespace zeroshot::index
