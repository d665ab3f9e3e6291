// Queries, exact and ANN search, the ANN index kept in step with the database, dedup groups; synthetic vectors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>
#include <random>

#include "index/ann.h"
#include "index/exact.h"
#include "index/query.h"
#include "index/search.h"
#include "index/test_util.h"
#include "zeroshot/error.h"

using namespace zeroshot;
using namespace zeroshot::index;
using namespace zeroshot::index::testing;

namespace {

void normalize(float* v, size_t dim) {
  double n = 0;
  for (size_t k = 0; k < dim; ++k) n += static_cast<double>(v[k]) * v[k];
  n = std::sqrt(n);
  for (size_t k = 0; k < dim; ++k) v[k] = static_cast<float>(v[k] / n);
}

// n normalized vectors around `clusters` random centers (like photo embeddings: clumped, not uniform).
Vectors clustered(size_t n, size_t dim, size_t clusters, float spread, uint32_t seed, int64_t first_id = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> centers(clusters * dim);
  for (auto& x : centers) x = nd(rng);
  Vectors v;
  v.dim = dim;
  v.data.resize(n * dim);
  for (size_t i = 0; i < n; ++i) {
    const size_t c = rng() % clusters;
    for (size_t k = 0; k < dim; ++k) v.data[i * dim + k] = centers[c * dim + k] + spread * nd(rng);
    normalize(&v.data[i * dim], dim);
    v.ids.push_back(first_id + static_cast<int64_t>(i));
  }
  return v;
}

std::vector<Hit> brute_force(const Vectors& v, const float* q, size_t k) {
  std::vector<std::pair<double, int64_t>> s;
  for (size_t i = 0; i < v.rows(); ++i) {
    double d = 0;
    for (size_t j = 0; j < v.dim; ++j) d += static_cast<double>(v.row(i)[j]) * q[j];
    s.emplace_back(-d, v.ids[i]);
  }
  std::sort(s.begin(), s.end());
  std::vector<Hit> out;
  for (size_t i = 0; i < std::min(k, s.size()); ++i) out.push_back({s[i].second, static_cast<float>(-s[i].first)});
  return out;
}

double recall(const std::vector<Hit>& got, const std::vector<Hit>& truth) {
  size_t hit = 0;
  for (const auto& t : truth)
    for (const auto& g : got) hit += g.id == t.id;
  return truth.empty() ? 1.0 : static_cast<double>(hit) / static_cast<double>(truth.size());
}

// A store at `db` holding `v` (paths "/lib/<group>/<id>.jpg", group = id % groups).
void fill_store(Store& s, const Vectors& v, int groups = 2) {
  Transaction t(s.db());
  for (size_t i = 0; i < v.rows(); ++i) {
    const std::string path = "/lib/g" + std::to_string(v.ids[i] % groups) + "/" + std::to_string(v.ids[i]) + ".jpg";
    std::string hash(32, '\0');
    std::memcpy(hash.data(), &v.ids[i], sizeof(int64_t));
    s.insert(path, 1, 1, hash, v.row(i));
  }
  s.bump_generation();
  t.commit();
}

}  // namespace

// ---- queries

TEST(Query, SplitsWeightsLikeRclip) {
  float w = 0;
  std::string rest;
  EXPECT_TRUE(split_weight("2:golden retriever", &w, &rest));
  EXPECT_EQ(w, 2.f);
  EXPECT_EQ(rest, "golden retriever");
  EXPECT_TRUE(split_weight(".5:x", &w, &rest));
  EXPECT_EQ(w, 0.5f);
  EXPECT_TRUE(split_weight("3.:x", &w, &rest));
  EXPECT_EQ(w, 3.f);
  EXPECT_TRUE(split_weight("0.25:./a.jpg", &w, &rest));
  EXPECT_EQ(rest, "./a.jpg");
  EXPECT_FALSE(split_weight("a:b", &w, &rest));
  EXPECT_FALSE(split_weight("2:", &w, &rest));
  EXPECT_FALSE(split_weight(":x", &w, &rest));
  EXPECT_FALSE(split_weight("-2:x", &w, &rest));
  EXPECT_FALSE(split_weight("golden retriever", &w, &rest));
}

TEST(Query, ParsesTermsOperatorsAndImages) {
  TempDir d("query");
  const std::string img = d / "pool.jpg";
  write_file(img, "x");
  auto t = parse_query({"2:golden retriever", "+", img, "-", "fruit"});
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].value, "golden retriever");
  EXPECT_EQ(t[0].weight, 2.f);
  EXPECT_FALSE(t[0].image);
  EXPECT_EQ(t[1].value, img);
  EXPECT_TRUE(t[1].image);
  EXPECT_EQ(t[1].weight, 1.f);
  EXPECT_EQ(t[2].value, "fruit");
  EXPECT_EQ(t[2].weight, -1.f);

  t = parse_query({"red", "car", "-", "0.5:blue", "sky"});  // words join into terms
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].value, "red car");
  EXPECT_EQ(t[1].value, "blue sky");
  EXPECT_EQ(t[1].weight, -0.5f);

  t = parse_query({"cat", img}, {"0.5:" + img});  // an image word stands alone; --image adds
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].value, "cat");
  EXPECT_TRUE(t[1].image);
  EXPECT_TRUE(t[2].image);
  EXPECT_EQ(t[2].weight, 0.5f);

  t = parse_query({"./does-not-exist.jpg"});  // a path prefix makes an image even when missing (error later)
  EXPECT_TRUE(t[0].image);
  t = parse_query({"-", "fruit"});
  EXPECT_EQ(t[0].weight, -1.f);
}

TEST(Query, RefusesMalformedQueries) {
  EXPECT_THROW(parse_query({}), Error);
  EXPECT_THROW(parse_query({"cat", "-"}), Error);
  EXPECT_THROW(parse_query({"cat", "+", "-", "dog"}), Error);
  EXPECT_THROW(parse_query({"+"}), Error);
  EXPECT_THROW(parse_query({"2:   "}), Error);
}

TEST(Query, CombinesNormalizedWeightedEmbeddings) {
  const size_t dim = 5;
  const std::vector<float> a = {3, 0, 0, 4, 0}, b = {0, 2, 0, 0, 0}, c = {1, 1, 1, 1, 1};
  const std::vector<QueryTerm> terms = {{2, false, "a"}, {1, true, "b.jpg"}, {-0.5f, false, "c"}};
  const auto q = combine_terms(terms, {a.data(), b.data(), c.data()}, dim);
  // 2 * a/|a| + b/|b| - 0.5 * c/|c| = 2*(.6,0,0,.8,0) + (0,1,0,0,0) - .5*(1,1,1,1,1)/sqrt(5), then normalized.
  const double c5 = 0.5 / std::sqrt(5.0);
  const std::vector<double> e = {1.2 - c5, 1 - c5, -c5, 1.6 - c5, -c5};
  double n = 0;
  for (double x : e) n += x * x;
  n = std::sqrt(n);
  for (size_t k = 0; k < dim; ++k) EXPECT_NEAR(q[k], e[k] / n, 1e-6);
  EXPECT_THROW(combine_terms({{1, false, "a"}, {-1, false, "a"}}, {a.data(), a.data()}, dim), Error);
}

// ---- exact

TEST(Exact, TopKIsTheSortedPrefixWithTiesByIndex) {
  std::mt19937 rng(7);
  std::vector<float> s(1000);
  for (auto& x : s) x = static_cast<float>(rng() % 50);  // many ties
  std::vector<size_t> order(s.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return s[a] > s[b]; });
  for (size_t k : {0, 1, 10, 999, 1000, 5000}) {
    const auto top = top_k_indices(s.data(), s.size(), k);
    EXPECT_EQ(top, std::vector<size_t>(order.begin(), order.begin() + static_cast<long>(std::min(k, s.size()))));
  }
}

TEST(Exact, SearchAndPairsMatchBruteForce) {
  const Vectors v = clustered(3000, 24, 40, 0.3f, 1);
  for (size_t qi : {0, 17, 2999}) {
    const auto got = exact_top_k(v, v.row(qi), 10);
    const auto want = brute_force(v, v.row(qi), 10);
    ASSERT_EQ(got.size(), 10u);
    for (size_t i = 0; i < 10; ++i) {
      EXPECT_EQ(got[i].id, want[i].id);
      EXPECT_NEAR(got[i].score, want[i].score, 1e-5);
    }
  }
  const Vectors small = clustered(1500, 16, 30, 0.2f, 2);  // crosses the 1024-row blocks
  const float thr = 0.97f;
  std::set<std::pair<size_t, size_t>> sure, borderline;  // float rounding decides the borderline ones
  for (size_t i = 0; i < small.rows(); ++i)
    for (size_t j = i + 1; j < small.rows(); ++j) {
      double d = 0;
      for (size_t k = 0; k < small.dim; ++k) d += static_cast<double>(small.row(i)[k]) * small.row(j)[k];
      if (d >= thr + 1e-5) sure.insert({i, j});
      else if (d > thr - 1e-5) borderline.insert({i, j});
    }
  std::set<std::pair<size_t, size_t>> got;
  for (const auto& p : exact_pairs_above(small.data.data(), small.rows(), small.dim, thr)) got.insert({p.a, p.b});
  for (const auto& p : sure) EXPECT_TRUE(got.count(p)) << p.first << "," << p.second;
  for (const auto& p : got) EXPECT_TRUE(sure.count(p) || borderline.count(p)) << p.first << "," << p.second;
  EXPECT_GT(sure.size(), 100u);
}

// ---- ANN

TEST(Ann, RecallAgainstExactOnClusteredVectors) {
  const Vectors v = clustered(20000, 32, 200, 0.5f, 3);
  const AnnIndex a = AnnIndex::build(v);
  EXPECT_EQ(a.size(), v.rows());
  EXPECT_EQ(a.nlist(), default_nlist(v.rows()));
  std::mt19937 rng(4);
  double sum = 0;
  const int queries = 50;
  for (int i = 0; i < queries; ++i) {
    const size_t r = rng() % v.rows();
    std::vector<float> q(v.row(r), v.row(r) + v.dim);
    std::normal_distribution<float> nd;
    for (auto& x : q) x += 0.1f * nd(rng);
    normalize(q.data(), q.size());
    const auto truth = brute_force(v, q.data(), 10);
    const auto got = a.search(q.data(), 10);
    sum += recall(got, truth);
    for (size_t j = 1; j < got.size(); ++j) EXPECT_GE(got[j - 1].score, got[j].score);
  }
  EXPECT_GE(sum / queries, 0.9);
  // nprobe = nlist scans everything: exact.
  const auto all = a.search(v.row(5), 10, a.nlist());
  const auto truth = brute_force(v, v.row(5), 10);
  EXPECT_EQ(recall(all, truth), 1.0);
}

TEST(Ann, RestrictsToAllowedIdsAndRemoves) {
  const Vectors v = clustered(3000, 16, 20, 0.4f, 5);
  AnnIndex a = AnnIndex::build(v, 20);
  std::vector<int64_t> even;
  for (int64_t id : v.ids)
    if (id % 2 == 0) even.push_back(id);
  for (const auto& h : a.search(v.row(1), 50, 20, &even)) EXPECT_EQ(h.id % 2, 0);
  EXPECT_EQ(a.remove(even), even.size());
  EXPECT_EQ(a.size(), v.rows() - even.size());
  for (int64_t id : a.ids()) EXPECT_EQ(id % 2, 1);
}

TEST(Ann, SavesLoadsAndNeverParsesADamagedFile) {
  TempDir d("ann");
  const Vectors v = clustered(2000, 16, 20, 0.4f, 6);
  AnnIndex a = AnnIndex::build(v);
  a.stamp = {"0123456789abcdef0123456789abcdef", 42, v.ids.back(), v.rows()};
  const std::string p = d / "i.db.faiss";
  a.save(p);
  std::string why;
  AnnIndex b = AnnIndex::load(p, &why);
  ASSERT_FALSE(b.empty()) << why;
  EXPECT_EQ(b.stamp.uuid, a.stamp.uuid);
  EXPECT_EQ(b.stamp.generation, 42);
  EXPECT_EQ(b.stamp.max_id, v.ids.back());
  const auto ra = a.search(v.row(3), 10), rb = b.search(v.row(3), 10);
  ASSERT_EQ(ra.size(), rb.size());
  for (size_t i = 0; i < ra.size(); ++i) EXPECT_EQ(ra[i].id, rb[i].id);
  // Memory-mapped: the same answers, read-only.
  AnnIndex m = AnnIndex::load(p, &why, /*mapped=*/true);
  ASSERT_FALSE(m.empty()) << why;
  EXPECT_TRUE(m.mapped());
  EXPECT_EQ(m.ids(), a.ids());
  const auto rm = m.search(v.row(3), 10);
  ASSERT_EQ(rm.size(), ra.size());
  for (size_t i = 0; i < ra.size(); ++i) EXPECT_EQ(rm[i].id, ra[i].id);
  EXPECT_THROW(m.remove({v.ids[0]}), Error);

  const std::string bytes = read_all(p);
  for (bool mapped : {false, true}) {
    // A flipped byte in the prefix (centroids, sizes): refused both ways; in the lists: refused when read whole.
    for (size_t at : {size_t{200}, bytes.size() - 50}) {
      std::string flipped = bytes;
      flipped[at] ^= 0x40;
      write_file(p, flipped);
      const AnnIndex x = AnnIndex::load(p, &why, mapped);
      if (!mapped || at == 200) {
        EXPECT_TRUE(x.empty()) << at;
        EXPECT_NE(why.find("damaged"), std::string::npos) << why;
      }
    }
    write_file(p, bytes.substr(0, bytes.size() - 100));
    EXPECT_TRUE(AnnIndex::load(p, &why, mapped).empty());
    EXPECT_NE(why.find("truncated"), std::string::npos) << why;
    write_file(p, "not an index");
    EXPECT_TRUE(AnnIndex::load(p, &why, mapped).empty());
    write_file(p, "");
    EXPECT_TRUE(AnnIndex::load(p, &why, mapped).empty());
    EXPECT_TRUE(AnnIndex::load(d / "missing.faiss", &why, mapped).empty());
  }
}

TEST(Ann, KeptInStepWithTheDatabase) {
  TempDir d("ann");
  const std::string db = d / "i.db";
  Store s = Store::open(db, fake_model("fp", 16), true);
  const Vectors v = clustered(3000, 16, 30, 0.4f, 7);
  fill_store(s, v);
  AnnStatus st;
  AnnIndex a = ann_for(s, {}, &st);
  EXPECT_EQ(st.action, AnnStatus::Built);
  EXPECT_EQ(a.size(), 3000u);
  EXPECT_TRUE(fs::exists(db + ".faiss"));
  ann_for(s, {}, &st);
  EXPECT_EQ(st.action, AnnStatus::Loaded);

  // Rows added and removed: brought up to date, not rebuilt.
  const Vectors more = clustered(500, 16, 30, 0.4f, 8, 100000);
  {
    Transaction t(s.db());
    for (int64_t id = 1; id <= 200; ++id) s.remove(id);
    s.bump_generation();
    t.commit();
  }
  fill_store(s, more);
  a = ann_for(s, {}, &st);
  EXPECT_EQ(st.action, AnnStatus::Updated);
  EXPECT_EQ(a.ids(), s.ids({}));
  // The new rows are found: a new vector is its own nearest neighbour (all lists scanned).
  const int64_t new_id = s.max_id();
  const auto e = s.embedding(new_id);
  EXPECT_EQ(a.search(e.data(), 1, a.nlist()).at(0).id, new_id);
  ann_for(s, {}, &st);
  EXPECT_EQ(st.action, AnnStatus::Loaded);

  // Another database's sidecar (the uuid changes on --reindex) is never used.
  Store r = Store::open(db, fake_model("fp2", 16), true, /*reindex=*/true);
  fill_store(r, clustered(100, 16, 5, 0.4f, 9, 500000));
  a = ann_for(r, {}, &st);
  EXPECT_EQ(st.action, AnnStatus::Built);
  EXPECT_EQ(a.size(), 100u);
  EXPECT_EQ(a.ids(), r.ids({}));
}

// ---- search over a store

TEST(Search, ExactAndAnnAgreeAndHonourTheScope) {
  TempDir d("search");
  Store s = Store::open(d / "i.db", fake_model("fp", 16), true);
  const Vectors v = clustered(4000, 16, 40, 0.4f, 10);
  fill_store(s, v);
  for (size_t qi : {3, 1500, 3999}) {
    SearchOptions exact;
    exact.top_k = 10;
    exact.ann_threshold = 0;
    SearchInfo ie, ia;
    const auto re = search(s, v.row(qi), exact, &ie);
    EXPECT_FALSE(ie.ann);
    const auto truth = brute_force(v, v.row(qi), 10);
    ASSERT_EQ(re.size(), 10u);
    for (size_t i = 0; i < 10; ++i) {
      EXPECT_EQ(re[i].id, truth[i].id);
      EXPECT_NEAR(re[i].score, truth[i].score, 1e-5);
      EXPECT_EQ(re[i].path, s.path_of(truth[i].id));
    }
    SearchOptions ann = exact;
    ann.ann_threshold = 1000;
    const auto ra = search(s, v.row(qi), ann, &ia);
    EXPECT_TRUE(ia.ann);
    ASSERT_FALSE(ra.empty());
    EXPECT_EQ(ra[0].id, v.ids[qi]);  // a stored vector finds itself
    EXPECT_NEAR(ra[0].score, 1.0f, 1e-5);

    for (bool use_ann : {false, true}) {
      SearchOptions scoped = use_ann ? ann : exact;
      scoped.scope = {"/lib/g1"};
      const auto rs = search(s, v.row(qi), scoped);
      ASSERT_EQ(rs.size(), 10u);
      for (const auto& r : rs) EXPECT_EQ(r.path.rfind("/lib/g1/", 0), 0u) << r.path;
    }
  }
}

// ---- dedup

TEST(Dedup, GroupsAreTheComponentsOfTheThresholdGraph) {
  TempDir d("dedup");
  Store s = Store::open(d / "i.db", fake_model("fp", 16), true);
  Vectors v = clustered(300, 16, 300, 1.0f, 11);  // spread out
  // Planted near-copies: rows 10 and 11 of 0, 21 of 20, and a chain 30 ~ 31 ~ 32.
  std::mt19937 rng(12);
  std::normal_distribution<float> nd;
  auto near_copy = [&](size_t to, size_t from, float eps) {
    for (size_t k = 0; k < v.dim; ++k) v.data[to * v.dim + k] = v.row(from)[k] + eps * nd(rng);
    normalize(&v.data[to * v.dim], v.dim);
  };
  near_copy(10, 0, 0.02f);
  near_copy(11, 0, 0.02f);
  near_copy(21, 20, 0.02f);
  near_copy(31, 30, 0.2f);
  near_copy(32, 31, 0.2f);
  fill_store(s, v, 1);
  const float thr = 0.97f;
  // Brute force: union-find over all pairs.
  std::vector<size_t> parent(v.rows());
  std::iota(parent.begin(), parent.end(), size_t{0});
  std::function<size_t(size_t)> root = [&](size_t x) { return parent[x] == x ? x : parent[x] = root(parent[x]); };
  for (size_t i = 0; i < v.rows(); ++i)
    for (size_t j = i + 1; j < v.rows(); ++j) {
      double dd = 0;
      for (size_t k = 0; k < v.dim; ++k) dd += static_cast<double>(v.row(i)[k]) * v.row(j)[k];
      if (dd >= thr) parent[root(j)] = root(i);
    }
  std::map<size_t, std::set<std::string>> comps;
  for (size_t i = 0; i < v.rows(); ++i) comps[root(i)].insert(s.path_of(v.ids[i]));
  std::set<std::set<std::string>> want;
  for (auto& [r, c] : comps)
    if (c.size() > 1) want.insert(c);
  ASSERT_GE(want.size(), 2u);

  for (size_t ann_threshold : {size_t{0}, size_t{100}}) {
    DedupOptions o;
    o.threshold = thr;
    o.ann_threshold = ann_threshold;
    o.nprobe = 1000;  // all lists: the ANN path must then find exactly the same pairs
    std::set<std::set<std::string>> got;
    for (const auto& g : find_duplicates(s, {}, o)) {
      std::set<std::string> paths;
      for (const auto& m : g) paths.insert(m.path);
      got.insert(paths);
      EXPECT_NEAR(g.front().score, 1.0f, 1e-5);
      for (size_t i = 1; i < g.size(); ++i) EXPECT_GE(g[i - 1].score, g[i].score - 1e-6);
    }
    EXPECT_EQ(got, want) << "ann_threshold " << ann_threshold;
  }
}
