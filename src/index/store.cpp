#include "index/store.h"

#include <sqlite3.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <random>

#include "util/sha256.h"  // util::to_hex
#include "zeroshot/error.h"

namespace zeroshot::index {

namespace fs = std::filesystem;

static_assert(std::endian::native == std::endian::little, "embeddings are stored as little-endian float32");

namespace {

// quick_check reads every page: worth it on open only while that stays cheap.
constexpr uintmax_t kQuickCheckMaxBytes = 64u << 20;  // ~27k images at dim 512: ~50 ms

std::string random_uuid() {
  std::random_device rd;
  uint8_t bytes[16];
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rd() & 0xff);
  return util::to_hex(bytes, sizeof bytes);
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// quick_check's report spans lines ("*** in database main ***\nPage 5: ..."): keep the facts on one line.
std::string one_line(std::string s) {
  const std::string banner = "*** in database main ***";
  if (s.rfind(banner, 0) == 0) s.erase(0, banner.size());
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  const auto b = s.find_first_not_of(' ');
  return b == std::string::npos ? std::string() : s.substr(b);
}

int64_t pragma_int(const Db& db, const char* sql) {
  Stmt st(db, sql);
  return st.step() ? st.int64(0) : 0;
}

// Roots inside other roots go: the rest cover disjoint sets of paths.
Scope outermost(const Scope& scope) {
  Scope sorted = scope;
  std::sort(sorted.begin(), sorted.end());
  Scope out;
  for (const auto& r : sorted)
    if (out.empty() || !in_scope({out.back()}, r)) out.push_back(r);
  return out;
}

// Paths under root R are those >= "R/" and < "R0" ('0' follows '/' in byte order).
std::string where_under(size_t i) {
  const std::string b = std::to_string(i * 3 + 2), e = std::to_string(i * 3 + 3);
  return "path >= ?" + b + " AND path < ?" + e;
}
std::string where_is(size_t i) { return "path = ?" + std::to_string(i * 3 + 1); }

// "SELECT <cols> FROM <from>" restricted to the scope: a UNION ALL of one index range (or one exact match) per
// root, each an index search. (One WHERE with ORs makes SQLite collect and deduplicate every rowid first: 5x
// slower at 1M rows.) `scan`: one pass over the whole table instead, testing each row.
std::string select_in(const std::string& cols, const std::string& from, const Scope& scope, bool scan = false) {
  std::string head = "SELECT " + cols + " FROM " + from;
  if (scope.empty()) return head;
  std::string s;
  if (scan) {
    s = head + " NOT INDEXED WHERE ";
    for (size_t i = 0; i < scope.size(); ++i)
      s += (i ? " OR " : "") + std::string("(") + where_is(i) + ") OR (" + where_under(i) + ")";
    return s;
  }
  for (size_t i = 0; i < scope.size(); ++i) {
    if (i) s += " UNION ALL ";
    s += head + " WHERE " + where_is(i) + " UNION ALL " + head + " WHERE " + where_under(i);
  }
  return s;
}

void bind_scope(Stmt& st, const Scope& scope) {
  for (size_t i = 0; i < scope.size(); ++i) {
    const int b = static_cast<int>(i * 3);
    std::string dir = scope[i];
    if (dir.empty() || dir.back() != '/') dir += '/';
    std::string end = dir;
    end.back() = '0';
    st.bind(b + 1, scope[i]).bind(b + 2, dir).bind(b + 3, end);
  }
}

}  // namespace

std::string absolute_path(const std::string& p) {
  std::error_code ec;
  fs::path a = fs::absolute(fs::path(p), ec);
  if (ec) throw Error(p, "cannot make the path absolute: " + ec.message());
  std::string s = a.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

bool in_scope(const Scope& scope, const std::string& path) {
  if (scope.empty()) return true;
  for (const auto& r : scope) {
    if (path == r) return true;
    if (path.size() > r.size() && path.compare(0, r.size(), r) == 0 && (r.back() == '/' || path[r.size()] == '/'))
      return true;
  }
  return false;
}

std::string default_db_path() {
  const char* xdg = std::getenv("XDG_DATA_HOME");
  if (xdg && *xdg == '/') return std::string(xdg) + "/zeroshot/index.db";
  const char* home = std::getenv("HOME");
  if (!home || !*home) throw Error("index database", "neither XDG_DATA_HOME nor HOME is set: give --db");
  return std::string(home) + "/.local/share/zeroshot/index.db";
}

Store Store::open(const std::string& path, const ModelId& model, bool create, bool reindex) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  const bool exists = !ec && fs::exists(st);
  if (exists && fs::is_directory(st)) throw Error(path, "is a folder, not an index database file");
  if (!exists) {
    if (!create) throw Error(path, "no index database here: run `zeroshot index DIR` first, or give --db");
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) {
      fs::create_directories(parent, ec);
      if (ec) throw Error(parent.string(), "cannot create the folder for the index database: " + ec.message());
    }
  }
  Store s;
  s.db_ = std::make_unique<Db>(path, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0));
  // The first read of the header: a file that is not SQLite fails here with SQLITE_NOTADB. One snapshot: read one
  // by one, another process's schema creation could land between them (application id 0 but tables: "another
  // application").
  int64_t app = 0, version = 0, tables = 0;
  {
    Transaction snapshot(*s.db_, false);
    app = pragma_int(*s.db_, "PRAGMA application_id");
    version = pragma_int(*s.db_, "PRAGMA user_version");
    tables = pragma_int(*s.db_, "SELECT count(*) FROM sqlite_schema");
    snapshot.commit();
  }
  if (app == 0 && tables == 0) {
    if (model.fingerprint.empty()) throw Error(path, "not a zeroshot index (an empty database)");
    s.create_schema(model);
  } else {
    if (app != kApplicationId)
      throw Error(path, "not a zeroshot index (an SQLite database of another application); give another --db");
    if (version > kSchemaVersion)
      throw Error(path, "made by a newer zeroshot (index schema " + std::to_string(version) + ", this one reads " +
                            std::to_string(kSchemaVersion) + ")");
    if (version < 1) throw Error(path, "the index database is damaged (no schema version)");
    if (fs::file_size(path, ec) <= kQuickCheckMaxBytes && !ec) {
      Stmt qc(*s.db_, "PRAGMA quick_check(1)");
      const std::string r = qc.step() ? one_line(qc.text(0)) : "no answer";
      if (r != "ok")
        throw Error(path, "the index database is damaged (" + r + "); delete it and run `zeroshot index` again");
    }
    s.db_->exec_when_free("PRAGMA journal_mode=WAL");
  }
  s.db_->exec("PRAGMA synchronous=NORMAL");

  // The model the index was made with.
  ModelId stored;
  bool have_name = false, have_fp = false, have_dim = false;
  {
    Stmt m(*s.db_, "SELECT key, value FROM meta WHERE key IN ('model_name', 'model_fingerprint', 'embedding_dim')");
    while (m.step()) {
      const std::string k = m.text(0);
      if (k == "model_name") stored.name = m.text(1), have_name = true;
      if (k == "model_fingerprint") stored.fingerprint = m.text(1), have_fp = true;
      if (k == "embedding_dim") stored.dim = static_cast<size_t>(m.int64(1)), have_dim = true;
    }
  }
  if (!have_name || !have_fp || !have_dim || stored.dim == 0 || stored.dim > 65536)
    throw Error(path, "the index database is damaged (its meta table lacks the model)");
  if (model.fingerprint.empty()) {
    // Any model: the caller only reads.
  } else if (reindex) {
    s.reset(model);
    stored = model;
  } else if (stored.fingerprint != model.fingerprint || stored.dim != model.dim) {
    // Same name and size, other fingerprint: the files changed, or the same model runs with other settings.
    const std::string why = stored.name == model.name && stored.dim == model.dim
                                ? "; same name: its files changed, or --precision / --fast-decode differ from the "
                                  "index's"
                                : "";
    throw Error(path, "made with another model (\"" + stored.name + "\", " + std::to_string(stored.dim) +
                          "-d), not \"" + model.name + "\" (" + std::to_string(model.dim) + "-d" + why +
                          "): add --reindex to embed everything again with this model, or give another --db");
  }
  s.model_ = stored;
  s.model_.name = model.name.empty() ? stored.name : model.name;
  return s;
}

void Store::create_schema(const ModelId& model) {
  if (model.dim == 0) throw Error(path(), "cannot create an index without a model");
  // A row is ~2.1 kB at dim 512: 4 kB pages would hold one each, half empty; 16 kB pages hold seven.
  // (Only takes effect before the first table exists and before WAL mode.)
  db_->exec("PRAGMA page_size=16384");
  db_->exec_when_free("PRAGMA journal_mode=WAL");
  Transaction t(*db_);
  // Another process may have created it since we looked: everything here is idempotent.
  db_->exec(("PRAGMA application_id=" + std::to_string(kApplicationId)).c_str());
  db_->exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
  db_->exec(
      "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS images(id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL UNIQUE,"
      " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, hash BLOB NOT NULL, embedding BLOB NOT NULL);"
      "CREATE INDEX IF NOT EXISTS images_hash ON images(hash);"
      "CREATE TABLE IF NOT EXISTS failures(path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
      " error TEXT NOT NULL) WITHOUT ROWID;");
  Stmt ins(*db_, "INSERT OR IGNORE INTO meta(key, value) VALUES (?1, ?2)");
  ins.bind(1, "schema_version").bind(2, static_cast<int64_t>(kSchemaVersion)).run();
  ins.bind(1, "model_name").bind(2, model.name).run();
  ins.bind(1, "model_fingerprint").bind(2, model.fingerprint).run();
  ins.bind(1, "embedding_dim").bind(2, static_cast<int64_t>(model.dim)).run();
  ins.bind(1, "created").bind(2, utc_now()).run();
  ins.bind(1, "uuid").bind(2, random_uuid()).run();
  ins.bind(1, "generation").bind(2, int64_t{0}).run();
  t.commit();
}

void Store::reset(const ModelId& model) {
  Transaction t(*db_);
  db_->exec("DELETE FROM images; DELETE FROM failures;");
  Stmt up(*db_, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)");
  up.bind(1, "model_name").bind(2, model.name).run();
  up.bind(1, "model_fingerprint").bind(2, model.fingerprint).run();
  up.bind(1, "embedding_dim").bind(2, static_cast<int64_t>(model.dim)).run();
  up.bind(1, "created").bind(2, utc_now()).run();
  up.bind(1, "uuid").bind(2, random_uuid()).run();
  bump_generation();
  t.commit();
}

std::string Store::uuid() const {
  Stmt st(*db_, "SELECT value FROM meta WHERE key = 'uuid'");
  if (!st.step()) throw Error(path(), "the index database is damaged (no uuid in its meta table)");
  return st.text(0);
}

int64_t Store::generation() const {
  Stmt st(*db_, "SELECT value FROM meta WHERE key = 'generation'");
  if (!st.step()) throw Error(path(), "the index database is damaged (no generation in its meta table)");
  return st.int64(0);
}

size_t Store::count() const { return static_cast<size_t>(pragma_int(*db_, "SELECT count(*) FROM images")); }

size_t Store::count(const Scope& given) const {
  if (given.empty()) return count();
  const Scope scope = outermost(given);
  Stmt st(*db_, "SELECT sum(n) FROM (" + select_in("count(*) AS n", "images", scope) + ")");
  bind_scope(st, scope);
  return st.step() ? static_cast<size_t>(st.int64(0)) : 0;
}

std::vector<StoredImage> Store::images(const Scope& given) const {
  const Scope scope = outermost(given);
  Stmt st(*db_, select_in("id, path, size, mtime_ns, hash", "images", scope));
  bind_scope(st, scope);
  std::vector<StoredImage> out;
  while (st.step()) {
    const auto h = st.blob(4);
    out.push_back({st.int64(0), st.text(1), st.int64(2), st.int64(3), std::string(h)});
  }
  return out;
}

std::vector<FailedFile> Store::failures(const Scope& given) const {
  const Scope scope = outermost(given);
  Stmt st(*db_, select_in("path, size, mtime_ns, error", "failures", scope));
  bind_scope(st, scope);
  std::vector<FailedFile> out;
  while (st.step()) out.push_back({st.text(0), st.int64(1), st.int64(2), st.text(3)});
  return out;
}

std::vector<StoredImage> Store::find_hash(const std::string& hash) const {
  Stmt st(*db_, "SELECT id, path, size, mtime_ns FROM images WHERE hash = ?1 ORDER BY id");
  st.bind_blob(1, hash.data(), hash.size());
  std::vector<StoredImage> out;
  while (st.step()) out.push_back({st.int64(0), st.text(1), st.int64(2), st.int64(3), hash});
  return out;
}

void Store::check_embedding(std::string_view blob, int64_t id) const {
  if (blob.size() != model_.dim * sizeof(float))
    throw Error(path(), "the index database is damaged (image " + std::to_string(id) + " has a " +
                            std::to_string(blob.size()) + "-byte embedding, expected " +
                            std::to_string(model_.dim * sizeof(float)) + ")");
}

namespace {

void read_vectors(Stmt& st, Vectors& v, const std::string& db_path, size_t dim, size_t expected_rows) {
  v.dim = dim;
  v.ids.reserve(expected_rows);
  v.data.reserve(expected_rows * dim);
  while (st.step()) {
    const int64_t id = st.int64(0);
    const auto b = st.blob(1);
    if (b.size() != dim * sizeof(float))
      throw Error(db_path, "the index database is damaged (image " + std::to_string(id) + " has a " +
                               std::to_string(b.size()) + "-byte embedding, expected " +
                               std::to_string(dim * sizeof(float)) + ")");
    const size_t at = v.data.size();
    v.data.resize(at + dim);
    std::memcpy(v.data.data() + at, b.data(), b.size());
    for (size_t k = 0; k < dim; ++k)
      if (!std::isfinite(v.data[at + k]))
        throw Error(db_path,
                    "the index database is damaged (image " + std::to_string(id) + " has a non-finite embedding)");
    v.ids.push_back(id);
  }
}

}  // namespace

Vectors Store::vectors(const Scope& given) const {
  const Scope scope = outermost(given);
  const size_t rows = count(scope);  // a reserve, not a promise: rows may come and go unless in a transaction
  // A scope with most of the rows: one sequential pass over the table (in id order, no sort) beats a walk of the
  // path index that fetches each row at random and sorts them (2x faster at 100k rows).
  const bool scan = !scope.empty() && rows * 4 > count();
  Stmt st(*db_, select_in("id, embedding", "images", scope, scan) + " ORDER BY id");
  bind_scope(st, scope);
  Vectors v;
  read_vectors(st, v, path(), model_.dim, rows);
  return v;
}

Vectors Store::vectors_after(int64_t id) const {
  Stmt st(*db_, "SELECT id, embedding FROM images WHERE id > ?1 ORDER BY id");
  st.bind(1, id);
  Vectors v;
  read_vectors(st, v, path(), model_.dim, 0);
  return v;
}

std::vector<int64_t> Store::ids(const Scope& given) const {
  const Scope scope = outermost(given);
  Stmt st(*db_, select_in("id", "images", scope));
  bind_scope(st, scope);
  std::vector<int64_t> out;
  while (st.step()) out.push_back(st.int64(0));
  std::sort(out.begin(), out.end());  // here, not in SQL: SQLite's sorter is 5x slower
  return out;
}

int64_t Store::max_id() const { return pragma_int(*db_, "SELECT coalesce(max(id), 0) FROM images"); }

std::string Store::path_of(int64_t id) const {
  Stmt st(*db_, "SELECT path FROM images WHERE id = ?1");
  st.bind(1, id);
  return st.step() ? st.text(0) : std::string();
}

std::vector<float> Store::embedding(int64_t id) const {
  Stmt st(*db_, "SELECT embedding FROM images WHERE id = ?1");
  st.bind(1, id);
  if (!st.step()) return {};
  const auto b = st.blob(0);
  check_embedding(b, id);
  std::vector<float> v(model_.dim);
  std::memcpy(v.data(), b.data(), b.size());
  return v;
}

int64_t Store::insert(const std::string& p, int64_t size, int64_t mtime_ns, const std::string& hash,
                      const float* embedding) {
  // OR REPLACE: another process indexing the same folder may have added the path meanwhile (its row goes, ids
  // stay unique and a row's embedding never changes).
  Stmt& st = cached("INSERT OR REPLACE INTO images(path, size, mtime_ns, hash, embedding) VALUES (?1, ?2, ?3, ?4, ?5)");
  st.bind(1, p).bind(2, size).bind(3, mtime_ns).bind_blob(4, hash.data(), hash.size());
  st.bind_blob(5, embedding, model_.dim * sizeof(float));
  st.run();
  return sqlite3_last_insert_rowid(db_->get());
}

int64_t Store::insert_copy(const std::string& p, int64_t size, int64_t mtime_ns, int64_t from_id) {
  Stmt& st = cached(
      "INSERT OR REPLACE INTO images(path, size, mtime_ns, hash, embedding)"
      " SELECT ?1, ?2, ?3, hash, embedding FROM images WHERE id = ?4");
  st.bind(1, p).bind(2, size).bind(3, mtime_ns).bind(4, from_id);
  st.run();
  if (db_->changes() != 1) throw Error(path(), "image " + std::to_string(from_id) + " vanished while copying it");
  return sqlite3_last_insert_rowid(db_->get());
}

void Store::update_stat(int64_t id, int64_t size, int64_t mtime_ns) {
  Stmt& st = cached("UPDATE images SET size = ?2, mtime_ns = ?3 WHERE id = ?1");
  st.bind(1, id).bind(2, size).bind(3, mtime_ns).run();
}

void Store::move(int64_t id, const std::string& p, int64_t size, int64_t mtime_ns) {
  Stmt& st = cached("UPDATE OR REPLACE images SET path = ?2, size = ?3, mtime_ns = ?4 WHERE id = ?1");
  st.bind(1, id).bind(2, p).bind(3, size).bind(4, mtime_ns).run();
}

void Store::remove(int64_t id) {
  Stmt& st = cached("DELETE FROM images WHERE id = ?1");
  st.bind(1, id).run();
}

void Store::record_failure(const std::string& p, int64_t size, int64_t mtime_ns, const std::string& error) {
  Stmt& st = cached("INSERT OR REPLACE INTO failures(path, size, mtime_ns, error) VALUES (?1, ?2, ?3, ?4)");
  st.bind(1, p).bind(2, size).bind(3, mtime_ns).bind(4, error).run();
}

void Store::clear_failure(const std::string& p) {
  Stmt& st = cached("DELETE FROM failures WHERE path = ?1");
  st.bind(1, p).run();
}

Stmt& Store::cached(const char* sql) {
  auto& st = stmts_[sql];
  if (!st) st = std::make_unique<Stmt>(*db_, sql);
  return *st;
}

void Store::bump_generation() { db_->exec("UPDATE meta SET value = value + 1 WHERE key = 'generation'"); }

}  // namespace zeroshot::index
