#include "io/json.h"

#include "util/mapped_file.h"
#include "zeroshot/error.h"

namespace zeroshot::io {

Json parse_json(const std::string& text, const std::string& where) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    // Every nlohmann error, not just parse_error: a number too large for a double is out_of_range.406
    // ("number overflow parsing '1E400'"), found by fuzz/eval_data_fuzz on a class map.
    // nlohmann's message is "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    std::string msg = e.what();
    auto pos = msg.find("] ");
    throw Error(where, "invalid JSON: " + (pos == std::string::npos ? msg : msg.substr(pos + 2)));
  }
}

Json load_json(const std::string& path) { return parse_json(util::read_file(path), path); }

}  // namespace zeroshot::io
