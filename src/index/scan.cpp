#include "index/scan.h"

#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "image/image.h"
#include "zeroshot/error.h"

namespace zeroshot::index {

namespace fs = std::filesystem;

namespace {

bool stat_file(const std::string& path, FileStat* out, std::string* error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    *error = std::strerror(errno);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    *error = "not a regular file";
    return false;
  }
  out->path = path;
  out->size = static_cast<int64_t>(st.st_size);
  out->mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return true;
}

}  // namespace

bool excluded(const std::vector<std::string>& excludes, const std::string& name, const std::string& relative) {
  for (const auto& g : excludes)
    if (::fnmatch(g.c_str(), name.c_str(), 0) == 0 || ::fnmatch(g.c_str(), relative.c_str(), 0) == 0) return true;
  return false;
}

ScanResult scan(const std::vector<std::string>& roots, const std::vector<std::string>& excludes) {
  ScanResult r;
  for (const auto& given : roots) {
    const std::string root = absolute_path(given);
    std::error_code ec;
    const auto st = fs::status(root, ec);
    if (ec || !fs::exists(st)) throw Error(given, "no such file or directory");
    r.roots.push_back(root);
    std::string err;
    if (!fs::is_directory(st)) {
      FileStat f;
      if (stat_file(root, &f, &err)) r.files.push_back(std::move(f));
      else r.errors.emplace_back(root, err);
      continue;
    }
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
    if (ec) throw Error(given, "cannot read the folder: " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) {
        r.errors.emplace_back(it->path().string(), ec.message());
        ec.clear();
        continue;
      }
      const fs::path& p = it->path();
      const std::string rel = p.lexically_relative(root).string();
      if (!excludes.empty() && excluded(excludes, p.filename().string(), rel)) {
        if (it->is_directory(ec) && !it->is_symlink(ec)) it.disable_recursion_pending();
        ec.clear();
        continue;
      }
      std::error_code e2;
      if (!it->is_regular_file(e2)) continue;
      if (!image::has_image_extension(p.string())) {
        const std::string name = p.filename().string();
        if (!name.empty() && name[0] != '.') r.other_files.push_back(p.string());
        continue;
      }
      FileStat f;
      if (stat_file(p.string(), &f, &err)) r.files.push_back(std::move(f));
      else r.errors.emplace_back(p.string(), err);
    }
    if (ec) r.errors.emplace_back(root, ec.message());
  }
  std::sort(r.files.begin(), r.files.end(), [](const FileStat& a, const FileStat& b) { return a.path < b.path; });
  std::sort(r.other_files.begin(), r.other_files.end());
  r.other_files.erase(std::unique(r.other_files.begin(), r.other_files.end()), r.other_files.end());
  r.files.erase(std::unique(r.files.begin(), r.files.end(),
                            [](const FileStat& a, const FileStat& b) { return a.path == b.path; }),
                r.files.end());
  return r;
}

}  // namespace zeroshot::index
