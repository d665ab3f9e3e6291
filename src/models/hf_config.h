// Reading a transformers config.json, for every family: validated getters whose errors name the file and the key
// ("<file>: text_config.hidden_size must be a positive integer, got -1"), and the sub-config rules of the
// transformers config classes. Defaults are the caller's (each family passes its config class's own).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/json.h"

namespace zeroshot::models::hf {

// Sizes above this are not a model config (and would overflow the shape arithmetic).
inline constexpr int64_t kMaxSize = 1 << 20;

// config.json as an object whose model_type is `model_type`; throws "<file>: not a JSON object",
// "no model_type (expected \"clip\")", "model_type \"x\" is not supported (expected \"clip\")".
io::Json load(const std::string& path, const std::string& model_type);

// A sub-config object (missing or null: {}): `names` in order of precedence (CLIPConfig reads "<name>_dict"
// before "<name>"); a value that is not an object is an error.
io::Json sub_config(const io::Json& j, const std::vector<std::string>& names, const std::string& file);

// One object of the config, read with errors naming `file` and `prefix + key`.
struct Fields {
  const io::Json& obj;
  const std::string& file;
  std::string prefix;

  bool has(const char* key) const { return obj.contains(key); }
  // An integer in [min, kMaxSize] ("a positive integer" / "a non-negative integer").
  int integer(const char* key, int def, int64_t min) const;
  int size(const char* key, int def) const { return integer(key, def, 1); }
  bool flag(const char* key, bool def) const;
  // A finite number >= 0.
  float non_negative(const char* key, float def) const;
  // The value as a string (a non-string value as its JSON text, for error messages).
  std::string text(const char* key, const std::string& def) const;
  // A positive int, or a list of two equal positive ints (HF accepts both for patch sizes).
  int square(const char* key, int def) const;
  // A list of 1..max_len integers in [1, max_value].
  std::vector<int> list(const char* key, const std::vector<int>& def, size_t max_len, int max_value) const;
  // Throws "<file>: <prefix><what>".
  [[noreturn]] void fail(const std::string& what) const;
};

// JSON text of a value, for error messages.
std::string json_str(const io::Json& v);

}  // namespace zeroshot::models::hf
