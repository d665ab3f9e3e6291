// Model::fingerprint(): a cheap, stable content id of a model folder (see include/zeroshot/zeroshot.h).
#pragma once

#include <string>
#include <vector>

namespace zeroshot::api {

// 32 hex digits (128 bits of SHA-256) over: each small file (config, preprocessor config, tokenizer; whole when
// under 4 MiB, else sampled like the weights) and each weight file (size, safetensors header, 64 evenly spaced
// 4 KiB samples), every file under its base name, in the order given; then `precision`. A missing small file is
// hashed as absent. Throws zeroshot::Error naming a file that exists but cannot be read.
std::string model_fingerprint(const std::vector<std::string>& small_files, const std::vector<std::string>& weight_files,
                              const std::string& precision);

}  // namespace zeroshot::api
