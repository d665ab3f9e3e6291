// Helpers shared by the index tests: a fake encoder, direct SQLite queries (temp folders and files: tests/support).
#pragma once

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "index/indexer.h"
#include "index/store.h"
#include "support/temp_dir.h"

namespace zeroshot::index::testing {

namespace fs = std::filesystem;

// Temp folders and whole-file reads and writes come from the shared test support (tests/support).
using zeroshot::testing::TempDir;
using zeroshot::testing::write_file;
inline std::string read_all(const std::string& path) { return zeroshot::testing::read_file(path); }

// Sets a file's mtime to `seconds` since the epoch (+ ns), leaving its content.
inline void set_mtime(const std::string& path, time_t seconds, long ns = 0) {
  struct timespec ts[2] = {{seconds, ns}, {seconds, ns}};
  ::utimensat(AT_FDCWD, path.c_str(), ts, 0);
}

// A stand-in encoder: the embedding is a pseudo-random unit-scale vector seeded by the file's bytes; files whose
// content starts with "BAD" fail. Records every path it was asked to embed.
struct FakeEncoder {
  size_t dim = 8;
  std::vector<std::string> embedded;
  std::function<bool(size_t)> keep_going = [](size_t) { return true; };  // called after each result
  static std::vector<float> vector_for(const std::string& content, size_t dim) {
    std::seed_seq seq(content.begin(), content.end());
    std::mt19937 rng(seq);
    std::normal_distribution<float> nd;
    std::vector<float> v(dim);
    for (auto& x : v) x = nd(rng) * 3.0f;  // deliberately not normalized
    return v;
  }
  EmbedFilesFn fn() {
    return [this](const std::vector<std::string>& paths, size_t, const Model::ImageResultFn& on_result) {
      for (size_t i = 0; i < paths.size(); ++i) {
        const std::string c = read_all(paths[i]);
        embedded.push_back(paths[i]);
        bool go;
        if (c.rfind("BAD", 0) == 0) {
          go = on_result(i, nullptr, paths[i] + ": not an image");
        } else {
          const auto v = vector_for(c, dim);
          go = on_result(i, v.data(), "");
        }
        if (!go || !keep_going(embedded.size())) return;
      }
    };
  }
};

// "p7.jpg" (a function: GCC 12 warns falsely (-Wrestrict) on "p" + std::to_string(i) + ".jpg" inline).
inline std::string numbered(const std::string& stem, int i, const std::string& ext = ".jpg") {
  std::string s = stem;
  s += std::to_string(i);
  s += ext;
  return s;
}

inline ModelId fake_model(const std::string& fp = "fake-model-1", size_t dim = 8) { return {"fake", fp, dim}; }

// Runs one SQL query with a separate connection; returns the first column of the first row as text ("" for no
// row, "error: ..." when it fails).
inline std::string sql_text(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  std::string out;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(h, 5000);
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      const auto* t = sqlite3_column_text(st, 0);
      out = t ? reinterpret_cast<const char*>(t) : "";
    } else if (rc != SQLITE_DONE) {
      out = std::string("error: ") + sqlite3_errmsg(h);
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  return out;
}

// Overwrites database page `page` (1-based; page 1 holds the header) of an SQLite file image with garbage.
inline void damage_page(std::string& db_bytes, size_t page) {
  const size_t size = (static_cast<unsigned char>(db_bytes[16]) << 8 | static_cast<unsigned char>(db_bytes[17])) == 1
                          ? 65536
                          : (static_cast<unsigned char>(db_bytes[16]) << 8 | static_cast<unsigned char>(db_bytes[17]));
  for (size_t i = (page - 1) * size; i < page * size && i < db_bytes.size(); ++i)
    db_bytes[i] = static_cast<char>(0xA5 ^ (i * 7));
}

inline long long sql_int(const std::string& db, const std::string& sql) { return std::stoll(sql_text(db, sql)); }

}  // namespace zeroshot::index::testing
