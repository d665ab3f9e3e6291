// JSON files (configs, vocabularies, indexes) through nlohmann::json, with errors that name the file.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace zeroshot::io {

using Json = nlohmann::json;

// Reads and parses; throws zeroshot::Error("<path>: invalid JSON: <detail>") or the read error.
Json load_json(const std::string& path);
Json parse_json(const std::string& text, const std::string& where);

}  // namespace zeroshot::io
