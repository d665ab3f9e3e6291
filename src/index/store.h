// The index database: one SQLite file (WAL mode) holding, for ONE model, every indexed image's path, size, mtime,
// content hash and L2-normalized embedding.
//
// Schema (PRAGMA application_id 0x5A534958 "ZSIX"; PRAGMA user_version = kSchemaVersion):
//   meta(key PRIMARY KEY, value)  schema_version, model_name, model_fingerprint, embedding_dim, created, uuid,
//                                 generation
//   images(id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT UNIQUE, size, mtime_ns, hash BLOB (SHA-256, 32 bytes),
//          embedding BLOB (embedding_dim float32, little-endian, L2-normalized));  index on hash
//   failures(path PRIMARY KEY, size, mtime_ns, error)  files that could not be read; skipped until they change
//
// Invariants the ANN sidecar (ann.h) relies on: ids are never reused (AUTOINCREMENT) and a row's embedding never
// changes (new content is a new row), so "rows with id > the sidecar's newest id" are exactly the rows added since;
// `generation` grows in every transaction that adds or removes rows; `uuid` is new whenever the database is created
// or reset (--reindex).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "index/sqlite.h"

namespace zeroshot::index {

inline constexpr int kSchemaVersion = 1;
inline constexpr int32_t kApplicationId = 0x5A534958;  // "ZSIX"

// Which model made the embeddings. Two models are the same when fingerprint and dim match (the name may differ:
// a hub id and the folder it resolves to).
struct ModelId {
  std::string name;
  std::string fingerprint;
  size_t dim = 0;
};

struct StoredImage {
  int64_t id = 0;
  std::string path;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  std::string hash;  // 32 raw bytes
};

struct FailedFile {
  std::string path;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  std::string error;
};

// Row-major normalized embeddings with their row ids (ascending).
struct Vectors {
  size_t dim = 0;
  std::vector<int64_t> ids;
  std::vector<float> data;
  size_t rows() const { return ids.size(); }
  const float* row(size_t i) const { return data.data() + i * dim; }
};

// Absolute, lexically normal, no trailing '/': the form paths are stored and compared in.
std::string absolute_path(const std::string& p);

// A set of roots (absolute paths): a path is in scope when it is a root or lies under one. Empty: everything.
using Scope = std::vector<std::string>;
bool in_scope(const Scope& scope, const std::string& path);

// $XDG_DATA_HOME/zeroshot/index.db, else ~/.local/share/zeroshot/index.db.
std::string default_db_path();

class Store {
 public:
  // Opens the index at `path`. Missing file: created (with its folder) when `create`, else an error saying to run
  // `zeroshot index`. Refuses, with a one-line error naming the file: a file that is not SQLite, an SQLite
  // database of another application, a newer schema, a damaged database (quick_check when under 64 MB; SQLite's
  // own checks otherwise), and an index made with another model (unless `reindex`, which empties it and stamps it
  // with `model`). An empty model.fingerprint accepts whatever model the index holds (inspection; no create).
  static Store open(const std::string& path, const ModelId& model, bool create, bool reindex = false);

  const std::string& path() const { return db_->path(); }
  const ModelId& model() const { return model_; }
  std::string uuid() const;
  int64_t generation() const;
  size_t count() const;
  size_t count(const Scope& scope) const;
  const Db& db() const { return *db_; }

  // Reads (the caller may wrap them in a Transaction for one snapshot).
  std::vector<StoredImage> images(const Scope& scope) const;
  std::vector<FailedFile> failures(const Scope& scope) const;
  std::vector<StoredImage> find_hash(const std::string& hash) const;
  Vectors vectors(const Scope& scope) const;           // every row in scope, ids ascending
  Vectors vectors_after(int64_t id) const;             // rows with id > `id`
  std::vector<int64_t> ids(const Scope& scope) const;  // ascending
  int64_t max_id() const;                              // 0 when empty
  std::string path_of(int64_t id) const;               // "" when absent
  std::vector<float> embedding(int64_t id) const;      // empty when absent

  // Writes (inside a Transaction). `embedding` must be normalized, dim floats.
  int64_t insert(const std::string& path, int64_t size, int64_t mtime_ns, const std::string& hash,
                 const float* embedding);
  int64_t insert_copy(const std::string& path, int64_t size, int64_t mtime_ns, int64_t from_id);
  void update_stat(int64_t id, int64_t size, int64_t mtime_ns);
  void move(int64_t id, const std::string& path, int64_t size, int64_t mtime_ns);
  void remove(int64_t id);
  void record_failure(const std::string& path, int64_t size, int64_t mtime_ns, const std::string& error);
  void clear_failure(const std::string& path);
  void bump_generation();

 private:
  Store() = default;
  void create_schema(const ModelId& model);
  void reset(const ModelId& model);
  void check_embedding(std::string_view blob, int64_t id) const;
  Stmt& cached(const char* sql);  // prepared once: the per-image writes
  std::unique_ptr<Db> db_;        // behind a pointer: statements keep a reference to it across moves
  std::map<std::string, std::unique_ptr<Stmt>> stmts_;
  ModelId model_;
};

}  // namespace zeroshot::index
