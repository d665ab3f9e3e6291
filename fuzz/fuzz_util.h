// Shared by the libFuzzer targets in fuzz/: fixture paths and a scratch file for readers that take a path.
//
// Contract of every target: any input either parses or throws zeroshot::Error (server::HttpError for requests);
// anything else (a crash, a sanitizer report, another exception escaping, a leak) is a finding.
// Single-threaded: libFuzzer runs one input at a time per process; -jobs/-workers use separate processes, so the
// scratch paths carry the process id.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace zeroshot::fuzz {

inline std::string fixtures() { return ZEROSHOT_FIXTURES; }

// A per-process scratch folder under $TMPDIR (removed by nobody: the OS's tmp cleaner, or the fuzz script).
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::filesystem::path d = std::filesystem::path(tmp && *tmp ? tmp : "/tmp") /
                              ("zeroshot-fuzz-" + std::to_string(static_cast<long>(::getpid())));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

// Writes the input to scratch_dir()/name and returns the path (readers that only take paths).
inline std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  std::string path = (scratch_dir() / name).string();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace zeroshot::fuzz
