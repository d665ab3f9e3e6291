// Model resolution: a local folder, or a Hugging Face hub id found in (or downloaded into) the HF cache.
//
// Cache layout (the same as huggingface_hub's, so models fetched by Python users are found and vice versa):
//   <cache> = hub_cache_dir(): $HF_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub, ~/.cache/...
//     models--<org>--<name>/refs/<revision>            the commit hash (no newline)
//     models--<org>--<name>/snapshots/<commit>/<file>  relative symlink -> ../../blobs/<etag> (one more
//                                                      "../" per folder in <file>)
//     models--<org>--<name>/blobs/<etag>               the bytes (downloading: <etag>.incomplete)
//     models--<org>--<name>/.no_exist/<commit>/<file>  empty marker: the hub answered 404 for <file>
//   <cache>/.locks/models--<org>--<name>/<etag>.lock   flock()ed while a blob downloads (as huggingface_hub)
// Lookup: a revision that is a 40-hex commit names the snapshot directly, otherwise refs/<revision> does; a
// file found there is returned WITHOUT any request (unlike huggingface_hub, which re-checks branches online:
// a warm cache works with no network). Optional files also honour the .no_exist marker.
// Download: HEAD $endpoint/<repo>/resolve/<revision>/<file> following only same-host redirects (an absolute
// redirect is the CDN location of an LFS file), "Authorization: Bearer <token>" (not sent to another host);
// X-Repo-Commit gives the commit, X-Linked-Etag / ETag (W/ and quotes stripped) the blob name (no usable
// etag: the sha256 of the bytes), X-Linked-Size / Content-Length the size. Servers refusing HEAD (405/501)
// are read with a single GET. The bytes stream to blobs/<etag>.incomplete (resumed with a Range request
// when a previous transfer was interrupted), are checked against the size and, for an LFS etag (64 hex),
// against their sha256, then renamed atomically; the snapshot symlink and refs/<revision> follow.
// Timeouts: connect and metadata requests time out after HubOptions::timeout_s, and a transfer that
// receives nothing for that long is aborted ("download interrupted after N of M bytes").
// Token: HubOptions::token, $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, then the file $HF_TOKEN_PATH or $HF_HOME/token.
// HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) = 1/ON/YES/TRUE, or options.offline: never touch the network; a
// missing file is an error that says so.
// Errors (zeroshot::Error, one line): "<repo>: file <f> not found at revision <rev>", "<repo>: repository not
// found ...", "<repo>/<file>: access denied ... set HF_TOKEN ...", "<repo>/<file>: cannot reach <endpoint>
// (...)", "<repo>/<file>: download interrupted after N of M bytes (...)".
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace zeroshot::io {

struct HubOptions {
  std::string revision = "main";
  std::string endpoint;   // empty: $HF_ENDPOINT or https://huggingface.co (trailing '/' dropped)
  std::string cache_dir;  // empty: hub_cache_dir()'s environment precedence
  std::string token;      // empty: $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, or the token file
  bool offline = false;   // also forced by HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) = 1/ON/YES/TRUE
  bool progress = true;   // progress bar on stderr when it is a terminal
  // Connect / metadata / stall timeout in seconds; 0: $HF_HUB_DOWNLOAD_TIMEOUT (transfers) and
  // $HF_HUB_ETAG_TIMEOUT (metadata), else 10 (huggingface_hub's defaults).
  int timeout_s = 0;
};

// The cache root: options.cache_dir, else $HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE, $HF_HOME/hub,
// $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub (huggingface_hub's precedence; "~" and $VARS
// expanded). An empty variable counts as unset.
std::string hub_cache_dir(const HubOptions& opt);

// Why `s` is not a valid hub repo id, or "" when it is (huggingface_hub's validate_repo_id rules:
// "name" or "namespace/name", [A-Za-z0-9_.-], each part starting and ending with [A-Za-z0-9_], name at
// most 96 characters, no "--" or "..", no ".git" suffix).
std::string repo_id_error(const std::string& s);

// True when `s` looks like a hub id ("org/name" or "name", no such local path).
bool is_hub_id(const std::string& s);

// The cache folder for a repo: <cache>/models--org--name.
std::string repo_cache_dir(const std::string& repo_id, const HubOptions& opt);

// Returns the local path of `filename` in repo `repo_id` (the snapshot symlink), downloading it into the
// cache when needed. `optional`: return "" instead of throwing when the server answers 404, or when the file
// is not cached and the hub cannot be asked (offline, or no connection: transformers does the same).
std::string hub_file(const std::string& repo_id, const std::string& filename, const HubOptions& opt,
                     bool optional = false);

// Resolves a model argument to a local folder holding the config, weights, tokenizer and preprocessor files.
// A path that exists is returned as is ("~/" expanded); a path-like string ("/", ".", "~" first) that does
// not exist, or a string that is not a valid repo id, is an Error. A hub id fetches config.json or, when the
// repo has none, open_clip_config.json (one of them required; its commit pins all other files; config.json
// wins when both exist), preprocessor_config.json and the tokenizer files (vocab.json, merges.txt,
// tokenizer.json, tokenizer_config.json, special_tokens_map.json: each optional), then the first weights file
// the repo has, in transformers' order (weight_file_names(): model.safetensors, model.safetensors.index.json,
// pytorch_model.bin, pytorch_model.bin.index.json; an index brings every shard of its weight_map) or, for an
// OpenCLIP repo, open_clip's (open_clip_weight_files()). Absent files cost one 404 probe each (remembered in
// .no_exist); only files that exist are downloaded. Returns the snapshot folder.
std::string resolve_model(const std::string& model, const HubOptions& opt = {});

// Inputs given as URLs (the CLI's classify and embed), fetched with the same libcurl client: a GET following at
// most 10 redirects, http and https only (also after a redirect), no token sent, identity encoding. Limits: a
// declared Content-Length over max_bytes is refused before the body is read and the transfer is cut as soon as
// max_bytes are exceeded; connect, a stall (no byte for timeout_s) and the whole transfer time out after timeout_s
// seconds. HF_HUB_OFFLINE does not apply (it is about the model hub; transformers' load_image fetches URLs too).
// Errors (zeroshot::Error naming the URL): "HTTP 404", "larger than the limit of N bytes", "cannot fetch (<curl's
// message>)", "timed out after N s", "empty response".
struct UrlFetchOptions {
  uint64_t max_bytes = 50ull << 20;
  int timeout_s = 30;
};

// True when `s` starts with http:// or https:// (scheme in any case).
bool is_http_url(const std::string& s);

std::vector<uint8_t> fetch_url(const std::string& url, const UrlFetchOptions& opt = {});

}  // namespace zeroshot::io
