// A thin RAII layer over the SQLite C API: a connection, prepared statements, transactions. Every failure is a
// zeroshot::Error naming the database file first: "<db>: <what went wrong>".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace zeroshot::index {

// How long a statement waits for another connection's lock before failing with "locked by another process".
inline constexpr int kBusyTimeoutMs = 10000;

class Db {
 public:
  Db() = default;
  // flags: SQLITE_OPEN_* (sqlite3_open_v2). Waits up to kBusyTimeoutMs for another process's lock.
  Db(const std::string& path, int flags);
  ~Db();
  Db(Db&& o) noexcept;
  Db& operator=(Db&& o) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }
  bool is_open() const { return db_ != nullptr; }
  void exec(const char* sql) const;  // one or more statements without results
  // exec for statements SQLite refuses at once, without waiting, while another connection holds a lock (the
  // switch to WAL): retried for up to kBusyTimeoutMs, as the busy timeout would have waited.
  void exec_when_free(const char* sql) const;
  int64_t changes() const;
  // Throws the one-line error for SQLite result code `rc` met while doing `doing`.
  [[noreturn]] void fail(int rc, const std::string& doing) const;

 private:
  void close();
  sqlite3* db_ = nullptr;
  std::string path_;
};

class Stmt {
 public:
  Stmt(const Db& db, std::string_view sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Parameters are 1-based, as in SQL.
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, std::string_view text);
  Stmt& bind_blob(int i, const void* data, size_t size);
  // Steps once: true when a row is ready, false when the statement is done.
  bool step();
  // Steps to the end (a statement without rows), then resets for the next bindings.
  void run();
  void reset();

  // Columns are 0-based, as in sqlite3_column_*.
  int64_t int64(int col) const;
  std::string text(int col) const;
  std::string_view blob(int col) const;  // valid until the next step/reset
  bool is_null(int col) const;

 private:
  const Db& db_;
  sqlite3_stmt* st_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back when destroyed uncommitted (an exception on the way).
class Transaction {
 public:
  explicit Transaction(const Db& db, bool write = true);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  const Db& db_;
  bool open_ = true;
};

}  // namespace zeroshot::index
