#include "url_inputs.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "io/hub.h"
#include "zeroshot/error.h"

namespace zeroshot::cli {

namespace fs = std::filesystem;

void UrlArgs::add_to(CLI::App& app) {
  app.add_option("--max-download-mb", max_download_mb, "Largest http(s):// input fetched, in MB")
      ->default_val(50)
      ->check(CLI::Range(0.001, 1e6));
  app.add_option("--download-timeout", download_timeout_s, "Seconds an http(s):// input may take to fetch")
      ->default_val(30)
      ->check(CLI::Range(1, 86400));
}

FetchedInputs::~FetchedInputs() {
  if (dir_.empty()) return;
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string FetchedInputs::local(const std::string& input) {
  if (!io::is_http_url(input)) return input;
  if (auto it = path_of_.find(input); it != path_of_.end()) return it->second;
  io::UrlFetchOptions opt;
  opt.max_bytes = static_cast<uint64_t>(args_.max_download_mb * 1e6);
  opt.timeout_s = args_.download_timeout_s;
  std::vector<uint8_t> bytes;
  try {
    bytes = io::fetch_url(input, opt);
  } catch (const Error& e) {
    const std::string what = e.what();
    std::string problem = what.rfind(input + ": ", 0) == 0 ? what.substr(input.size() + 2) : what;
    // Say which option changes the limit that was hit.
    if (problem.rfind("larger than the limit", 0) == 0) problem += " (--max-download-mb)";
    if (problem.rfind("timed out after", 0) == 0) problem += " (--download-timeout)";
    throw Error(input, problem);
  }
  if (dir_.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/zeroshot-urls-XXXXXX";
    if (!::mkdtemp(templ.data())) throw Error(input, "cannot create a temporary folder for URL inputs");
    dir_ = templ;
  }
  // The name keeps the URL's last path segment (its extension tells audio from images where that matters).
  std::string base = input.substr(0, input.find_first_of("?#"));
  base = base.substr(base.find_last_of('/') + 1);
  for (char& c : base)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  if (base.empty() || base[0] == '.') base = "input" + base;
  std::string path = dir_ + "/" + std::to_string(path_of_.size()) + "-" + base.substr(0, 100);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error(input, "cannot write its temporary copy");
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  if (std::fclose(f) != 0 || !ok) throw Error(input, "cannot write its temporary copy");
  path_of_[input] = path;
  url_of_[path] = input;
  return path;
}

std::vector<std::string> FetchedInputs::local(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  out.reserve(inputs.size());
  for (const auto& in : inputs) out.push_back(local(in));
  return out;
}

const std::string& FetchedInputs::name(const std::string& path) const {
  auto it = url_of_.find(path);
  return it == url_of_.end() ? path : it->second;
}

std::string FetchedInputs::named(std::string message) const {
  for (const auto& [path, url] : url_of_)
    for (size_t at = message.find(path); at != std::string::npos; at = message.find(path, at + url.size()))
      message.replace(at, path.size(), url);
  return message;
}

}  // namespace zeroshot::cli
