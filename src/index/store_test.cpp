// The index database and incremental indexing, with a fake encoder (no model): schema, refusals, and what a
// second run does after files are added, touched, changed, renamed, copied, deleted or broken.
#include "index/store.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "index/indexer.h"
#include "index/scan.h"
#include "index/test_util.h"
#include "zeroshot/error.h"

using namespace zeroshot;
using namespace zeroshot::index;
using namespace zeroshot::index::testing;

namespace {

// Expects `f` to throw a zeroshot::Error whose one-line message contains every one of `parts`.
template <class F>
void expect_error(F f, std::vector<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << parts.front();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    for (const auto& p : parts) EXPECT_NE(m.find(p), std::string::npos) << "\"" << p << "\" not in: " << m;
  }
}

size_t rows(const std::string& db) { return static_cast<size_t>(sql_int(db, "SELECT count(*) FROM images")); }

}  // namespace

TEST(Store, CreatesSchemaAndReopens) {
  TempDir d("store");
  const std::string db = d / "sub/dir/index.db";
  std::string uuid;
  {
    Store s = Store::open(db, fake_model(), true);
    EXPECT_EQ(s.count(), 0u);
    uuid = s.uuid();
    EXPECT_EQ(uuid.size(), 32u);
    EXPECT_EQ(s.generation(), 0);
    EXPECT_EQ(s.model().dim, 8u);
  }
  EXPECT_EQ(sql_int(db, "PRAGMA application_id"), kApplicationId);
  EXPECT_EQ(sql_int(db, "PRAGMA user_version"), kSchemaVersion);
  EXPECT_EQ(sql_text(db, "PRAGMA journal_mode"), "wal");
  Store s = Store::open(db, fake_model(), false);
  EXPECT_EQ(s.uuid(), uuid);
}

// Several processes opening one database that does not exist yet, released at the same instant: each must wait
// for the others' locks (the busy timeout), never fail on them, nor see a half-made schema as another
// application's database. Two index the same folder, one only opens and counts (a searcher). The bug this guards:
// the WAL switch and the schema creation raced, and in some trials a process failed within milliseconds with
// "locked by another process" or "an SQLite database of another application".
TEST(Store, ProcessesOpeningANewDatabaseAtOnceAllSucceed) {
  TempDir photos("photos");
  for (int i = 0; i < 12; ++i) write_file(photos / numbered("p", i), "image " + std::to_string(i));
  constexpr int kTrials = 20, kProcs = 3;
  for (int trial = 0; trial < kTrials; ++trial) {
    TempDir d("store");
    const std::string db = d / "index.db";
    int gate[2], report[2];
    ASSERT_EQ(::pipe(gate), 0);
    ASSERT_EQ(::pipe(report), 0);
    std::vector<pid_t> kids;
    for (int k = 0; k < kProcs; ++k) {
      const pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        ::close(gate[1]);
        ::close(report[0]);
        char c;
        while (::read(gate[0], &c, 1) < 0) {  // the parent closes its end: everyone starts at once
        }
        std::string err;
        try {
          Store s = Store::open(db, fake_model(), true);
          if (k < 2) {
            FakeEncoder enc;
            IndexOptions o;
            o.batch = 3;
            update_index(s, {photos.path.string()}, enc.fn(), o);
          } else {
            (void)s.count();
          }
        } catch (const std::exception& e) {
          err = "process " + std::to_string(k) + ": " + e.what() + "\n";
        }
        if (!err.empty()) (void)!::write(report[1], err.data(), err.size());
        ::_exit(err.empty() ? 0 : 1);
      }
      kids.push_back(pid);
    }
    ::close(gate[0]);
    ::close(report[1]);
    ::close(gate[1]);
    std::string errors;
    char buf[512];
    for (ssize_t n; (n = ::read(report[0], buf, sizeof buf)) > 0;) errors.append(buf, static_cast<size_t>(n));
    ::close(report[0]);
    for (const pid_t pid : kids) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "trial " << trial << ": " << errors;
    }
    ASSERT_EQ(errors, "") << "trial " << trial;
    EXPECT_EQ(rows(db), 12u) << "trial " << trial;
    EXPECT_EQ(sql_text(db, "PRAGMA integrity_check"), "ok");
    EXPECT_EQ(sql_text(db, "PRAGMA journal_mode"), "wal");
    EXPECT_EQ(sql_int(db, "PRAGMA page_size"), 16384);
  }
}

TEST(Store, MissingDatabaseWithoutCreate) {
  TempDir d("store");
  expect_error([&] { Store::open(d / "none.db", fake_model(), false); }, {d / "none.db", "zeroshot index"});
}

TEST(Store, RefusesAnotherModelUnlessReindex) {
  TempDir d("store");
  const std::string db = d / "index.db";
  std::string uuid;
  {
    Store s = Store::open(db, fake_model("weights-A"), true);
    Transaction t(s.db());
    const std::vector<float> v(8, 0.25f);
    s.insert("/x/a.jpg", 1, 1, std::string(32, 'h'), v.data());
    t.commit();
    uuid = s.uuid();
  }
  // Same name, other fingerprint: the message names the settings that are part of it.
  expect_error([&] { Store::open(db, fake_model("weights-B"), true); },
               {db, "another model", "--reindex", "--precision / --fast-decode"});
  expect_error([&] { Store::open(db, fake_model("weights-A", 16), true); }, {db, "another model"});
  EXPECT_EQ(rows(db), 1u);  // refusing changed nothing
  Store s = Store::open(db, fake_model("weights-B"), true, /*reindex=*/true);
  EXPECT_EQ(s.count(), 0u);
  EXPECT_NE(s.uuid(), uuid);
  EXPECT_EQ(sql_text(db, "SELECT value FROM meta WHERE key = 'model_fingerprint'"), "weights-B");
}

TEST(Store, RefusesFilesThatAreNotItsDatabases) {
  TempDir d("store");
  const std::string text = d / "notes.db";
  write_file(text, "these are my notes, not a database at all\n" + std::string(4096, 'x'));
  expect_error([&] { Store::open(text, fake_model(), true); }, {text, "not an SQLite database"});
  EXPECT_EQ(read_all(text).substr(0, 10), "these are ");  // untouched

  const std::string foreign = d / "foreign.db";
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(foreign.c_str(), &h), SQLITE_OK);
  sqlite3_exec(h, "CREATE TABLE songs(title TEXT); INSERT INTO songs VALUES ('x');", nullptr, nullptr, nullptr);
  sqlite3_close(h);
  expect_error([&] { Store::open(foreign, fake_model(), true); }, {foreign, "another application"});

  const std::string newer = d / "newer.db";
  { Store::open(newer, fake_model(), true); }
  sql_text(newer, "PRAGMA user_version = 99");
  expect_error([&] { Store::open(newer, fake_model(), true); }, {newer, "newer"});

  expect_error([&] { Store::open(d.path.string(), fake_model(), true); }, {"folder"});
}

TEST(Store, RefusesDamagedDatabases) {
  TempDir d("store");
  const std::string db = d / "index.db";
  {
    Store s = Store::open(db, fake_model(), true);
    Transaction t(s.db());
    std::vector<float> v(8);
    for (int i = 0; i < 600; ++i) {
      v[0] = static_cast<float>(i);
      s.insert(numbered("/photos/img", i), i, i, std::string(32, static_cast<char>(i)), v.data());
    }
    t.commit();
  }  // the last connection closes: the WAL is checkpointed into the file
  std::string bytes = read_all(db);
  ASSERT_GT(bytes.size(), 8 * 16384u);
  // Garbage over a page in the middle (b-tree pages of the images table or its indexes).
  std::string damaged = bytes;
  damage_page(damaged, 4);
  const std::string bad = d / "damaged.db";
  write_file(bad, damaged);
  expect_error([&] { Store::open(bad, fake_model(), true); }, {bad, "damaged"});
  // Cut in half.
  const std::string cut = d / "cut.db";
  write_file(cut, bytes.substr(0, bytes.size() / 2));
  expect_error([&] { Store::open(cut, fake_model(), true); }, {cut});
  // An embedding of the wrong length (what a damaged record could look like to SQLite: valid, but not ours).
  sql_text(db, "UPDATE images SET embedding = x'0102' WHERE id = 3");
  Store s = Store::open(db, fake_model(), false);
  expect_error([&] { s.vectors({}); }, {db, "damaged", "embedding"});
}

TEST(Scope, MatchesRootsAndWhatIsUnderThem) {
  const Scope s = {"/a/b", "/c/d.jpg"};
  EXPECT_TRUE(in_scope(s, "/a/b"));
  EXPECT_TRUE(in_scope(s, "/a/b/x.jpg"));
  EXPECT_TRUE(in_scope(s, "/a/b/c/x.jpg"));
  EXPECT_FALSE(in_scope(s, "/a/bc/x.jpg"));
  EXPECT_FALSE(in_scope(s, "/a/b0"));
  EXPECT_TRUE(in_scope(s, "/c/d.jpg"));
  EXPECT_FALSE(in_scope(s, "/c/d.jpg2"));
  EXPECT_TRUE(in_scope({"/"}, "/anything"));
  EXPECT_TRUE(in_scope({}, "/anything"));
  EXPECT_EQ(absolute_path("/a/./b/../c/"), "/a/c");
}

TEST(Store, ScopeQueriesAgreeWithInScope) {
  TempDir d("store");
  Store s = Store::open(d / "i.db", fake_model(), true);
  const std::vector<std::string> paths = {"/a/b",     "/a/b/x.jpg", "/a/b/c/y.jpg", "/a/bc/z.jpg", "/a/b0",
                                          "/a/b.jpg", "/a/a.jpg",   "/c/d.jpg",     "/c/d.jpg2"};
  {
    Transaction t(s.db());
    std::vector<float> v(8, 0.5f);
    for (const auto& p : paths) s.insert(p, 1, 1, std::string(32, 'h'), v.data());
    t.commit();
  }
  for (const Scope& scope : std::vector<Scope>{{"/a/b"},
                                               {"/c/d.jpg"},
                                               {"/a/b", "/c/d.jpg"},
                                               {"/"},
                                               {},
                                               {"/a"},
                                               {"/a/b/c", "/a/b", "/a/b/x.jpg"},
                                               {"/nowhere"}}) {
    size_t expected = 0;
    for (const auto& p : paths) expected += in_scope(scope, p);
    EXPECT_EQ(s.count(scope), expected);
    EXPECT_EQ(s.images(scope).size(), expected);
    EXPECT_EQ(s.vectors(scope).rows(), expected);
    EXPECT_EQ(s.ids(scope).size(), expected);
  }
}

TEST(Scan, FindsImagesAndHonoursExcludes) {
  TempDir d("scan");
  write_file(d / "a.jpg", "1");
  write_file(d / "b.PNG", "2");
  write_file(d / "notes.txt", "3");
  write_file(d / "sub/c.webp", "4");
  write_file(d / ".thumbnails/t.jpg", "5");
  write_file(d / "raw/2019/x.gif", "6");
  fs::create_directories(d / "folder.jpg");  // a folder with an image name is not a file
  fs::create_symlink(d / "a.jpg", d / "sub/link.jpg");
  fs::create_symlink(d / "missing.jpg", d / "dangling.jpg");
  fs::create_directory_symlink(d.path, d / "sub/loop");  // not followed
  auto names = [&](const ScanResult& r) {
    std::vector<std::string> v;
    for (const auto& f : r.files) v.push_back(fs::path(f.path).lexically_relative(d.path).string());
    return v;
  };
  EXPECT_EQ(names(scan({d.path.string()}, {})),
            (std::vector<std::string>{".thumbnails/t.jpg", "a.jpg", "b.PNG", "raw/2019/x.gif", "sub/c.webp",
                                      "sub/link.jpg"}));
  EXPECT_EQ(names(scan({d.path.string()}, {".thumbnails", "*.gif", "sub/c.*"})),
            (std::vector<std::string>{"a.jpg", "b.PNG", "sub/link.jpg"}));
  EXPECT_EQ(names(scan({d.path.string()}, {"raw/*"})).size(), 5u);
  EXPECT_THROW(scan({d / "nope"}, {}), Error);
  EXPECT_EQ(names(scan({d / "notes.txt"}, {})), (std::vector<std::string>{"notes.txt"}));  // named: kept
}

TEST(Scan, ListsFilesOfOtherTypes) {
  TempDir d("scan-other");
  for (const char* f : {"a.heic", "b.HEIF", "c.avif", "d.tif", "e.TIFF", "f.jpg"}) write_file(d / f, "x");
  for (const char* f : {"clip.mov", "raw/x.cr3", "notes.txt", ".DS_Store", "skip/me.txt"}) write_file(d / f, "y");
  const ScanResult r = scan({d.path.string()}, {"skip"});
  EXPECT_EQ(r.files.size(), 6u);
  std::vector<std::string> others;
  for (const auto& f : r.other_files) others.push_back(fs::path(f).lexically_relative(d.path).string());
  EXPECT_EQ(others, (std::vector<std::string>{"clip.mov", "notes.txt", "raw/x.cr3"}));  // hidden, excluded: not
}

class Indexer : public ::testing::Test {
 protected:
  TempDir dir{"photos"};
  TempDir dbdir{"db"};
  std::string db = dbdir / "index.db";
  FakeEncoder enc;

  IndexReport run(const IndexOptions& opt = {}) {
    Store s = Store::open(db, fake_model(), true);
    enc.embedded.clear();
    return update_index(s, {dir.path.string()}, enc.fn(), opt);
  }
  std::string path_of_hash_of(const std::string& content) {
    return sql_text(db, "SELECT path FROM images WHERE embedding = x'" + hex_embedding(content) + "'");
  }
  static std::string hex_embedding(const std::string& content) {
    auto v = FakeEncoder::vector_for(content, 8);
    double n = 0;
    for (float x : v) n += static_cast<double>(x) * x;
    for (auto& x : v) x /= static_cast<float>(std::max(std::sqrt(n), 1e-12));
    static const char* hex = "0123456789ABCDEF";
    std::string s;
    const auto* b = reinterpret_cast<const unsigned char*>(v.data());
    for (size_t i = 0; i < v.size() * 4; ++i) s += hex[b[i] >> 4], s += hex[b[i] & 15];
    return s;
  }
};

TEST_F(Indexer, SecondRunEmbedsOnlyWhatChanged) {
  for (int i = 0; i < 10; ++i) write_file(dir / numbered("p", i), numbered("photo ", i, ""));
  IndexReport r = run();
  EXPECT_EQ(r.files, 10u);
  EXPECT_EQ(r.embedded, 10u);
  EXPECT_EQ(enc.embedded.size(), 10u);
  EXPECT_EQ(rows(db), 10u);
  // Stored embeddings are the encoder's, normalized.
  EXPECT_EQ(path_of_hash_of("photo 3"), dir / "p3.jpg");

  r = run();
  EXPECT_EQ(r.unchanged, 10u);
  EXPECT_EQ(r.embedded, 0u);
  EXPECT_TRUE(enc.embedded.empty());

  // Touched (same bytes, new mtime), changed, renamed, copied, deleted, added.
  set_mtime(dir / "p0.jpg", 1000000000);
  write_file(dir / "p1.jpg", "photo 1, edited");
  fs::create_directories(dir / "moved");
  fs::rename(dir / "p2.jpg", dir / "moved/p2-renamed.jpg");
  fs::copy_file(dir / "p3.jpg", dir / "p3-copy.jpg");
  fs::remove(dir / "p4.jpg");
  write_file(dir / "new.jpg", "a new photo");
  const int64_t gen_before = Store::open(db, fake_model(), false).generation();
  r = run();
  EXPECT_EQ(r.files, 11u);
  EXPECT_EQ(r.touched, 1u);
  EXPECT_EQ(r.renamed, 1u);
  EXPECT_EQ(r.copied, 1u);
  EXPECT_EQ(r.removed, 1u);
  EXPECT_EQ(r.embedded, 2u);  // the edited one and the new one
  std::sort(enc.embedded.begin(), enc.embedded.end());
  EXPECT_EQ(enc.embedded, (std::vector<std::string>{dir / "new.jpg", dir / "p1.jpg"}));
  EXPECT_EQ(r.unchanged, 6u);
  EXPECT_EQ(rows(db), 11u);
  EXPECT_EQ(path_of_hash_of("photo 1, edited"), dir / "p1.jpg");
  EXPECT_EQ(path_of_hash_of("photo 1"), "");  // the old content's row is gone
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM images WHERE path = '" + dir / "moved/p2-renamed.jpg" + "'"), 1);
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM images WHERE path = '" + dir / "p4.jpg" + "'"), 0);
  EXPECT_GT(Store::open(db, fake_model(), false).generation(), gen_before);

  r = run();
  EXPECT_EQ(r.unchanged, 11u);
  EXPECT_TRUE(enc.embedded.empty());
}

TEST_F(Indexer, RenameKeepsTheRowAndItsId) {
  write_file(dir / "a.jpg", "content a");
  run();
  const auto id = sql_int(db, "SELECT id FROM images");
  fs::rename(dir / "a.jpg", dir / "b.jpg");
  const IndexReport r = run();
  EXPECT_EQ(r.renamed, 1u);
  EXPECT_TRUE(enc.embedded.empty());
  EXPECT_EQ(sql_int(db, "SELECT id FROM images WHERE path = '" + dir / "b.jpg" + "'"), id);
}

TEST_F(Indexer, MoveToAnotherIndexedFolderIsARename) {
  TempDir other("photos2");
  write_file(dir / "a.jpg", "content a");
  run();
  fs::rename(dir / "a.jpg", other / "a.jpg");
  Store s = Store::open(db, fake_model(), true);
  enc.embedded.clear();
  const IndexReport r = update_index(s, {other.path.string()}, enc.fn());  // only the new folder
  EXPECT_EQ(r.renamed, 1u);
  EXPECT_TRUE(enc.embedded.empty());
  EXPECT_EQ(rows(db), 1u);
}

TEST_F(Indexer, SameContentTwiceIsEmbeddedOnce) {
  write_file(dir / "a.jpg", "same bytes");
  write_file(dir / "b.jpg", "same bytes");
  const IndexReport r = run();
  EXPECT_EQ(r.embedded, 1u);
  EXPECT_EQ(r.copied, 1u);
  EXPECT_EQ(enc.embedded.size(), 1u);
  EXPECT_EQ(rows(db), 2u);
}

TEST_F(Indexer, UnreadableFilesAreListedSkippedAndRetriedWhenChanged) {
  write_file(dir / "good.jpg", "fine");
  write_file(dir / "broken.jpg", "BAD bytes");
  IndexReport r = run();
  EXPECT_EQ(r.embedded, 1u);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].first, dir / "broken.jpg");
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM failures"), 1);

  r = run();
  EXPECT_EQ(r.skipped_failed, 1u);
  EXPECT_TRUE(r.failures.empty());
  EXPECT_TRUE(enc.embedded.empty());

  write_file(dir / "broken.jpg", "repaired");
  set_mtime(dir / "broken.jpg", 1200000000);
  r = run();
  EXPECT_EQ(r.embedded, 1u);
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM failures"), 0);
  EXPECT_EQ(rows(db), 2u);

  if (::geteuid() != 0) {  // root reads anything
    write_file(dir / "locked.jpg", "secret");
    fs::permissions(dir / "locked.jpg", fs::perms::none);
    r = run();
    ASSERT_EQ(r.failures.size(), 1u);
    EXPECT_EQ(r.failures[0].first, dir / "locked.jpg");
    fs::permissions(dir / "locked.jpg", fs::perms::owner_all);
  }
}

TEST_F(Indexer, StopCommitsWhatIsDoneAndTheNextRunResumes) {
  for (int i = 0; i < 40; ++i) write_file(dir / numbered("p", i), numbered("photo ", i, ""));
  std::atomic<bool> stop{false};
  enc.keep_going = [&](size_t n) {
    if (n == 13) stop = true;
    return true;
  };
  IndexOptions opt;
  opt.batch = 4;
  opt.stop = &stop;
  IndexReport r = run(opt);
  EXPECT_TRUE(r.interrupted);
  const size_t done = r.embedded;
  EXPECT_GE(done, 13u);  // stops after the image in hand
  EXPECT_LE(done, 14u);
  EXPECT_EQ(rows(db), done);  // the partial batch was committed too
  enc.keep_going = [](size_t) { return true; };
  r = run();
  EXPECT_EQ(r.unchanged, done);
  EXPECT_EQ(r.embedded, 40u - done);
  EXPECT_EQ(rows(db), 40u);
}

TEST_F(Indexer, ExcludedAndDeletedFoldersLeaveTheIndex) {
  write_file(dir / "keep/a.jpg", "a");
  write_file(dir / "skip/b.jpg", "b");
  run();
  EXPECT_EQ(rows(db), 2u);
  IndexOptions opt;
  opt.excludes = {"skip"};
  const IndexReport r = run(opt);
  EXPECT_EQ(r.removed, 1u);
  EXPECT_EQ(rows(db), 1u);
  fs::remove_all(dir / "keep");
  run(opt);
  EXPECT_EQ(rows(db), 0u);
}

TEST_F(Indexer, OtherFoldersInTheSameDatabaseAreLeftAlone) {
  TempDir other("photos2");
  write_file(dir / "a.jpg", "a");
  write_file(other / "b.jpg", "b");
  run();
  Store s = Store::open(db, fake_model(), true);
  update_index(s, {other.path.string()}, enc.fn());
  EXPECT_EQ(rows(db), 2u);
  fs::remove(other / "b.jpg");
  run();  // indexes `dir` only: b's row is outside it and stays
  EXPECT_EQ(rows(db), 2u);
}

TEST_F(Indexer, TwoProcessesIndexingTheSameFolderAtOnce) {
  for (int i = 0; i < 60; ++i) write_file(dir / numbered("p", i), numbered("photo ", i, ""));
  { Store::open(db, fake_model(), true); }  // created once; the two runs below race on everything else
  std::vector<std::string> errors(2);
  auto one = [&](int k) {
    try {
      FakeEncoder e;
      Store s = Store::open(db, fake_model(), true);
      IndexOptions o;
      o.batch = 4;
      update_index(s, {dir.path.string()}, e.fn(), o);
    } catch (const std::exception& ex) {
      errors[k] = ex.what();
    }
  };
  std::thread a(one, 0), b(one, 1);
  a.join();
  b.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
  EXPECT_EQ(rows(db), 60u);
  EXPECT_EQ(sql_int(db, "SELECT count(DISTINCT path) FROM images"), 60);
  EXPECT_EQ(sql_text(db, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(run().unchanged, 60u);
}
