// TempDir: a fresh, empty folder under the system temp dir, unique per test and per process, removed (with
// everything in it) when the object goes. Its name carries the tag, the process id, a process-wide counter and the
// running test's name, so tests of one binary, and binaries run in parallel by ctest, never share a folder.
// Not thread-safe to construct from several threads at once beyond the counter (which is atomic); removal errors
// are ignored (a test must not fail in its destructor).
#pragma once

#include <filesystem>
#include <string>

namespace zeroshot::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& tag = "tmp");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path path;

  std::string str() const { return path.string(); }
  // The path of `rel` inside the folder (nothing is created).
  std::string operator/(const std::string& rel) const { return (path / rel).string(); }
  // Writes `bytes` to `rel` (creating its folders); returns its path.
  std::string file(const std::string& rel, const std::string& bytes) const;
};

// The whole content of a file ("" when it cannot be read).
std::string read_file(const std::filesystem::path& path);
// Writes `bytes` to `path` (creating its folders); a failure is a test failure, not an exception.
void write_file(const std::filesystem::path& path, const std::string& bytes);

}  // namespace zeroshot::testing
