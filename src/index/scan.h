// Finding the image files under the folders given to `zeroshot index`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "index/store.h"

namespace zeroshot::index {

struct FileStat {
  std::string path;  // absolute (absolute_path())
  int64_t size = 0;
  int64_t mtime_ns = 0;
};

struct ScanResult {
  Scope roots;                                              // the roots, absolute
  std::vector<FileStat> files;                              // sorted by path, no duplicates
  std::vector<std::pair<std::string, std::string>> errors;  // (path, problem): folders or files that cannot be read
  // Regular files in the folders that are not images by their extension (not excluded, not hidden: names starting
  // with '.' are left out), sorted: the summary names them so that a format we do not read is not silently missed.
  std::vector<std::string> other_files;
};

// `roots`: folders, walked recursively (symlinks to files are followed, symlinks to folders are not: no loops), or
// files. In folders, files with an image extension are kept; a file named as a root is kept whatever its name.
// `excludes`: fnmatch(3) globs ('*' also matches '/'); a file or folder is skipped (a folder with all it holds)
// when a glob matches its name or its path relative to the root, e.g. "*.gif", ".thumbnails", "2019/raw/*".
// A root that does not exist is an error naming it.
ScanResult scan(const std::vector<std::string>& roots, const std::vector<std::string>& excludes);

// True when a glob matches `name` or `relative`.
bool excluded(const std::vector<std::string>& excludes, const std::string& name, const std::string& relative);

}  // namespace zeroshot::index
