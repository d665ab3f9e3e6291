// `zeroshot index`, `search` and `dedup` end to end with the fixture model (clip-tiny-quickgelu) on copies of the
// fixture images and imagenet-samples: incremental counts, kill -9 and resume, search and dedup against a
// brute-force computation from the engine's own embeddings (Model::embed_image_files), bad databases and models.
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <numeric>
#include <sstream>
#include <thread>

#include "image/image.h"
#include "index/test_util.h"
#include "io/json.h"
#include "support/cli.h"
#include "support/fixtures.h"
#include "zeroshot/zeroshot.h"

using namespace zeroshot;
using namespace zeroshot::index::testing;
using zeroshot::testing::CliProcess;
using zeroshot::testing::CliResult;
using zeroshot::testing::json_lines;
using zeroshot::testing::run_cli;

namespace {

const std::string kModel = zeroshot::testing::clip_dir("clip-tiny-quickgelu");
const std::string kOtherModel = zeroshot::testing::clip_dir("clip-tiny-gelu-f16");
const std::string kImages = zeroshot::testing::fixtures() + "/images";
const std::string kImagenet = zeroshot::testing::shared() + "/datasets/imagenet-samples";

// Runs the CLI with `args`, offline, stdin closed, the label cache in a folder of this run (not the user's).
CliResult cli(const std::vector<std::string>& args) { return run_cli(args); }

io::Json json_of(const CliResult& r, int code = 0) {
  EXPECT_EQ(r.code, code) << r.err;
  return io::parse_json(r.out, "index output");
}

std::vector<std::string> good_fixture_images() {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(kImages)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("bad_", 0) != 0) v.push_back(n);
  }
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<std::string> imagenet(size_t n) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(kImagenet)) v.push_back(e.path().string());
  std::sort(v.begin(), v.end());
  v.resize(std::min(n, v.size()));
  return v;
}

const Model& model() {
  static const auto m = Model::load(kModel);
  return *m;
}

// Normalized embeddings of files, straight from the engine.
std::map<std::string, std::vector<float>> engine_embeddings(const std::vector<std::string>& paths) {
  std::map<std::string, std::vector<float>> out;
  const size_t dim = model().embedding_dim();
  model().embed_image_files(paths, 8, [&](size_t i, const float* e, const std::string& err) {
    EXPECT_NE(e, nullptr) << err;
    if (!e) return true;
    std::vector<float> v(e, e + dim);
    double n = 0;
    for (float x : v) n += static_cast<double>(x) * x;
    for (auto& x : v) x = static_cast<float>(x / std::sqrt(n));
    out[paths[i]] = v;
    return true;
  });
  return out;
}

std::vector<float> normalized(const float* e, size_t dim) {
  double n = 0;
  for (size_t k = 0; k < dim; ++k) n += static_cast<double>(e[k]) * e[k];
  std::vector<float> v(dim);
  for (size_t k = 0; k < dim; ++k) v[k] = static_cast<float>(e[k] / std::sqrt(n));
  return v;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t k = 0; k < a.size(); ++k) d += static_cast<double>(a[k]) * b[k];
  return d;
}

// Re-encodes an image as a baseline JPEG of the given quality (libjpeg), pixels decoded by the engine.
void reencode_jpeg(const std::string& in, const std::string& out, int quality) {
  const image::RgbImage img = image::decode_file(in);
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  FILE* f = std::fopen(out.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  jpeg_stdio_dest(&c, f);
  c.image_width = static_cast<JDIMENSION>(img.width);
  c.image_height = static_cast<JDIMENSION>(img.height);
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(img.pixels.data() + static_cast<size_t>(c.next_scanline) * img.width * 3);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::fclose(f);
}

size_t db_rows(const std::string& db) { return static_cast<size_t>(sql_int(db, "SELECT count(*) FROM images")); }

class IndexCli : public ::testing::Test {
 protected:
  TempDir lib{"lib"};
  TempDir dbdir{"db"};
  std::string db = dbdir / "index.db";

  void copy_fixtures(bool with_bad) {
    for (const auto& e : fs::directory_iterator(kImages)) {
      const std::string n = e.path().filename().string();
      if (with_bad || n.rfind("bad_", 0) != 0) fs::copy_file(e.path(), lib.path / n);
    }
  }
  // `code`: the exit code expected (1 when files could not be read in this run).
  io::Json index(const std::vector<std::string>& extra = {}, int code = 0) {
    std::vector<std::string> args = {"index", "-m", kModel, "--db", db, "--format", "json", "-q", lib.path.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return json_of(cli(args), code);
  }
  // The library's normalized embeddings from the engine, by path.
  std::map<std::string, std::vector<float>> library_embeddings() {
    std::vector<std::string> paths;
    for (const auto& e : fs::recursive_directory_iterator(lib.path))
      if (e.is_regular_file() && e.path().filename().string().rfind("bad_", 0) != 0) paths.push_back(e.path().string());
    return engine_embeddings(paths);
  }
};

}  // namespace

TEST_F(IndexCli, IndexesIncrementally) {
  copy_fixtures(true);
  const size_t good = good_fixture_images().size();
  io::Json r = index({}, 1);  // the four bad_* files: exit code 1, the rest indexed
  EXPECT_EQ(r["embedded"].get<size_t>() + r["copied"].get<size_t>(), good);
  EXPECT_EQ(r["images"].get<size_t>(), good);
  EXPECT_EQ(r["files"].get<size_t>(), good + 4);
  ASSERT_EQ(r["failures"].size(), 4u);  // the four bad_* files, listed, not fatal
  for (const auto& f : r["failures"]) {
    EXPECT_EQ(fs::path(f["path"].get<std::string>()).filename().string().rfind("bad_", 0), 0u);
    EXPECT_FALSE(f["error"].get<std::string>().empty());
  }
  EXPECT_EQ(db_rows(db), good);
  EXPECT_EQ(sql_text(db, "PRAGMA integrity_check"), "ok");

  // The stored embeddings are the engine's, normalized.
  const auto emb = library_embeddings();
  ASSERT_EQ(emb.size(), good);
  {
    index::Store s = index::Store::open(db, {"", "", 0}, false);
    const index::Vectors v = s.vectors({});
    ASSERT_EQ(v.rows(), good);
    for (size_t i = 0; i < v.rows(); ++i) {
      const auto& want = emb.at(s.path_of(v.ids[i]));
      for (size_t k = 0; k < v.dim; ++k) EXPECT_NEAR(v.row(i)[k], want[k], 1e-6);
    }
  }

  r = index();  // nothing changed; the bad files are known and skipped, not read again: exit code 0
  EXPECT_EQ(r["embedded"].get<size_t>(), 0u);
  EXPECT_EQ(r["unchanged"].get<size_t>(), good);
  EXPECT_EQ(r["skipped_unreadable"].get<size_t>(), 4u);

  // Added, touched, renamed, deleted, copied.
  const auto extra = imagenet(3);
  for (const auto& p : extra) fs::copy_file(p, lib.path / fs::path(p).filename());
  set_mtime(lib / "chelsea.png", 1500000000);
  set_mtime(lib / "coins.png", 1500000000, 123);
  fs::create_directories(lib.path / "renamed");
  fs::rename(lib / "horse.png", lib / "renamed/a horse.png");
  fs::remove(lib / "rocket.jpg");
  fs::copy_file(lib / "camera.png", lib / "camera copy.png");
  r = index();
  EXPECT_EQ(r["embedded"].get<size_t>(), 3u);
  EXPECT_EQ(r["touched"].get<size_t>(), 2u);
  EXPECT_EQ(r["renamed"].get<size_t>(), 1u);
  EXPECT_EQ(r["removed"].get<size_t>(), 1u);
  EXPECT_EQ(r["copied"].get<size_t>(), 1u);
  EXPECT_EQ(db_rows(db), good + 3 - 1 + 1);
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM images WHERE path LIKE '%/renamed/a horse.png'"), 1);
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM images WHERE path LIKE '%/rocket.jpg'"), 0);

  r = index();
  EXPECT_EQ(r["embedded"].get<size_t>(), 0u);
  EXPECT_EQ(r["unchanged"].get<size_t>(), db_rows(db));
  EXPECT_EQ(sql_text(db, "PRAGMA integrity_check"), "ok");
}

TEST_F(IndexCli, SearchEqualsBruteForceOverTheEngineEmbeddings) {
  copy_fixtures(false);
  const auto emb = library_embeddings();
  const size_t dim = model().embedding_dim();
  const std::string cat_img = lib / "chelsea.png";
  struct Case {
    std::vector<std::string> words;
    std::vector<std::pair<float, std::string>> texts, images;  // weighted terms, for the brute force
  };
  const std::vector<Case> cases = {
      {{"a photo of a cat"}, {{1.f, "a photo of a cat"}}, {}},
      {{cat_img}, {}, {{1.f, cat_img}}},
      {{"2:a golden retriever", "+", cat_img, "-", "fruit"},
       {{2.f, "a golden retriever"}, {-1.f, "fruit"}},
       {{1.f, cat_img}}},
      {{"0.5:" + cat_img, "-", "2.5:rocket", "launch"}, {{-2.5f, "rocket launch"}}, {{0.5f, cat_img}}},
  };
  bool first = true;
  for (const auto& c : cases) {
    std::vector<std::string> args = {"search",          "-m", kModel, "--db",     db,     "-d",
                                     lib.path.string(), "-k", "100",  "--format", "json", "-q"};
    if (!first) args.push_back("--no-index");  // the first run indexes, like rclip
    first = false;
    args.insert(args.end(), c.words.begin(), c.words.end());
    const CliResult run = cli(args);
    ASSERT_EQ(run.code, 0) << run.err;
    const auto lines = json_lines(run.out);
    // Brute force: q = normalize(sum w_i * normalize(e_i)); score = cosine.
    std::vector<double> q(dim, 0.0);
    auto add = [&](float w, const float* e) {
      const auto n = normalized(e, dim);
      for (size_t k = 0; k < dim; ++k) q[k] += w * n[k];
    };
    for (const auto& [w, t] : c.texts) add(w, model().embed_texts({t}).row(0));
    for (const auto& [w, p] : c.images) add(w, engine_embeddings({p}).at(p).data());
    double qn = 0;
    for (double x : q) qn += x * x;
    std::vector<float> qf(dim);
    for (size_t k = 0; k < dim; ++k) qf[k] = static_cast<float>(q[k] / std::sqrt(qn));
    std::vector<std::pair<double, std::string>> want;
    for (const auto& [p, e] : emb) want.push_back({dot(qf, e), p});
    std::sort(want.begin(), want.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    ASSERT_EQ(lines.size(), want.size()) << run.out;
    for (size_t i = 0; i < want.size(); ++i) {
      const double got_score = lines[i]["score"].get<double>();
      EXPECT_NEAR(got_score, want[i].first, 1e-5) << i;
      // Same order, except between scores too close to call.
      if (lines[i]["path"].get<std::string>() != want[i].second) {
        const double other = std::find_if(want.begin(), want.end(), [&](const auto& w) {
                               return w.second == lines[i]["path"].get<std::string>();
                             })->first;
        EXPECT_NEAR(other, want[i].first, 1e-5)
            << "rank " << i + 1 << ": " << lines[i]["path"] << " vs " << want[i].second;
      }
      EXPECT_EQ(lines[i]["rank"].get<size_t>(), i + 1);
    }
  }
  // --format paths, and -k.
  const CliResult p = cli({"search", "-m", kModel, "--db", db, "-d", lib.path.string(), "-k", "3", "--format", "paths",
                           "--no-index", "a cat"});
  ASSERT_EQ(p.code, 0) << p.err;
  EXPECT_EQ(std::count(p.out.begin(), p.out.end(), '\n'), 3);
  EXPECT_EQ(p.out.find('{'), std::string::npos);
}

TEST_F(IndexCli, DedupFindsAReencodedCopy) {
  fs::copy_file(kImages + "/astronaut.png", lib / "astronaut.png");
  reencode_jpeg(kImages + "/astronaut.png", lib / "astronaut-q70.jpg", 70);
  for (const auto& p : imagenet(12)) fs::copy_file(p, lib.path / fs::path(p).filename());
  const auto emb = library_embeddings();
  ASSERT_GT(dot(emb.at(lib / "astronaut.png"), emb.at(lib / "astronaut-q70.jpg")), 0.99);
  for (const std::string thr : {"0.99", "0.94"}) {
    const CliResult r =
        cli({"dedup", "-m", kModel, "--db", db, "--format", "json", "-q", "-t", thr, lib.path.string()});
    ASSERT_EQ(r.code, 0) << r.err;
    std::set<std::set<std::string>> got;
    for (const auto& line : json_lines(r.out)) {
      std::set<std::string> g;
      for (const auto& m : line["images"]) g.insert(m["path"].get<std::string>());
      got.insert(g);
    }
    // Brute force: connected components of cosine >= thr over the engine's embeddings.
    const double t = std::stod(thr);
    std::vector<std::string> paths;
    for (const auto& [p, e] : emb) paths.push_back(p);
    std::vector<size_t> parent(paths.size());
    std::iota(parent.begin(), parent.end(), size_t{0});
    std::function<size_t(size_t)> root = [&](size_t x) { return parent[x] == x ? x : parent[x] = root(parent[x]); };
    for (size_t i = 0; i < paths.size(); ++i)
      for (size_t j = i + 1; j < paths.size(); ++j)
        if (dot(emb.at(paths[i]), emb.at(paths[j])) >= t) parent[root(j)] = root(i);
    std::map<size_t, std::set<std::string>> comps;
    for (size_t i = 0; i < paths.size(); ++i) comps[root(i)].insert(paths[i]);
    std::set<std::set<std::string>> want;
    for (const auto& [k, g] : comps)
      if (g.size() > 1) want.insert(g);
    EXPECT_EQ(got, want) << "threshold " << thr;
    bool together = false;
    for (const auto& g : got)
      together = together || (g.count(lib / "astronaut.png") && g.count(lib / "astronaut-q70.jpg"));
    EXPECT_TRUE(together) << "threshold " << thr;
  }
}

TEST_F(IndexCli, KillNineWhileIndexingThenResume) {
  const auto samples = imagenet(240);
  for (size_t i = 0; i < samples.size(); ++i)
    fs::create_symlink(samples[i], lib.path / fs::path(samples[i]).filename());
  CliProcess indexer({"index", "-m", kModel, "--db", db, "--batch", "4", "-q", lib.path.string()});
  ASSERT_GT(indexer.pid(), 0);
  // Kill it once it has committed a few batches (a separate connection polls the row count).
  size_t seen = 0;
  bool exited = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!indexer.running()) {
      exited = true;
      break;
    }
    if (fs::exists(db)) {
      const std::string c = sql_text(db, "SELECT count(*) FROM images");
      if (!c.empty() && c.rfind("error", 0) != 0) seen = std::stoul(c);
    }
    if (seen >= 8) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!exited) {
    indexer.kill(SIGKILL);
    EXPECT_EQ(indexer.wait().code, 128 + SIGKILL);  // ended by the signal
  }
  ASSERT_FALSE(exited) << "the indexer finished before it could be killed";
  const size_t committed = db_rows(db);
  EXPECT_GE(committed, 8u);
  EXPECT_LT(committed, samples.size());
  EXPECT_EQ(sql_text(db, "PRAGMA integrity_check"), "ok");

  const io::Json r = index();
  EXPECT_EQ(r["unchanged"].get<size_t>(), committed);
  EXPECT_EQ(r["embedded"].get<size_t>() + r["copied"].get<size_t>(), samples.size() - committed);
  EXPECT_EQ(db_rows(db), samples.size());
  EXPECT_EQ(sql_int(db, "SELECT count(DISTINCT path) FROM images"), static_cast<long long>(samples.size()));
  EXPECT_EQ(sql_text(db, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM images WHERE length(embedding) != 4 * " +
                            std::to_string(model().embedding_dim())),
            0);
}

// Two indexers and a searcher started together on a database that does not exist yet: every one succeeds (each
// waits for the others' locks), and the index ends complete. Before the fix, one of two indexers failed within
// milliseconds with "the index database is locked by another process" in about one trial in three.
TEST_F(IndexCli, TwoIndexersAndASearcherOnANewDatabase) {
  copy_fixtures(false);
  const size_t good = good_fixture_images().size();
  for (int trial = 0; trial < 4; ++trial) {
    fs::remove(db);
    fs::remove(db + "-wal");
    fs::remove(db + "-shm");
    const std::vector<std::string> indexer = {"index", "-m", kModel, "--db", db, "-q", lib.path.string()};
    CliProcess a(indexer), b(indexer);
    CliProcess c({"search", "-m", kModel, "--db", db, "-q", "--format", "json", "-d", lib.path.string(), "a cat"});
    for (CliProcess* p : {&a, &b, &c}) {
      const CliResult r = p->wait();
      EXPECT_EQ(r.code, 0) << "trial " << trial << ": " << r.err;
    }
    EXPECT_EQ(db_rows(db), good) << "trial " << trial;
    EXPECT_EQ(sql_int(db, "SELECT count(DISTINCT path) FROM images"), static_cast<long long>(good));
    EXPECT_EQ(sql_text(db, "PRAGMA integrity_check"), "ok");
  }
}

TEST_F(IndexCli, BadDatabasesAreOneLineErrors) {
  copy_fixtures(false);
  auto expect_refused = [&](const std::string& file, const std::string& what) {
    for (const std::string cmd : {"index", "search"}) {
      std::vector<std::string> args = {cmd, "-m", kModel, "--db", file, "-q"};
      if (cmd == "search") args.insert(args.end(), {"-d", lib.path.string(), "a cat"});
      else args.push_back(lib.path.string());
      const CliResult r = cli(args);
      EXPECT_EQ(r.code, 2) << cmd << " " << file;
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
      EXPECT_NE(r.err.find(file), std::string::npos) << r.err;
      EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    }
  };
  const std::string garbage = dbdir / "garbage.db";
  write_file(garbage, std::string(5000, 'z'));
  expect_refused(garbage, "not an SQLite database");
  EXPECT_EQ(read_all(garbage), std::string(5000, 'z'));  // never overwritten

  const std::string foreign = dbdir / "foreign.db";
  sql_text(foreign + "", "");  // nothing: create it below with the C API
  {
    sqlite3* h = nullptr;
    sqlite3_open(foreign.c_str(), &h);
    sqlite3_exec(h, "CREATE TABLE t(x); INSERT INTO t VALUES (1);", nullptr, nullptr, nullptr);
    sqlite3_close(h);
  }
  expect_refused(foreign, "another application");

  ASSERT_EQ(cli({"index", "-m", kModel, "--db", db, "-q", lib.path.string()}).code, 0);
  std::string bytes = read_all(db);
  damage_page(bytes, 2);  // the first table's root (the images table or the meta table)
  const std::string damaged = dbdir / "damaged.db";
  write_file(damaged, bytes);
  expect_refused(damaged, "damaged");

  const CliResult r = cli({"search", "-m", kModel, "--db", dbdir / "missing.db", "--no-index", "a cat"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("zeroshot index"), std::string::npos) << r.err;
}

TEST_F(IndexCli, AnotherModelNeedsReindexAndNeverMixes) {
  copy_fixtures(false);
  const size_t good = good_fixture_images().size();
  ASSERT_EQ(cli({"index", "-m", kOtherModel, "--db", db, "-q", lib.path.string()}).code, 0);
  EXPECT_EQ(db_rows(db), good);
  for (const std::string cmd : {"index", "search", "dedup"}) {
    std::vector<std::string> args = {cmd, "-m", kModel, "--db", db, "-q"};
    if (cmd == "search") args.insert(args.end(), {"-d", lib.path.string(), "a cat"});
    else args.push_back(lib.path.string());
    const CliResult r = cli(args);
    EXPECT_EQ(r.code, 2) << cmd;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("another model"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--reindex"), std::string::npos) << r.err;
  }
  EXPECT_EQ(db_rows(db), good);  // untouched
  const io::Json r = index({"--reindex"});
  EXPECT_EQ(r["embedded"].get<size_t>() + r["copied"].get<size_t>(), good);
  EXPECT_EQ(db_rows(db), good);
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM images WHERE length(embedding) != 4 * " +
                            std::to_string(model().embedding_dim())),
            0);
  EXPECT_EQ(sql_text(db, "SELECT value FROM meta WHERE key = 'model_name'"), kModel);
}
