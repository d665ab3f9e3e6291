// Hugging Face hub cache + download, mirroring huggingface_hub's file_download.py (hf_hub_download,
// _get_metadata_or_catch_error, try_to_load_from_cache) so that both tools share one cache.
// libcurl does the HTTP; the cache layout, locking and error mapping are ours.
#include "io/hub.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "util/progress.h"
#include "util/sha256.h"
#include "zeroshot/error.h"
#include "zeroshot/version.h"

namespace zeroshot::io {
namespace fs = std::filesystem;
namespace {

// ---------------------------------------------------------------------------------------------------------
// Environment (huggingface_hub's constants.py)

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

bool env_true(const char* name) {
  auto v = env(name);
  if (!v) return false;
  std::string s = *v;
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s == "1" || s == "ON" || s == "YES" || s == "TRUE";
}

// os.path.expanduser for "~" and "~/..." (not "~user").
std::string expand_user(const std::string& p) {
  if (p == "~" || p.rfind("~/", 0) == 0) {
    if (auto home = env("HOME")) return *home + p.substr(1);
  }
  return p;
}

// os.path.expandvars: $NAME and ${NAME}; unknown variables are left as written.
std::string expand_vars(const std::string& p) {
  std::string out;
  for (size_t i = 0; i < p.size();) {
    if (p[i] != '$') {
      out += p[i++];
      continue;
    }
    size_t j = i + 1;
    bool braced = j < p.size() && p[j] == '{';
    if (braced) ++j;
    size_t k = j;
    while (k < p.size() && (std::isalnum(static_cast<unsigned char>(p[k])) || p[k] == '_')) ++k;
    if (k == j || (braced && (k >= p.size() || p[k] != '}'))) {
      out += p[i++];
      continue;
    }
    std::string name = p.substr(j, k - j);
    size_t end = braced ? k + 1 : k;
    if (const char* v = std::getenv(name.c_str())) out += v;
    else out += p.substr(i, end - i);
    i = end;
  }
  return out;
}

std::string expand(const std::string& p) { return expand_vars(expand_user(p)); }

std::string hf_home() {
  if (auto v = env("HF_HOME")) return expand(*v);
  std::string base = env("XDG_CACHE_HOME").value_or(expand_user("~/.cache"));
  return expand(base + "/huggingface");
}

bool offline_env() { return env_true("HF_HUB_OFFLINE") || env_true("TRANSFORMERS_OFFLINE"); }

// huggingface_hub's _clean_token: drop CR/LF, strip spaces; empty means none.
std::string clean_token(const std::string& t) {
  std::string out;
  for (char c : t)
    if (c != '\r' && c != '\n') out += c;
  size_t a = out.find_first_not_of(" \t"), b = out.find_last_not_of(" \t");
  return a == std::string::npos ? "" : out.substr(a, b - a + 1);
}

// Token precedence as in huggingface_hub's get_token: explicit, $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, then the
// token file ($HF_TOKEN_PATH or $HF_HOME/token). HF_HUB_DISABLE_IMPLICIT_TOKEN turns off all but the first.
std::pair<std::string, std::string> find_token(const HubOptions& opt) {  // {token, where it came from}
  if (!opt.token.empty()) return {clean_token(opt.token), "HubOptions.token"};
  if (env_true("HF_HUB_DISABLE_IMPLICIT_TOKEN")) return {};
  for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
    if (auto v = env(name)) {
      std::string t = clean_token(*v);
      if (!t.empty()) return {t, name};
    }
  }
  std::string path = env("HF_TOKEN_PATH") ? expand(*env("HF_TOKEN_PATH")) : hf_home() + "/token";
  std::ifstream in(path, std::ios::binary);
  if (in) {
    std::string t((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (t.size() < 4096) {
      t = clean_token(t);
      if (!t.empty()) return {t, path};
    }
  }
  return {};
}

int timeout_seconds(const HubOptions& opt, const char* env_name) {
  if (opt.timeout_s > 0) return opt.timeout_s;
  if (auto v = env(env_name)) {
    char* end = nullptr;
    long n = std::strtol(v->c_str(), &end, 10);
    if (end && *end == '\0' && n > 0 && n < 100000) return static_cast<int>(n);
  }
  return 10;
}

// ---------------------------------------------------------------------------------------------------------
// Names

bool is_word(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool is_commit_hash(const std::string& s) {  // REGEX_COMMIT_HASH: ^[0-9a-f]{40}$
  if (s.size() != 40) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool is_sha256_hex(const std::string& s) {  // REGEX_SHA256: an LFS etag, checkable against the bytes
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// A name the server gave us that becomes one path component (commit folder, blob file).
bool safe_component(const std::string& s) {
  if (s.empty() || s.size() > 200 || s == "." || s == "..") return false;
  for (char c : s)
    if (!(is_word(c) || c == '-' || c == '.')) return false;
  return true;
}

// A slash-separated relative path that must stay inside its folder (file names, revisions).
std::string relative_path_error(const std::string& s) {
  if (s.empty()) return "is empty";
  if (s.size() > 1024) return "is too long";
  if (s[0] == '/') return "must be relative";
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "has a control character";
  std::stringstream ss(s);
  std::string part;
  size_t parts = 0;
  while (std::getline(ss, part, '/')) {
    ++parts;
    if (part.empty() || part == "." || part == "..") return "has an empty, '.' or '..' component";
  }
  if (s.back() == '/') return "ends with '/'";
  return parts ? "" : "is empty";
}

// urllib.parse.quote: unreserved characters stay, the rest is %XX (with '/' kept for file names).
std::string url_quote(const std::string& s, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// "scheme://host:port" of a URL (huggingface_hub compares netlocs to decide whether to keep the token).
std::string url_origin(const std::string& url) {
  size_t p = url.find("://");
  if (p == std::string::npos) return "";
  size_t e = url.find_first_of("/?#", p + 3);
  return url.substr(0, e);
}

// One line, bounded: server-provided text goes into our one-line error messages.
std::string one_line(const std::string& s, size_t max = 200) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    out += (c == '\r' || c == '\n' || c == '\t') ? ' ' : c;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Small file-system helpers (POSIX where atomicity matters)

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

std::string unique_suffix() {
  static std::mutex m;
  static std::mt19937_64 rng{std::random_device{}() ^ static_cast<uint64_t>(::getpid())};
  std::lock_guard<std::mutex> lock(m);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%d-%016llx", static_cast<int>(::getpid()), static_cast<unsigned long long>(rng()));
  return buf;
}

void make_dirs(const fs::path& p) {
  std::error_code ec;
  fs::create_directories(p, ec);
  if (ec) throw Error(p.string(), "cannot create folder: " + ec.message());
}

bool is_file(const fs::path& p) {  // follows symlinks, like os.path.isfile
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

std::string read_small(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::string s;
  if (!in) return s;
  char buf[256];
  in.read(buf, sizeof buf);
  s.assign(buf, static_cast<size_t>(in.gcount()));
  return s;
}

// Writes `text` to `p` through a temporary file and rename, so readers never see half a file.
void write_atomic(const fs::path& p, const std::string& text) {
  make_dirs(p.parent_path());
  fs::path tmp = p.parent_path() / (".tmp-" + p.filename().string() + "-" + unique_suffix());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) throw Error(tmp.string(), "cannot write");
  }
  if (::rename(tmp.c_str(), p.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Error(p.string(), std::string("cannot write: ") + std::strerror(e));
  }
}

// snapshots/<commit>/<file> -> relative path to blobs/<name> (one "../" per folder below the repo folder).
void make_pointer(const fs::path& pointer, const std::string& file, const fs::path& blob) {
  std::string target = "../../";
  for (char c : file)
    if (c == '/') target += "../";
  target += "blobs/" + blob.filename().string();
  char buf[4096];
  ssize_t n = ::readlink(pointer.c_str(), buf, sizeof buf);
  if (n >= 0 && std::string(buf, static_cast<size_t>(n)) == target) return;
  fs::path tmp = pointer.parent_path() / (".tmp-" + pointer.filename().string() + "-" + unique_suffix());
  if (::symlink(target.c_str(), tmp.c_str()) != 0) {
    int e = errno;
    if (e != EPERM && e != EOPNOTSUPP && e != ENOSYS) throw Error(pointer.string(), std::strerror(e));
    // No symlinks on this file system: a copy, as huggingface_hub does.
    std::error_code ec;
    fs::copy_file(blob, tmp, fs::copy_options::overwrite_existing, ec);
    if (ec) throw Error(pointer.string(), "cannot copy the blob: " + ec.message());
  }
  if (::rename(tmp.c_str(), pointer.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Error(pointer.string(), std::strerror(e));
  }
}

// flock() on <cache>/.locks/<repo folder>/<etag>.lock: the lock file huggingface_hub's FileLock uses, so
// concurrent downloads of one blob (ours or Python's) do not write the same .incomplete file.
class BlobLock {
 public:
  explicit BlobLock(const fs::path& path) {
    make_dirs(path.parent_path());
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd_ < 0) throw Error(path.string(), std::string("cannot open lock file: ") + std::strerror(errno));
    auto start = std::chrono::steady_clock::now();
    bool told = false;
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) break;  // no locking here (NFS...): go on unlocked
      if (!told && std::chrono::steady_clock::now() - start > std::chrono::seconds(10)) {
        std::fprintf(stderr, "%s: waiting for another process to finish downloading this file\n",
                     path.string().c_str());
        told = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ~BlobLock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
  BlobLock(const BlobLock&) = delete;
  BlobLock& operator=(const BlobLock&) = delete;

 private:
  int fd_ = -1;
};

// ---------------------------------------------------------------------------------------------------------
// HTTP through libcurl

using Headers = std::map<std::string, std::string>;  // lower-case names; the last response's headers only

std::string header(const Headers& h, const char* name) {
  auto it = h.find(name);
  return it == h.end() ? "" : it->second;
}

int64_t parse_size(const std::string& s) {
  if (s.empty() || s.size() > 18) return -1;
  for (char c : s)
    if (c < '0' || c > '9') return -1;
  return std::stoll(s);
}

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string user_agent() {
  return std::string("zeroshot/") + ZEROSHOT_VERSION + "; libcurl/" + curl_version_info(CURLVERSION_NOW)->version;
}

struct Request {
  std::string url;
  bool head = false;         // HEAD without following redirects (metadata), else GET following them
  std::string token;         // "" sends no Authorization
  uint64_t resume_from = 0;  // GET: Range: bytes=N-
  int timeout_s = 10;
  int total_timeout_s = 0;  // GET: the whole transfer (0: none, only the stall watch)
  uint64_t max_bytes = 0;   // GET: refuse a larger declared Content-Length (0: no limit)
};

// What the body callback sees; it returns false to stop the transfer.
using BodySink = std::function<bool(long status, const Headers&, const char*, size_t)>;

struct Response {
  CURLcode code = CURLE_OK;
  std::string error;  // curl's message when code != CURLE_OK
  long status = 0;
  Headers headers;
  Headers seen;                // headers of every response of a redirect chain (the last value wins)
  std::string body;            // non-2xx bodies only, capped
  std::string redirect_url;    // absolute target of a 3xx we did not follow
  std::exception_ptr failure;  // thrown by the sink
};

struct CallbackState {
  Response* r;
  const BodySink* sink;
  int stall_s = 0;  // abort after this long without a received byte (0: no watch)
  curl_off_t last_now = -1;
  std::chrono::steady_clock::time_point last_change = std::chrono::steady_clock::now();
  bool stalled = false;
};

// Our own stall watch: libcurl's LOW_SPEED_TIME averages over a window of several seconds, so a burst
// followed by silence would be noticed only seconds later. libcurl calls this at least once a second.
int on_progress(void* user, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t) {
  auto* st = static_cast<CallbackState*>(user);
  auto now = std::chrono::steady_clock::now();
  if (dlnow != st->last_now) {
    st->last_now = dlnow;
    st->last_change = now;
    return 0;
  }
  if (st->stall_s > 0 && now - st->last_change > std::chrono::seconds(st->stall_s)) {
    st->stalled = true;
    return 1;
  }
  return 0;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<CallbackState*>(user);
  std::string line(data, size * n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (after a redirect or a 100): start over
    st->r->headers.clear();
    st->r->body.clear();
    size_t sp = line.find(' ');
    st->r->status = sp == std::string::npos ? 0 : std::strtol(line.c_str() + sp + 1, nullptr, 10);
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string::npos && colon > 0) {
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t v = line.find_first_not_of(" \t", colon + 1);
    std::string value = v == std::string::npos ? "" : line.substr(v);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
    if (st->r->headers.size() < 200) st->r->headers[name] = value;
    if (st->r->seen.size() < 400) st->r->seen[name] = value;
  }
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<CallbackState*>(user);
  size_t len = size * n;
  if (st->r->status < 200 || st->r->status >= 300) {
    if (st->r->body.size() < 4096) st->r->body.append(data, std::min(len, 4096 - st->r->body.size()));
    return len;
  }
  if (!st->sink || !*st->sink) return len;
  try {
    return (*st->sink)(st->r->status, st->r->headers, data, len) ? len : 0;
  } catch (...) {
    st->r->failure = std::current_exception();
    return 0;
  }
}

Response perform(const Request& q, const BodySink& sink = {}) {
  curl_init_once();
  Response r;
  CURL* h = curl_easy_init();
  if (!h) throw Error(q.url, "cannot start libcurl");
  struct curl_slist* list = nullptr;
  // identity: Content-Length must be the size of the file, not of a compressed body (as huggingface_hub)
  list = curl_slist_append(list, "Accept-Encoding: identity");
  if (!q.token.empty()) list = curl_slist_append(list, ("Authorization: Bearer " + q.token).c_str());
  char errbuf[CURL_ERROR_SIZE] = {0};
  CallbackState st{&r, &sink};
  st.stall_s = q.head ? 0 : q.timeout_s;
  std::string ua = user_agent();
  curl_easy_setopt(h, CURLOPT_URL, q.url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, ua.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, static_cast<long>(q.timeout_s));
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &st);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &st);
  if (q.head) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, static_cast<long>(q.timeout_s));
  } else {
    // The Authorization header is not sent to another host on a redirect (libcurl's default since 7.58),
    // which is what huggingface_hub does for CDN-signed URLs.
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    // A stalled server: no byte for timeout_s seconds aborts the transfer (on_progress).
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &st);
  }
  if (!q.head && q.total_timeout_s > 0) curl_easy_setopt(h, CURLOPT_TIMEOUT, static_cast<long>(q.total_timeout_s));
  if (!q.head && q.max_bytes > 0)
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(std::min<uint64_t>(q.max_bytes, INT64_MAX)));
  // CURLOPT_RANGE, not RESUME_FROM: libcurl then hands us a 200 (a server ignoring ranges) instead of failing.
  std::string range = std::to_string(q.resume_from) + "-";
  if (!q.head && q.resume_from > 0) {
    curl_easy_setopt(h, CURLOPT_RANGE, range.c_str());
  }
  r.code = curl_easy_perform(h);
  if (r.code != CURLE_OK) r.error = errbuf[0] ? errbuf : curl_easy_strerror(r.code);
  if (st.stalled) r.error = "no data received for " + std::to_string(q.timeout_s) + " s";
  long status = 0;
  if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status) r.status = status;
  char* redirect = nullptr;
  if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &redirect) == CURLE_OK && redirect) r.redirect_url = redirect;
  curl_slist_free_all(list);
  curl_easy_cleanup(h);
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// One hub_file call

struct Ctx {
  std::string repo, file, rev, where;  // where = "<repo>/<file>" for messages
  fs::path cache, storage;             // <cache>/models--org--name
  std::string endpoint, token, token_from;
  bool offline = false, optional = false, progress = true;
  int timeout_s = 10, etag_timeout_s = 10;
};

struct Meta {
  std::string commit, etag, location;
  int64_t size = -1;
  bool send_token = true;
};

std::string folder_name(const std::string& repo) {  // repo_folder_name: models--org--name
  std::string out = "models";
  std::stringstream ss(repo);
  std::string part;
  while (std::getline(ss, part, '/')) out += "--" + part;
  return out;
}

std::string file_url(const Ctx& c, const std::string& rev) {  // hf_hub_url
  return c.endpoint + "/" + c.repo + "/resolve/" + url_quote(rev, false) + "/" + url_quote(c.file, true);
}

std::string read_ref(const Ctx& c) {
  std::string s = read_small(c.storage / "refs" / c.rev);
  size_t e = s.find_last_not_of(" \t\r\n");
  s = e == std::string::npos ? "" : s.substr(0, e + 1);
  return safe_component(s) ? s : "";
}

// _cache_commit_hash_for_specific_revision: refs/<revision> holds the commit (no newline).
void write_ref(const Ctx& c, const std::string& commit) {
  if (c.rev == commit) return;
  fs::path ref = c.storage / "refs" / c.rev;
  if (read_small(ref) == commit) return;
  write_atomic(ref, commit);
}

// try_to_load_from_cache: the snapshot file for the revision (a commit, or what refs/<revision> names).
// Optional files also honour the .no_exist/<commit>/<file> marker. A revision found here is used without
// asking the server (unlike huggingface_hub, which re-checks branches online): a warm cache makes no request.
std::optional<std::string> from_cache(const Ctx& c) {
  std::string commit = is_commit_hash(c.rev) ? c.rev : read_ref(c);
  if (commit.empty()) return std::nullopt;
  fs::path pointer = c.storage / "snapshots" / commit / c.file;
  if (is_file(pointer)) return pointer.string();
  if (c.optional && is_file(c.storage / ".no_exist" / commit / c.file)) return std::string();
  return std::nullopt;
}

std::string token_hint(const Ctx& c) {
  return c.token.empty() ? "set HF_TOKEN to a token with access to it"
                         : "the token from " + c.token_from + " was refused or has no access to it";
}

// Maps an HTTP error of the metadata or download request; returns "" for an absent optional file.
std::string on_http_error(const Ctx& c, long status, const Headers& h, const std::string& body) {
  std::string code = header(h, "x-error-code");
  std::string msg = one_line(header(h, "x-error-message"));
  if (code == "RepoNotFound")
    throw Error(c.repo, status == 404 ? "repository not found at " + c.endpoint
                                      : "repository not found at " + c.endpoint + ", or private or gated (HTTP " +
                                            std::to_string(status) + "): " + token_hint(c));
  if (code == "RevisionNotFound") throw Error(c.repo, "revision " + c.rev + " not found");
  if (code == "GatedRepo")
    throw Error(c.repo, "gated repository (HTTP " + std::to_string(status) + "): accept its conditions at " +
                            c.endpoint + "/" + c.repo + " and " + token_hint(c));
  if (status == 404 || code == "EntryNotFound") {
    // Remember the absence like huggingface_hub (.no_exist/<commit>/<file>), so a warm cache stays offline.
    std::string commit = header(h, "x-repo-commit");
    if (safe_component(commit)) {
      try {
        fs::path marker = c.storage / ".no_exist" / commit / c.file;
        make_dirs(marker.parent_path());
        std::ofstream touch(marker, std::ios::app);
        write_ref(c, commit);
      } catch (const Error&) {
        // a read-only cache: the marker is an optimisation only
      }
    }
    if (c.optional) return "";
    throw Error(c.repo, "file " + c.file + " not found at revision " + c.rev);
  }
  if (status == 401 || status == 403)
    throw Error(c.where, "access denied by " + c.endpoint + " (HTTP " + std::to_string(status) +
                             (msg.empty() ? "" : ": " + msg) + "): the repository may be private or gated; " +
                             token_hint(c));
  if (msg.empty() && !body.empty() && body.size() < 200 && body.find('<') == std::string::npos) msg = one_line(body);
  throw Error(c.where, c.endpoint + " answered HTTP " + std::to_string(status) + (msg.empty() ? "" : ": " + msg));
}

[[noreturn]] void unreachable(const Ctx& c, const Response& r) {
  throw Error(c.where, "cannot reach " + c.endpoint + " (" + one_line(r.error) + ") and the file is not in the cache " +
                           c.storage.string());
}

// get_hf_file_metadata: HEAD following only same-host (relative) redirects; an absolute redirect is the
// CDN location of an LFS file. Returns the final response (code != CURLE_OK: no answer).
Response head_metadata(const Ctx& c, std::string& url) {
  for (int hop = 0; hop < 10; ++hop) {
    Request q;
    q.url = url;
    q.head = true;
    q.token = c.token;
    q.timeout_s = c.etag_timeout_s;
    Response r = perform(q);
    if (r.code != CURLE_OK) return r;
    std::string loc = header(r.headers, "location");
    bool relative = loc.find("://") == std::string::npos && loc.rfind("//", 0) != 0;
    if (r.status >= 300 && r.status < 400 && !loc.empty() && relative && !r.redirect_url.empty()) {
      url = r.redirect_url;
      continue;
    }
    return r;
  }
  throw Error(c.where, "too many redirects from " + c.endpoint);
}

struct Fetched {
  Response r;
  uint64_t bytes = 0;  // size of the part file at the end
  std::string sha256;
};

// GETs `url` into `part`, resuming from what `part` already holds when `resume` (Range: bytes=N-; a server
// that answers 200 instead of 206 restarts it). Throws on a transport failure ("download interrupted after
// N of M bytes", the part file kept for a later resume); returns a non-2xx response for the caller to map.
Fetched get_to_file(const Ctx& c, const std::string& url, bool send_token, const fs::path& part, bool resume,
                    int64_t expected) {
  Fd fd(::open(part.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | (resume ? 0 : O_TRUNC), 0666));
  if (fd.fd < 0) throw Error(part.string(), std::string("cannot create: ") + std::strerror(errno));
  auto truncate_all = [&] {
    if (::ftruncate(fd.fd, 0) != 0 || ::lseek(fd.fd, 0, SEEK_SET) != 0)
      throw Error(part.string(), std::string("cannot truncate: ") + std::strerror(errno));
  };
  util::Sha256 sha;  // LFS blobs are checked against their etag while they stream in
  uint64_t have = 0;
  if (resume) {
    off_t end = ::lseek(fd.fd, 0, SEEK_END);
    have = end > 0 ? static_cast<uint64_t>(end) : 0;
    if (expected >= 0 && have > static_cast<uint64_t>(expected)) {
      truncate_all();
      have = 0;
    }
    // Re-hash what is there so the final digest covers the whole file.
    std::vector<unsigned char> buf(1 << 20);
    for (uint64_t off = 0; off < have;) {
      ssize_t n = ::pread(fd.fd, buf.data(), std::min<uint64_t>(buf.size(), have - off), static_cast<off_t>(off));
      if (n <= 0) throw Error(part.string(), "cannot read the partial download");
      sha.update(buf.data(), static_cast<size_t>(n));
      off += static_cast<uint64_t>(n);
    }
  }
  Fetched f;
  if (expected >= 0 && have == static_cast<uint64_t>(expected)) {  // already complete (http_get does the same)
    f.r.status = 200;
    f.bytes = have;
    f.sha256 = util::to_hex(sha.digest());
    return f;
  }
  std::string label = c.file.size() > 40 ? "..." + c.file.substr(c.file.size() - 37) : c.file;
  util::ProgressBar bar(label, expected > 0 ? static_cast<uint64_t>(expected) : 0, c.progress, have);
  uint64_t written = 0;
  int64_t announced = expected;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool started = false;
    BodySink sink = [&](long status, const Headers& h, const char* data, size_t len) {
      if (!started) {
        started = true;
        if (status == 206) {  // Content-Range: bytes START-END/TOTAL must start where we stopped
          std::string cr = header(h, "content-range");
          size_t sp = cr.find(' '), dash = cr.find('-');
          int64_t start =
              sp == std::string::npos || dash == std::string::npos ? -1 : parse_size(cr.substr(sp + 1, dash - sp - 1));
          if (start < 0 || static_cast<uint64_t>(start) != have)
            throw Error(c.where, "the server resumed the download at the wrong offset (" + one_line(cr) + ")");
        } else if (have > 0) {  // the whole file again
          truncate_all();
          sha.reset();
          have = 0;
        }
        if (announced < 0) {
          int64_t len_hdr = parse_size(header(h, "content-length"));
          if (len_hdr >= 0) announced = static_cast<int64_t>(have) + len_hdr;
        }
      }
      for (size_t done = 0; done < len;) {
        ssize_t n = ::write(fd.fd, data + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw Error(part.string(), std::string("write failed: ") + std::strerror(errno));
        done += static_cast<size_t>(n);
      }
      sha.update(data, len);
      written += len;
      bar.update(have + written);
      return true;
    };
    Request q;
    q.url = url;
    q.token = send_token ? c.token : "";
    q.resume_from = have;
    q.timeout_s = c.timeout_s;
    f.r = perform(q, sink);
    if (f.r.failure) std::rethrow_exception(f.r.failure);
    if (f.r.status == 416 && have > 0 && attempt == 0) {  // our partial file is not a prefix: start over
      truncate_all();
      sha.reset();
      have = 0;
      continue;
    }
    if (f.r.code == CURLE_OK && f.r.status >= 200 && f.r.status < 300 && !started && have > 0 && f.r.status == 200) {
      truncate_all();  // an empty full answer to a range request
      sha.reset();
      have = 0;
    }
    break;
  }
  uint64_t total = have + written;
  std::string of = announced >= 0 ? " of " + std::to_string(announced) : "";
  if (f.r.code != CURLE_OK) {
    bar.finish();
    if (written == 0 && f.r.status == 0) unreachable(c, f.r);
    throw Error(c.where,
                "download interrupted after " + std::to_string(total) + of + " bytes (" + one_line(f.r.error) + ")");
  }
  if (f.r.status < 200 || f.r.status >= 300) return f;
  bar.update(total);
  bar.finish();
  if (announced >= 0 && total != static_cast<uint64_t>(announced)) {
    if (total > static_cast<uint64_t>(announced)) {
      ::unlink(part.c_str());
      throw Error(c.where, "the server sent " + std::to_string(total) + " bytes, more than the " +
                               std::to_string(announced) + " announced; the partial file was removed");
    }
    throw Error(c.where, "download interrupted after " + std::to_string(total) + of +
                             " bytes (the server closed the connection)");
  }
  f.bytes = total;
  f.sha256 = util::to_hex(sha.digest());
  return f;
}

std::string normalize_etag(std::string e) {  // _normalize_etag: W/"x" and "x" -> x
  if (e.rfind("W/", 0) == 0) e = e.substr(2);
  size_t a = e.find_first_not_of('"'), b = e.find_last_not_of('"');
  return a == std::string::npos ? "" : e.substr(a, b - a + 1);
}

// Renames a verified part file to blobs/<name>; an LFS name (sha256) must match the bytes.
void commit_blob(const Ctx& c, const fs::path& part, const fs::path& blob, const std::string& sha) {
  std::string name = blob.filename().string();
  if (is_sha256_hex(name) && sha != name) {
    ::unlink(part.c_str());
    throw Error(c.where, "the downloaded bytes do not match their sha256 (expected " + name + ", got " + sha +
                             "); the partial file was removed, retry");
  }
  if (::rename(part.c_str(), blob.c_str()) != 0)
    throw Error(blob.string(), std::string("cannot move the download in place: ") + std::strerror(errno));
}

// Servers that refuse HEAD (405/501): one GET gives the metadata and the bytes, into a temporary part file
// (its blob name is only known from the response headers).
std::string get_only(const Ctx& c) {
  fs::path blobs = c.storage / "blobs";
  make_dirs(blobs);
  fs::path part = blobs / ("tmp-" + unique_suffix() + ".incomplete");
  Fetched f;
  try {
    f = get_to_file(c, file_url(c, c.rev), true, part, false, -1);
  } catch (...) {
    ::unlink(part.c_str());
    throw;
  }
  if (f.r.status < 200 || f.r.status >= 300) {
    ::unlink(part.c_str());
    return on_http_error(c, f.r.status, f.r.headers, f.r.body);
  }
  // The hub's answer may be a redirect to a CDN: its X-Repo-Commit / X-Linked-Etag are in the chain.
  std::string commit = header(f.r.seen, "x-repo-commit");
  if (!safe_component(commit)) {
    ::unlink(part.c_str());
    throw Error(c.where, c.endpoint + " sent no usable X-Repo-Commit header: is it a Hugging Face hub?");
  }
  std::string etag = normalize_etag(header(f.r.seen, "x-linked-etag"));
  if (etag.empty()) etag = normalize_etag(header(f.r.headers, "etag"));
  if (!safe_component(etag)) etag = f.sha256;
  write_ref(c, commit);
  fs::path blob = blobs / etag;
  fs::path pointer = c.storage / "snapshots" / commit / c.file;
  make_dirs(pointer.parent_path());
  if (is_file(blob)) ::unlink(part.c_str());
  else commit_blob(c, part, blob, f.sha256);
  make_pointer(pointer, c.file, blob);
  return pointer.string();
}

Ctx make_ctx(const std::string& repo, const std::string& file, const HubOptions& opt, bool optional) {
  if (std::string why = repo_id_error(repo); !why.empty()) throw Error(repo, "invalid model id: " + why);
  if (std::string why = relative_path_error(file); !why.empty())
    throw Error(repo + "/" + file, "invalid file name: it " + why);
  Ctx c;
  c.repo = repo;
  c.file = file;
  c.rev = opt.revision.empty() ? "main" : opt.revision;
  if (std::string why = relative_path_error(c.rev); !why.empty())
    throw Error(repo + "@" + c.rev, "invalid revision: it " + why);
  c.where = repo + "/" + file;
  c.cache = hub_cache_dir(opt);
  c.storage = c.cache / folder_name(repo);
  c.endpoint = !opt.endpoint.empty() ? opt.endpoint : env("HF_ENDPOINT").value_or("https://huggingface.co");
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  c.offline = opt.offline || offline_env();
  c.optional = optional;
  c.progress = opt.progress;
  c.timeout_s = timeout_seconds(opt, "HF_HUB_DOWNLOAD_TIMEOUT");
  c.etag_timeout_s = timeout_seconds(opt, "HF_HUB_ETAG_TIMEOUT");
  return c;
}

}  // namespace

// -------------------------------------------------------------------------------------------------------------

std::string hub_cache_dir(const HubOptions& opt) {
  if (!opt.cache_dir.empty()) return expand(opt.cache_dir);
  for (const char* name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"})
    if (auto v = env(name)) return expand(*v);
  return hf_home() + "/hub";
}

std::string repo_id_error(const std::string& s) {
  if (s.empty()) return "it is empty";
  size_t slash = s.find('/');
  if (slash != std::string::npos && s.find('/', slash + 1) != std::string::npos)
    return "it must be 'name' or 'namespace/name'";
  std::string ns = slash == std::string::npos ? "" : s.substr(0, slash);
  std::string name = slash == std::string::npos ? s : s.substr(slash + 1);
  auto part_ok = [](const std::string& p) {
    if (p.empty() || !is_word(p.front()) || !is_word(p.back())) return false;
    for (char c : p)
      if (!(is_word(c) || c == '-' || c == '.')) return false;
    return true;
  };
  if ((slash != std::string::npos && !part_ok(ns)) || !part_ok(name) || name.size() > 96)
    return "use letters, digits, '-', '_' or '.', not starting or ending with '-' or '.', name at most 96 characters";
  if (s.find("--") != std::string::npos || s.find("..") != std::string::npos) return "it cannot contain '--' or '..'";
  if (s.size() >= 4 && s.compare(s.size() - 4, 4, ".git") == 0) return "it cannot end with '.git'";
  return "";
}

bool is_hub_id(const std::string& s) {
  std::error_code ec;
  return repo_id_error(s).empty() && !fs::exists(expand_user(s), ec);
}

std::string repo_cache_dir(const std::string& repo_id, const HubOptions& opt) {
  if (std::string why = repo_id_error(repo_id); !why.empty()) throw Error(repo_id, "invalid model id: " + why);
  return (fs::path(hub_cache_dir(opt)) / folder_name(repo_id)).string();
}

std::string hub_file(const std::string& repo_id, const std::string& filename, const HubOptions& opt, bool optional) {
  Ctx c = make_ctx(repo_id, filename, opt, optional);
  auto [token, from] = find_token(opt);
  c.token = token;
  c.token_from = from;
  if (auto hit = from_cache(c)) return *hit;
  if (c.offline) {
    if (optional) return "";
    throw Error(c.where, "not in the cache (" + c.storage.string() + ") and HF_HUB_OFFLINE is set");
  }

  std::string url = file_url(c, c.rev);
  Response r = head_metadata(c, url);
  if (r.code != CURLE_OK) {
    // No answer at all: like huggingface_hub this falls back to the cache (already searched), and like
    // transformers an optional file is then treated as absent (the same as offline).
    if (optional) return "";
    unreachable(c, r);
  }
  if (r.status == 405 || r.status == 501) return get_only(c);
  if (r.status >= 400 || r.status < 200) return on_http_error(c, r.status, r.headers, r.body);

  Meta m;
  m.commit = header(r.headers, "x-repo-commit");
  if (!safe_component(m.commit))
    throw Error(c.where, c.endpoint + " sent no usable X-Repo-Commit header: is it a Hugging Face hub?");
  std::string linked = header(r.headers, "x-linked-etag");
  m.etag = normalize_etag(linked.empty() ? header(r.headers, "etag") : linked);
  std::string linked_size = header(r.headers, "x-linked-size");
  m.size = parse_size(!linked_size.empty() ? linked_size : r.status < 300 ? header(r.headers, "content-length") : "");
  m.location = url;
  if (r.status >= 300 && !r.redirect_url.empty()) {
    m.location = r.redirect_url;
    m.send_token = url_origin(url) == url_origin(m.location);  // a signed CDN URL gets no token
  }

  fs::path blobs = c.storage / "blobs";
  fs::path pointer = c.storage / "snapshots" / m.commit / c.file;
  make_dirs(blobs);
  make_dirs(pointer.parent_path());
  write_ref(c, m.commit);
  if (is_file(pointer)) return pointer.string();

  if (!safe_component(m.etag)) {  // no (usable) ETag: name the blob by the sha256 of its bytes
    fs::path part = blobs / ("tmp-" + unique_suffix() + ".incomplete");
    Fetched f;
    try {
      f = get_to_file(c, m.location, m.send_token, part, false, m.size);
    } catch (...) {
      ::unlink(part.c_str());
      throw;
    }
    if (f.r.status < 200 || f.r.status >= 300) {
      ::unlink(part.c_str());
      return on_http_error(c, f.r.status, f.r.headers, f.r.body);
    }
    fs::path blob = blobs / f.sha256;
    if (is_file(blob)) ::unlink(part.c_str());
    else commit_blob(c, part, blob, f.sha256);
    make_pointer(pointer, c.file, blob);
    return pointer.string();
  }

  fs::path blob = blobs / m.etag;
  BlobLock lock(c.cache / ".locks" / folder_name(c.repo) / (m.etag + ".lock"));
  if (!is_file(blob)) {
    fs::path part = blobs / (m.etag + ".incomplete");
    Fetched f = get_to_file(c, m.location, m.send_token, part, true, m.size);
    if (f.r.status < 200 || f.r.status >= 300) {
      if (m.location != url)
        throw Error(c.where,
                    "download from " + url_origin(m.location) + " failed with HTTP " + std::to_string(f.r.status));
      return on_http_error(c, f.r.status, f.r.headers, f.r.body);
    }
    commit_blob(c, part, blob, f.sha256);
  }
  make_pointer(pointer, c.file, blob);
  return pointer.string();
}

bool is_http_url(const std::string& s) {
  auto starts = [&](const char* p) {
    const size_t n = std::strlen(p);
    if (s.size() < n) return false;
    for (size_t i = 0; i < n; ++i)
      if (std::tolower(static_cast<unsigned char>(s[i])) != p[i]) return false;
    return true;
  };
  return starts("http://") || starts("https://");
}

std::vector<uint8_t> fetch_url(const std::string& url, const UrlFetchOptions& opt) {
  if (!is_http_url(url)) throw Error(url, "not an http:// or https:// URL");
  Request q;
  q.url = url;
  q.timeout_s = std::max(1, opt.timeout_s);
  q.total_timeout_s = q.timeout_s;
  q.max_bytes = opt.max_bytes;
  std::vector<uint8_t> bytes;
  const std::string limit = "larger than the limit of " + std::to_string(opt.max_bytes) + " bytes";
  const Response r = perform(q, [&](long, const Headers&, const char* data, size_t n) {
    if (bytes.size() + n > opt.max_bytes) throw Error(url, limit);  // a server that sent no Content-Length
    bytes.insert(bytes.end(), data, data + n);
    return true;
  });
  if (r.failure) std::rethrow_exception(r.failure);
  if (r.code == CURLE_FILESIZE_EXCEEDED) throw Error(url, limit);
  if (r.code == CURLE_OPERATION_TIMEDOUT) throw Error(url, "timed out after " + std::to_string(q.timeout_s) + " s");
  if (r.code != CURLE_OK) throw Error(url, "cannot fetch (" + one_line(r.error) + ")");
  if (r.status < 200 || r.status >= 300) {
    std::string msg = "HTTP " + std::to_string(r.status);
    if (!r.body.empty() && r.body.size() < 200 && r.body.find('<') == std::string::npos) msg += ": " + one_line(r.body);
    throw Error(url, msg);
  }
  if (bytes.empty()) throw Error(url, "empty response");
  return bytes;
}

std::string resolve_model(const std::string& model, const HubOptions& opt) {
  if (model.empty()) throw Error("model", "empty name: give a local folder or a Hugging Face model id");
  std::string path = expand_user(model);
  std::error_code ec;
  if (fs::exists(path, ec)) return path;
  bool path_like = model[0] == '/' || model[0] == '.' || model[0] == '~';
  if (path_like) throw Error(model, "no such file or directory");
  if (std::string why = repo_id_error(model); !why.empty())
    throw Error(model, "no such local folder, and not a valid Hugging Face model id: " + why);

  // The config pins the commit; everything else is fetched at that commit, into the same snapshot. A transformers
  // config.json wins over open_clip_config.json when a repo has both (transformers' files are then complete).
  std::string config = hub_file(model, "config.json", opt, /*optional=*/true);
  const bool open_clip = config.empty();
  if (open_clip) config = hub_file(model, "open_clip_config.json", opt, /*optional=*/true);
  if (config.empty()) hub_file(model, "config.json", opt);  // neither: the usual error (not found, offline, ...)
  fs::path snapshot = fs::path(config).parent_path();
  HubOptions at = opt;
  at.revision = snapshot.filename().string();
  for (const char* f : {"preprocessor_config.json", "vocab.json", "merges.txt", "tokenizer.json",
                        "tokenizer_config.json", "special_tokens_map.json", "spiece.model"})  // spiece.model: SigLIP
    hub_file(model, f, at, /*optional=*/true);

  // Weights: the first file of the layout's order that the repo has (each absent one costs a 404 probe once;
  // the .no_exist markers keep a warm cache offline). Only what exists is downloaded.
  const std::vector<std::string> order = open_clip ? open_clip_weight_files() : weight_file_names();
  for (const std::string& f : order) {
    std::string path = hub_file(model, f, at, /*optional=*/true);
    if (path.empty()) continue;
    if (f.size() < 5 || f.compare(f.size() - 5, 5, ".json") != 0) return snapshot.string();
    Json j = load_json(path);
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(path, "no \"weight_map\" object");
    std::set<std::string> shards;
    for (const auto& [tensor, file] : j["weight_map"].items()) {
      if (!file.is_string()) throw Error(path, "weight_map[\"" + one_line(tensor, 80) + "\"] is not a file name");
      shards.insert(file.get<std::string>());
    }
    if (shards.empty()) throw Error(path, "empty \"weight_map\"");
    for (const auto& shard : shards) hub_file(model, shard, at);
    return snapshot.string();
  }
  std::string names;
  for (size_t i = 0; i < order.size(); ++i) names += (i ? (i + 1 == order.size() ? " or " : ", ") : "") + order[i];
  bool offline = opt.offline || offline_env();
  throw Error(model, "no weights (" + names + ") found at revision " + at.revision +
                         (offline ? " in the cache (HF_HUB_OFFLINE is set)" : ""));
}

}  // namespace zeroshot::io
