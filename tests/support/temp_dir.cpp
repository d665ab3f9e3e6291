#include "support/temp_dir.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iterator>

namespace zeroshot::testing {

namespace fs = std::filesystem;

namespace {

fs::path unique_path(const std::string& tag) {
  static std::atomic<int> counter{0};
  std::string name = "zs_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    // Parameterized tests are named "Case/0": keep the name one path component.
    std::string test = info->name();
    for (char& c : test)
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    name += "_" + test;
  }
  return fs::temp_directory_path() / name;
}

}  // namespace

TempDir::TempDir(const std::string& tag) : path(unique_path(tag)) {
  std::error_code ec;
  fs::remove_all(path, ec);
  fs::create_directories(path);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

std::string TempDir::file(const std::string& rel, const std::string& bytes) const {
  const fs::path p = path / rel;
  write_file(p, bytes);
  return p.string();
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

void write_file(const fs::path& path, const std::string& bytes) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  out.close();
  EXPECT_TRUE(out.good()) << "cannot write " << path;
}

}  // namespace zeroshot::testing
