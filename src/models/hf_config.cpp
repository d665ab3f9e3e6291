#include "models/hf_config.h"

#include <cmath>

#include "zeroshot/error.h"

namespace zeroshot::models::hf {

std::string json_str(const io::Json& v) { return v.dump(); }

io::Json load(const std::string& path, const std::string& model_type) {
  io::Json j = io::load_json(path);
  if (!j.is_object()) throw Error(path, "not a JSON object");
  if (!j.contains("model_type")) throw Error(path, "no model_type (expected \"" + model_type + "\")");
  const io::Json& mt = j["model_type"];
  if (!mt.is_string() || mt.get<std::string>() != model_type)
    throw Error(path, "model_type " + json_str(mt) + " is not supported (expected \"" + model_type + "\")");
  return j;
}

io::Json sub_config(const io::Json& j, const std::vector<std::string>& names, const std::string& file) {
  for (const std::string& key : names) {
    if (!j.contains(key) || j[key].is_null()) continue;
    if (!j[key].is_object()) throw Error(file, key + " is not an object");
    return j[key];
  }
  return io::Json::object();
}

void Fields::fail(const std::string& what) const { throw Error(file, prefix + what); }

int Fields::integer(const char* key, int def, int64_t min) const {
  if (!obj.contains(key)) return def;
  const io::Json& v = obj[key];
  if (!v.is_number_integer() || v.get<int64_t>() < min || v.get<int64_t>() > kMaxSize)
    fail(std::string(key) + " must be " + (min > 0 ? "a positive integer" : "a non-negative integer") + ", got " +
         json_str(v));
  return static_cast<int>(v.get<int64_t>());
}

bool Fields::flag(const char* key, bool def) const {
  if (!obj.contains(key)) return def;
  const io::Json& v = obj[key];
  if (!v.is_boolean()) fail(std::string(key) + " must be true or false, got " + json_str(v));
  return v.get<bool>();
}

float Fields::non_negative(const char* key, float def) const {
  if (!obj.contains(key)) return def;
  const io::Json& v = obj[key];
  if (!v.is_number() || !(v.get<double>() >= 0.0) || !std::isfinite(v.get<double>()))
    fail(std::string(key) + " must be a non-negative number, got " + json_str(v));
  return static_cast<float>(v.get<double>());
}

std::string Fields::text(const char* key, const std::string& def) const {
  if (!obj.contains(key)) return def;
  const io::Json& v = obj[key];
  return v.is_string() ? v.get<std::string>() : json_str(v);
}

int Fields::square(const char* key, int def) const {
  if (!obj.contains(key)) return def;
  const io::Json& v = obj[key];
  auto ok = [](const io::Json& e) {
    return e.is_number_integer() && e.get<int64_t>() > 0 && e.get<int64_t>() <= kMaxSize;
  };
  if (ok(v)) return static_cast<int>(v.get<int64_t>());
  if (v.is_array() && v.size() == 2 && ok(v[0]) && ok(v[1])) {
    if (v[0].get<int64_t>() != v[1].get<int64_t>())
      fail(std::string(key) + " " + json_str(v) + " is not supported (only square patches)");
    return static_cast<int>(v[0].get<int64_t>());
  }
  fail(std::string(key) + " must be a positive integer or a list of two, got " + json_str(v));
}

std::vector<int> Fields::list(const char* key, const std::vector<int>& def, size_t max_len, int max_value) const {
  if (!obj.contains(key)) return def;
  const io::Json& v = obj[key];
  if (!v.is_array() || v.empty() || v.size() > max_len)
    fail(std::string(key) + " must be a list of 1 to " + std::to_string(max_len) + " positive integers, got " +
         json_str(v));
  std::vector<int> out;
  for (const io::Json& e : v) {
    if (!e.is_number_integer() || e.get<int64_t>() <= 0 || e.get<int64_t>() > max_value)
      fail(std::string(key) + " must be a list of positive integers, got " + json_str(v));
    out.push_back(static_cast<int>(e.get<int64_t>()));
  }
  return out;
}

}  // namespace zeroshot::models::hf
