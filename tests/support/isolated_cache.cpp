// Compiled into every test binary (cmake/ZeroshotTest.cmake): before any test runs, XDG_CACHE_HOME points into a
// fresh folder of the system temp dir, removed when the process ends. A test that loads a model writes the packed
// weights file and label embeddings into $XDG_CACHE_HOME/zeroshot; without this, every test that does not set its
// own (most in-process loads: server, API parity, checkpoint formats...) wrote them into the user's ~/.cache, where
// nothing removed them. A test that sets its own XDG_CACHE_HOME still wins; the CLI runner sets one per run.
// Plain C (mkdtemp, nftw) and no allocation: some test binaries replace operator new and count allocations.
#include <ftw.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace {

int remove_entry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

struct IsolatedCache {
  char dir[256] = {};
  pid_t owner = ::getpid();
  IsolatedCache() {
    const char* tmp = std::getenv("TMPDIR");
    std::snprintf(dir, sizeof dir, "%s/zs_test_cache_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (::mkdtemp(dir)) ::setenv("XDG_CACHE_HOME", dir, 1);
    else dir[0] = '\0';
  }
  ~IsolatedCache() {
    // Only the process that made it (a forked child that exits must not remove its parent's cache).
    if (dir[0] && ::getpid() == owner) ::nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  }
};

const IsolatedCache isolated_cache;

}  // namespace
