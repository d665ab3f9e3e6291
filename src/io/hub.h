// Model resolution: a local folder, or a Hugging Face hub id found in (or downloaded into) the HF cache.
//
// Cache layout (the same as huggingface_hub's, so models fetched by Python users are found):
//   $HF_HUB_CACHE or $HF_HOME/hub or ~/.cache/huggingface/hub
//     models--<org>--<name>/refs/<revision>            text file holding a commit hash
//     models--<org>--<name>/snapshots/<commit>/<file>  symlink -> ../../blobs/<etag>
//     models--<org>--<name>/blobs/<etag>               the bytes (downloading: <etag>.incomplete)
// Download: GET $HF_ENDPOINT/<repo>/resolve/<revision>/<file> (default endpoint https://huggingface.co),
// "Authorization: Bearer $HF_TOKEN" when set, redirects followed; the commit hash comes from the
// X-Repo-Commit response header and the blob name from X-Linked-Etag / ETag (quotes stripped), falling back
// to the sha256 of the bytes. Bytes go to blobs/<name>.incomplete and are renamed atomically when complete
// (a Content-Length mismatch or a transfer error removes the partial file and throws).
// HF_HUB_OFFLINE=1 (or options.offline): never touch the network; a missing file is an error that says so.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace zeroshot::io {

struct HubOptions {
  std::string revision = "main";
  std::string endpoint;   // empty: $HF_ENDPOINT or https://huggingface.co
  std::string cache_dir;  // empty: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub
  std::string token;      // empty: $HF_TOKEN
  bool offline = false;   // also forced by HF_HUB_OFFLINE=1/true/yes
  bool progress = true;   // progress bar on stderr when it is a terminal
};

// True when `s` looks like a hub id ("org/name" or "name", no such local path).
bool is_hub_id(const std::string& s);

// The cache folder for a repo: <cache>/models--org--name.
std::string repo_cache_dir(const std::string& repo_id, const HubOptions& opt);

// Returns the local path of `filename` in repo `repo_id`, downloading it into the cache when needed.
// `optional`: return "" instead of throwing when the server answers 404 (or, offline, when it is not cached).
std::string hub_file(const std::string& repo_id, const std::string& filename, const HubOptions& opt,
                     bool optional = false);

// Resolves a model argument to a local folder holding config.json, weights, tokenizer and preprocessor files.
// A path that exists is returned as is. A hub id fetches the files a model needs (config.json,
// preprocessor_config.json, tokenizer files, model.safetensors or the index and its shards) and returns
// the snapshot folder.
std::string resolve_model(const std::string& model, const HubOptions& opt = {});

}  // namespace zeroshot::io
