// zeroshot cache [list | prune | clear]: what zeroshot keeps in its cache folder ($XDG_CACHE_HOME/zeroshot, else
// ~/.cache/zeroshot: classify::resolve_cache_dir), and removing it.
//
// Kinds: packed weights (packed-weights/<16 hex>-<8 hex>-<f32|bf16|int8>.bin, models/packed_weights.h) and label
// embeddings (label-embeddings/<32 hex>.bin, classify/label_cache.h), plus the temporary files of their writers.
// Downloaded models are not here: they live in the Hugging Face hub cache, shared with Python tools (huggingface-cli
// scan-cache / delete-cache manage it), and the listing only says where.
//
// Safety: only regular files whose name is one the engine gives are listed or removed; anything else (a foreign
// file, a folder, a symbolic link) is never touched, and a kind's folder that is a link leading out of the cache
// folder is not entered. unlink() removes the directory entry only, never a link's target. Removing a packed file
// another process maps is safe on Linux: the mapping keeps the inode until it is unmapped.
// Status: "ok"; "stale" (a packed file whose source weight file changed or vanished, or of another format version
// or panel layout: no load here can use it; a temporary file over an hour old, left by a writer that died);
// "damaged" (unreadable, truncated, a bad header). prune removes stale and damaged files, then by --older-than, then
// by --max-size, least recently used first (the last use is the later of the access time, which a load sets, and
// the modification time). A label file names no model (its key hashes the model's fingerprint with the labels and
// templates): only its last use tells that it is no longer needed.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "classify/label_cache.h"
#include "cli_common.h"
#include "commands.h"
#include "exit_codes.h"
#include "io/hub.h"
#include "models/packed_weights.h"
#include "nn/linear.h"
#include "zeroshot/error.h"

namespace zeroshot::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kPacked = "packed";
constexpr const char* kLabels = "labels";
// A temporary file younger than this may belong to a writer still at work (0.5 GB take seconds): left alone.
constexpr int64_t kTempGraceSeconds = 3600;
constexpr const char* kBeingWritten = "being written";

struct CacheArgs {
  std::string format = "auto";
  std::string kind = "all";
  double older_than_days = -1;
  std::string max_size;
  bool dry_run = false;
};

struct Entry {
  std::string kind;  // kPacked, kLabels
  std::string path;
  uint64_t bytes = 0;     // on disk (a packed file's padding is a hole)
  int64_t last_use = 0;   // seconds since the epoch
  std::string status;     // ok, stale, damaged
  std::string reason;     // why stale or damaged
  std::string precision;  // packed
  std::vector<std::string> sources;
};

struct Scan {
  std::string dir;
  std::vector<Entry> entries;
};

bool all_hex(const std::string& s, size_t n) {
  return s.size() == n &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(c) || (c >= 'a' && c <= 'f'); });
}

// "<name>.tmp.<pid>.<n>[.<n>]": what both writers name their temporary files.
bool is_temp_of(const std::string& name, bool (*is_entry)(const std::string&)) {
  const size_t at = name.find(".tmp.");
  if (at == std::string::npos) return false;
  const std::string rest = name.substr(at + 5);
  if (rest.empty() || !std::all_of(rest.begin(), rest.end(), [](char c) { return std::isdigit(c) || c == '.'; }))
    return false;
  return is_entry(name.substr(0, at));
}

bool is_label_name(const std::string& name) {
  return name.size() == 36 && name.compare(32, 4, ".bin") == 0 && all_hex(name.substr(0, 32), 32);
}
bool is_packed_name(const std::string& name) { return models::is_packed_weights_cache_name(name); }

std::string why(const Error& e, const std::string& path) {
  std::string w = e.what();
  if (w.rfind(path + ": ", 0) == 0) w.erase(0, path.size() + 2);
  return w;
}

void check_packed(Entry* e) {
  models::PackedWeightsHeader h;
  try {
    h = models::read_packed_weights_header(e->path);
  } catch (const Error& err) {
    // "stale packed weights file (format version 1, ...)" -> status stale, reason "format version 1, ...".
    std::string w = why(err, e->path);
    e->status = w.rfind("stale", 0) == 0 ? "stale" : "damaged";
    const std::string prefix = e->status + " packed weights file (";
    if (w.rfind(prefix, 0) == 0 && w.back() == ')') w = w.substr(prefix.size(), w.size() - prefix.size() - 1);
    e->reason = w;
    return;
  }
  e->precision = h.precision;
  e->sources = h.sources;
  e->status = "ok";
  const nn::Precision p = h.precision == "bf16"   ? nn::Precision::BF16
                          : h.precision == "int8" ? nn::Precision::Int8
                                                  : nn::Precision::F32;
  if (h.precision != "f32" && h.precision != "bf16" && h.precision != "int8") {
    e->status = "damaged";
    e->reason = "unknown precision " + h.precision;
    return;
  }
  if (h.layout != nn::packed_layout(p)) {
    e->status = "stale";
    e->reason = "made for another panel layout or CPU (" + h.layout + ")";
    return;
  }
  for (const std::string& s : h.sources) {
    std::error_code ec;
    if (!fs::exists(s, ec)) {
      e->status = "stale";
      e->reason = "source gone: " + s;
      return;
    }
  }
  // The check a load makes (api/backend.cpp): the identity ends with the sources' sizes and modification times.
  std::string now;
  const size_t semi = h.identity.find(';');
  if (!h.sources.empty() && (!models::source_identity(h.sources, &now) || semi == std::string::npos ||
                             h.identity.compare(semi, std::string::npos, now) != 0)) {
    e->status = "stale";
    e->reason = "source changed since: " + h.sources[0] + (h.sources.size() > 1 ? " (and others)" : "");
  }
}

// The label file's header and size (classify/label_cache.h); the payload hash is left to the loader (a list of
// thousands of label sets must not read them all), which recomputes a file that fails it.
void check_labels(Entry* e, uint64_t size) {
  constexpr size_t kHeader = 8 + 4 + 4 + 32 + 8 + 8 + 32;
  uint8_t h[kHeader] = {};
  // O_NOATIME: reading must not move the last use (refused for a file of another owner: then without).
  int fd = ::open(e->path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = ::open(e->path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  const int err = errno;
  const ssize_t got = fd >= 0 ? ::pread(fd, h, kHeader, 0) : -1;
  if (fd >= 0) ::close(fd);
  e->status = "damaged";
  if (fd < 0 || got < 0) {
    e->reason = std::string("cannot read: ") + std::strerror(fd < 0 ? err : errno);
    return;
  }
  auto le = [&](size_t at, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | h[at + static_cast<size_t>(i)];
    return v;
  };
  if (static_cast<size_t>(got) < kHeader || std::memcmp(h, "ZSLABELS", 8) != 0) {
    e->reason = "not a label embeddings file";
    return;
  }
  if (le(8, 4) != classify::kLabelCacheVersion) {
    // An older format: a later build dropped it; a version unknown to this build: who knows.
    if (le(8, 4) != 0 && le(8, 4) < classify::kLabelCacheVersion) e->status = "stale";
    e->reason = "format version " + std::to_string(le(8, 4));
    return;
  }
  const uint64_t rows = le(48, 8), dim = le(56, 8);
  if (dim == 0 || rows > (size - kHeader) / 4 / dim || kHeader + rows * dim * 4 != size) {
    e->reason = "truncated or wrong size";
    return;
  }
  e->status = "ok";
}

// The folder of one kind, when it is inside the cache folder (a link to elsewhere is not entered).
std::string kind_folder(const std::string& root, const char* sub) {
  const fs::path p = fs::path(root) / sub;
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(p, ec);
  if (ec || !fs::exists(st)) return "";
  if (fs::is_symlink(st)) {
    const fs::path target = fs::canonical(p, ec);
    const fs::path base = fs::canonical(root, ec);
    if (ec) return "";
    const std::string t = target.string(), b = base.string() + "/";
    if (t.rfind(b, 0) != 0 || !fs::is_directory(target, ec)) return "";
  } else if (!fs::is_directory(st)) {
    return "";
  }
  return p.string();
}

void scan_kind(const std::string& root, const char* kind, const char* sub, bool (*is_entry)(const std::string&),
               std::vector<Entry>* out) {
  const std::string folder = kind_folder(root, sub);
  if (folder.empty()) return;
  std::error_code ec;
  fs::directory_iterator it(folder, ec);
  if (ec) throw Error(folder, "cannot read the cache folder: " + ec.message());
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  for (fs::directory_iterator end; it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool temp = is_temp_of(name, is_entry);
    if (!temp && !is_entry(name)) continue;
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // links, folders: not ours
    Entry e;
    e.kind = kind;
    e.path = it->path().string();
    e.bytes = static_cast<uint64_t>(st.st_blocks) * 512;
    e.last_use = std::max<int64_t>(st.st_atim.tv_sec, st.st_mtim.tv_sec);
    if (temp) {
      const bool old = now - st.st_mtim.tv_sec > kTempGraceSeconds;
      e.status = old ? "stale" : "ok";
      e.reason = old ? "temporary file of an interrupted write" : kBeingWritten;
    } else if (std::string(kind) == kPacked) {
      check_packed(&e);
    } else {
      check_labels(&e, static_cast<uint64_t>(st.st_size));
    }
    out->push_back(std::move(e));
  }
  if (ec) throw Error(folder, "cannot read the cache folder: " + ec.message());
}

Scan scan(const std::string& kind) {
  Scan s;
  s.dir = classify::resolve_cache_dir("");
  if (s.dir.empty()) throw Error("cache", "no cache folder: neither $XDG_CACHE_HOME nor $HOME is set");
  if (kind == "all" || kind == kPacked) scan_kind(s.dir, kPacked, "packed-weights", is_packed_name, &s.entries);
  if (kind == "all" || kind == kLabels) scan_kind(s.dir, kLabels, "label-embeddings", is_label_name, &s.entries);
  std::sort(s.entries.begin(), s.entries.end(), [](const Entry& a, const Entry& b) {
    return a.kind != b.kind ? a.kind > b.kind : a.last_use > b.last_use;  // packed first, most recent first
  });
  return s;
}

struct KindTotal {
  size_t files = 0;
  uint64_t bytes = 0;
};
KindTotal kind_total(const std::vector<Entry>& entries, const std::string& kind) {
  KindTotal t;
  for (const Entry& e : entries)
    if (e.kind == kind) {
      ++t.files;
      t.bytes += e.bytes;
    }
  return t;
}

std::string human(uint64_t b) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string iso_time(int64_t t, bool utc) {
  const time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  if (utc) gmtime_r(&tt, &tm);
  else localtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, utc ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M", &tm);
  return buf;
}

// ccache's sizes: 500M, 2G, 1.5GB (powers of 1000), 2Gi, 512MiB (powers of 1024), or bytes.
uint64_t parse_size(const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();
  double mul = 0;
  const std::string prefixes = "kmgt";
  if (unit.empty()) mul = 1;
  else if (unit.size() <= 2 && prefixes.find(static_cast<char>(std::tolower(unit[0]))) != std::string::npos &&
           (unit.size() == 1 || unit[1] == 'i')) {
    const double base = unit.size() == 2 ? 1024 : 1000;
    mul = base;
    for (size_t i = 0; i < prefixes.find(static_cast<char>(std::tolower(unit[0]))); ++i) mul *= base;
  }
  if (used == 0 || mul == 0 || !(v >= 0) || v * mul > 1.8e19)
    throw Error("--max-size", "cannot read \"" + text + "\" as a size (e.g. 500M, 2G, 1.5GB, 4Gi)");
  return static_cast<uint64_t>(v * mul);
}

std::string entry_json(const Entry& e, const std::string& extra = "") {
  std::string j = "{\"kind\": " + json_string(e.kind) + ", \"path\": " + json_string(e.path) +
                  ", \"bytes\": " + std::to_string(e.bytes) +
                  ", \"last_use\": " + json_string(iso_time(e.last_use, true)) +
                  ", \"status\": " + json_string(e.status);
  if (!e.reason.empty()) j += ", \"reason\": " + json_string(e.reason);
  if (e.kind == kPacked && !e.precision.empty()) {
    j += ", \"precision\": " + json_string(e.precision) + ", \"sources\": [";
    for (size_t i = 0; i < e.sources.size(); ++i) j += (i ? ", " : "") + json_string(e.sources[i]);
    j += "]";
  }
  return j + extra + "}";
}

const char* kind_title(const std::string& kind) { return kind == kPacked ? "packed weights" : "label embeddings"; }

int run_list(const CacheArgs& a) {
  const Scan s = scan(a.kind);
  uint64_t total = 0, stale_bytes = 0;
  size_t stale = 0;
  for (const Entry& e : s.entries) {
    total += e.bytes;
    if (e.status != "ok") {
      ++stale;
      stale_bytes += e.bytes;
    }
  }
  const std::string hub = io::hub_cache_dir(io::HubOptions{});
  if (resolve_format(a.format) == Format::Json) {
    std::string j = "{\"cache_dir\": " + json_string(s.dir) + ", \"entries\": [";
    for (size_t i = 0; i < s.entries.size(); ++i) j += (i ? ", " : "") + entry_json(s.entries[i]);
    j += "], \"totals\": {\"files\": " + std::to_string(s.entries.size()) + ", \"bytes\": " + std::to_string(total);
    for (const char* k : {kPacked, kLabels}) {
      const KindTotal t = kind_total(s.entries, k);
      j += std::string(", \"") + k + "\": {\"files\": " + std::to_string(t.files) +
           ", \"bytes\": " + std::to_string(t.bytes) + "}";
    }
    j += ", \"stale_or_damaged\": {\"files\": " + std::to_string(stale) +
         ", \"bytes\": " + std::to_string(stale_bytes) + "}}, \"hub_cache\": " + json_string(hub) + "}";
    std::printf("%s\n", j.c_str());
    return kExitOk;
  }
  std::printf("cache folder: %s%s\n", s.dir.c_str(), s.entries.empty() ? " (empty)" : "");
  for (const char* k : {kPacked, kLabels}) {
    const auto [n, b] = kind_total(s.entries, k);
    if (n == 0) continue;
    std::printf("\n%s: %zu file%s, %s\n", kind_title(k), n, n == 1 ? "" : "s", human(b).c_str());
    std::printf("  %10s  %-16s  %-7s  %s\n", "SIZE", "LAST USE", "STATUS",
                k == std::string(kPacked) ? "MODEL" : "FILE");
    for (const Entry& e : s.entries) {
      if (e.kind != k) continue;
      std::string what = fs::path(e.path).filename().string();
      if (k == std::string(kPacked) && !e.sources.empty())
        what = fs::path(e.sources[0]).parent_path().string() + " (" + e.precision + ", " + what + ")";
      if (e.status != "ok" || !e.reason.empty()) what += "  [" + e.reason + "]";
      std::printf("  %10s  %-16s  %-7s  %s\n", human(e.bytes).c_str(), iso_time(e.last_use, false).c_str(),
                  e.status.c_str(), what.c_str());
    }
  }
  std::printf("\ntotal: %zu file%s, %s", s.entries.size(), s.entries.size() == 1 ? "" : "s", human(total).c_str());
  if (stale)
    std::printf("; %zu stale or damaged (%s): `zeroshot cache prune` removes them", stale, human(stale_bytes).c_str());
  std::printf("\ndownloaded models are in the Hugging Face cache, %s (huggingface-cli scan-cache)\n", hub.c_str());
  return kExitOk;
}

// Removes `victims` (or, with dry_run, only says so) and prints what was freed. Non-zero when a file could not be
// removed (each named on stderr).
int remove_entries(const std::vector<std::pair<Entry, std::string>>& victims, const CacheArgs& a, const Scan& s) {
  uint64_t freed = 0;
  size_t files = 0;
  bool failed = false;
  const bool json = resolve_format(a.format) == Format::Json;
  std::string j;
  for (const auto& [e, why_removed] : victims) {
    if (!a.dry_run && ::unlink(e.path.c_str()) != 0 && errno != ENOENT) {
      std::fprintf(stderr, "zeroshot: %s: cannot remove: %s\n", e.path.c_str(), std::strerror(errno));
      failed = true;
      continue;
    }
    freed += e.bytes;
    ++files;
    if (json) {
      j += (j.empty() ? "" : ", ") + entry_json(e, ", \"removed_because\": " + json_string(why_removed));
    } else {
      std::printf("%s %s (%s, %s)\n", a.dry_run ? "would remove" : "removed", e.path.c_str(), human(e.bytes).c_str(),
                  why_removed.c_str());
    }
  }
  uint64_t left = 0;
  for (const Entry& e : s.entries) left += e.bytes;
  left -= std::min(left, freed);
  if (json) {
    std::printf(
        "{\"cache_dir\": %s, \"dry_run\": %s, \"removed\": [%s], \"freed_files\": %zu, \"freed_bytes\": %llu, "
        "\"remaining_bytes\": %llu}\n",
        json_string(s.dir).c_str(), a.dry_run ? "true" : "false", j.c_str(), files,
        static_cast<unsigned long long>(freed), static_cast<unsigned long long>(left));
  } else {
    std::printf("%s %s in %zu file%s; %s left in %s\n", a.dry_run ? "would free" : "freed", human(freed).c_str(), files,
                files == 1 ? "" : "s", human(left).c_str(), s.dir.c_str());
  }
  return failed ? kExitError : kExitOk;
}

int run_prune(const CacheArgs& a) {
  const Scan s = scan(a.kind);
  const uint64_t max_size = a.max_size.empty() ? 0 : parse_size(a.max_size);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  std::vector<std::pair<Entry, std::string>> victims;
  std::vector<Entry> kept;
  for (const Entry& e : s.entries) {
    if (e.status != "ok") victims.emplace_back(e, e.status + ": " + e.reason);
    else if (a.older_than_days >= 0 && static_cast<double>(now - e.last_use) > a.older_than_days * 86400)
      victims.emplace_back(e, "unused for " + std::to_string((now - e.last_use) / 86400) + " days");
    else kept.push_back(e);
  }
  if (!a.max_size.empty()) {
    std::sort(kept.begin(), kept.end(), [](const Entry& x, const Entry& y) { return x.last_use < y.last_use; });
    uint64_t total = 0;
    for (const Entry& e : kept) total += e.bytes;
    for (const Entry& e : kept) {
      if (total <= max_size) break;
      victims.emplace_back(e, "least recently used over --max-size " + a.max_size);
      total -= e.bytes;
    }
  }
  return remove_entries(victims, a, s);
}

int run_clear(const CacheArgs& a) {
  const Scan s = scan(a.kind);
  std::vector<std::pair<Entry, std::string>> victims;
  for (const Entry& e : s.entries)
    if (e.reason != kBeingWritten) victims.emplace_back(e, "clear");
  return remove_entries(victims, a, s);
}

void add_common(CLI::App* c, const std::shared_ptr<CacheArgs>& a) {
  add_format_option(*c, &a->format);
  c->add_option("--kind", a->kind, "Which files: packed (packed weights), labels (label embeddings) or all")
      ->default_val("all")
      ->check(CLI::IsMember({"all", kPacked, kLabels}));
}

}  // namespace

void add_cache_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<CacheArgs>();
  CLI::App* c = app.add_subcommand(
      "cache", "List what zeroshot keeps in its cache folder ($XDG_CACHE_HOME/zeroshot), prune or clear it");
  c->require_subcommand(0, 1);
  add_common(c, a);
  CLI::App* list = c->add_subcommand("list", "List the cached files (the default): size, last use, status, totals");
  add_common(list, a);
  CLI::App* prune =
      c->add_subcommand("prune", "Remove stale and damaged files, and with the options the least recently used ones");
  add_common(prune, a);
  prune->add_option("--older-than", a->older_than_days, "Also remove files not used for more than DAYS days")
      ->check(CLI::NonNegativeNumber);
  prune->add_option("--max-size", a->max_size,
                    "Then remove the least recently used files until the rest fit in SIZE (500M, 2G, 4Gi; bytes)");
  prune->add_flag("-n,--dry-run", a->dry_run, "Only say what would be removed");
  CLI::App* clear = c->add_subcommand("clear", "Remove every cached file (of --kind)");
  add_common(clear, a);
  clear->add_flag("-n,--dry-run", a->dry_run, "Only say what would be removed");
  c->footer(
      "Kinds: packed weights (packed-weights/: the weights of a model in the AVX-512 kernels' layout, one file per\n"
      "model folder and precision, made by the first f32/bf16/int8 load) and label embeddings (label-embeddings/:\n"
      "one file per model, label set and templates). A packed file is stale when its source weight files changed or\n"
      "vanished (or it was made for another CPU or by another format version): no load can use it again. A load\n"
      "rewrites a stale or damaged file and removes the file of an older version of the same weights by itself.\n"
      "Only files named as zeroshot names them are listed or removed: nothing else in the folder is touched.\n"
      "Downloaded models live in the Hugging Face cache (huggingface-cli scan-cache / delete-cache).\n"
      "Exit code: 0 done; 2 error (a file that could not be removed is named on stderr).");
  c->callback([a, action, list, prune, clear] {
    if (prune->parsed()) *action = [a] { return run_prune(*a); };
    else if (clear->parsed()) *action = [a] { return run_clear(*a); };
    else *action = [a] { return run_list(*a); };
    (void)list;
  });
}

}  // namespace zeroshot::cli
