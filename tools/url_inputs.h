// http(s):// URLs as command-line inputs (classify, embed), as the Hugging Face pipeline accepts them.
//
// Each URL is fetched once, before the model runs, with the hub's libcurl client (io::fetch_url: redirects within
// http/https, --max-download-mb and --download-timeout per URL) into a private temporary folder, which is removed
// when the FetchedInputs goes. Commands read the local copy (local()) and print the URL (name(), named() for
// messages that name the copy). A URL that cannot be fetched is a one-line error naming it, before any work.
// The server never fetches URLs (it takes image bytes only).
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <string>
#include <vector>

namespace zeroshot::cli {

struct UrlArgs {
  double max_download_mb = 50;
  int download_timeout_s = 30;
  void add_to(CLI::App& app);
};

class FetchedInputs {
 public:
  explicit FetchedInputs(const UrlArgs& args) : args_(args) {}
  ~FetchedInputs();
  FetchedInputs(const FetchedInputs&) = delete;
  FetchedInputs& operator=(const FetchedInputs&) = delete;

  // A URL: fetched into the temporary folder, its path returned; anything else is returned as it is.
  std::string local(const std::string& input);
  std::vector<std::string> local(const std::vector<std::string>& inputs);
  // The URL a local copy came from, or `path` itself.
  const std::string& name(const std::string& path) const;
  // `message` with every local copy's path replaced by its URL (errors of the decoders name the file they read).
  std::string named(std::string message) const;

 private:
  UrlArgs args_;
  std::string dir_;
  std::map<std::string, std::string> url_of_;   // local path -> URL
  std::map<std::string, std::string> path_of_;  // URL -> local path (a URL given twice is fetched once)
};

}  // namespace zeroshot::cli
