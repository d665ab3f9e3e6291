// zeroshot/error.h: the one exception type the library throws.
//
// Contract: what() is a single line that names the offending input first and the problem second,
// e.g. "photos/x.jpg: not a JPEG, PNG, WebP, GIF or BMP file" or
// "model/config.json: vision_config.hidden_size 96 does not match vision_model.embeddings.class_embedding [80]".
// Callers (the CLI, the server) print it as is and exit non-zero.
#pragma once

#include <stdexcept>
#include <string>

namespace zeroshot {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  // Builds "<where>: <what>".
  Error(const std::string& where, const std::string& what) : std::runtime_error(where + ": " + what) {}
};

}  // namespace zeroshot
