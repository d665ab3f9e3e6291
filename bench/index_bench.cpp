// Search benchmark on synthetic embeddings: exact (sgemv + top-k) vs the FAISS IVF index, latency and recall@10.
//
//   build/bench/index_bench [--sizes 1000,100000,1000000] [--dim 512] [--queries 200] [--nprobe 8,16,32,64]
//                           [--data clustered|uniform] [--db-dir DIR]
//
// Vectors: normalized, dim 512 (ViT-B/32's), drawn around 1000 random centers with noise 0.7x the center's scale
// (within-cluster cosine ~0.67: clumped like photo embeddings); "uniform" draws them uniformly on the sphere
// (no structure: the worst case for any ANN index). Queries are fresh draws from the same distribution.
// With --db-dir, also the costs a one-shot `zeroshot search` pays: loading the rows from SQLite, building and
// saving the ANN index beside the database, loading it back, and a whole search() call.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "index/ann.h"
#include "index/exact.h"
#include "index/search.h"
#include "index/store.h"

using namespace zeroshot::index;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

std::vector<size_t> parse_list(const std::string& s) {
  std::vector<size_t> v;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) v.push_back(std::stoul(item));
  return v;
}

struct Generator {
  size_t dim;
  bool uniform;
  std::mt19937_64 rng{42};
  std::normal_distribution<float> nd;
  std::vector<float> centers;
  size_t clusters;
  float spread;
  Generator(size_t d, bool u, size_t c, float s) : dim(d), uniform(u), clusters(c), spread(s) {
    centers.resize(clusters * dim);
    for (auto& x : centers) x = nd(rng);
  }
  void draw(float* out) {
    const float* c = centers.data() + (rng() % clusters) * dim;
    double n = 0;
    for (size_t k = 0; k < dim; ++k) {
      out[k] = uniform ? nd(rng) : c[k] + spread * nd(rng);
      n += static_cast<double>(out[k]) * out[k];
    }
    const float inv = static_cast<float>(1.0 / std::sqrt(n));
    for (size_t k = 0; k < dim; ++k) out[k] *= inv;
  }
};

struct Stats {
  double mean = 0, p50 = 0, p95 = 0;
};
Stats stats(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  s.p50 = v[v.size() / 2];
  s.p95 = v[std::min(v.size() - 1, v.size() * 95 / 100)];
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress visible when redirected
  std::vector<size_t> sizes = {1000, 100000, 1000000}, nprobes = {8, 16, 32, 64};
  size_t dim = 512, queries = 200, clusters = 1000;
  float spread = 1.0f;
  bool uniform = false;
  std::string db_dir;
  bool in_memory = true;  // --in-memory no: only the --db-dir part
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--sizes") sizes = parse_list(v);
    else if (k == "--dim") dim = std::stoul(v);
    else if (k == "--queries") queries = std::stoul(v);
    else if (k == "--nprobe") nprobes = parse_list(v);
    else if (k == "--data") uniform = v == "uniform";
    else if (k == "--db-dir") db_dir = v;
    else if (k == "--clusters") clusters = std::stoul(v);
    else if (k == "--spread") spread = std::stof(v);
    else if (k == "--in-memory") in_memory = v != "no";
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (uniform) std::printf("data: uniform on the sphere, dim %zu, %zu queries per size\n", dim, queries);
  else
    std::printf("data: %zu clusters, noise %.2f x the center scale, dim %zu, %zu queries per size\n", clusters, spread,
                dim, queries);
  for (size_t n : sizes) {
    Generator gen(dim, uniform, clusters, spread);
    Vectors v;
    v.dim = dim;
    v.data.resize(n * dim);
    for (size_t i = 0; i < n; ++i) {
      gen.draw(&v.data[i * dim]);
      v.ids.push_back(static_cast<int64_t>(i + 1));
    }
    std::vector<float> qs(queries * dim);
    for (size_t i = 0; i < queries; ++i) gen.draw(&qs[i * dim]);

    std::printf("\nn = %zu\n", n);
    if (in_memory) {
      // Exact.
      std::vector<std::vector<Hit>> truth(queries);
      std::vector<double> t_exact;
      exact_top_k(v, qs.data(), 10);  // warm-up (BLAS threads, page faults)
      for (size_t i = 0; i < queries; ++i) {
        const auto t = Clock::now();
        truth[i] = exact_top_k(v, &qs[i * dim], 10);
        t_exact.push_back(ms_since(t));
      }
      const Stats se = stats(t_exact);
      std::printf("  exact      mean %8.3f ms  p50 %8.3f  p95 %8.3f\n", se.mean, se.p50, se.p95);

      // ANN.
      const auto tb = Clock::now();
      const AnnIndex a = AnnIndex::build(v);
      const double build_ms = ms_since(tb);
      std::printf("  ann build  %.0f ms (IVF-Flat, nlist %zu)\n", build_ms, a.nlist());
      for (size_t np : nprobes) {
        if (np > a.nlist()) continue;
        std::vector<double> t_ann;
        double rec = 0;
        a.search(qs.data(), 10, np);
        for (size_t i = 0; i < queries; ++i) {
          const auto t = Clock::now();
          const auto got = a.search(&qs[i * dim], 10, np);
          t_ann.push_back(ms_since(t));
          size_t hit = 0;
          for (const auto& h : truth[i])
            for (const auto& g : got) hit += g.id == h.id;
          rec += static_cast<double>(hit) / static_cast<double>(truth[i].size());
        }
        const Stats sa = stats(t_ann);
        std::printf("  ann np %-3zu mean %8.3f ms  p50 %8.3f  p95 %8.3f  recall@10 %.3f%s\n", np, sa.mean, sa.p50,
                    sa.p95, rec / static_cast<double>(queries),
                    np == default_nprobe(a.nlist()) ? "  (default nprobe)" : "");
      }
    }

    if (!db_dir.empty()) {
      namespace fs = std::filesystem;
      const std::string db = (fs::path(db_dir) / ("bench_" + std::to_string(n) + ".db")).string();
      fs::remove(db);
      fs::remove(db + "-wal");
      fs::remove(db + "-shm");
      fs::remove(db + ".faiss");
      std::optional<Store> made(Store::open(db, {"bench", "synthetic", dim}, true));
      auto t = Clock::now();
      {
        Transaction tx(made->db());
        std::string hash(32, '\0');
        for (size_t i = 0; i < n; ++i) {
          std::memcpy(hash.data(), &i, sizeof i);
          const std::string path = "/photos/" + std::to_string(i / 1000) + "/" + std::to_string(i) + ".jpg";
          made->insert(path, 1, 1, hash, v.row(i));
        }
        made->bump_generation();
        tx.commit();
      }
      std::printf("  sqlite     insert %.0f ms", ms_since(t));
      made.reset();
      t = Clock::now();
      Store s = Store::open(db, {"bench", "synthetic", dim}, false);
      std::printf(", open (with its checks) %.0f ms", ms_since(t));
      t = Clock::now();
      const Vectors loaded = s.vectors({});
      std::printf(", load all rows %.0f ms", ms_since(t));
      AnnStatus st;
      ann_for(s, {}, &st);
      std::printf(", ANN build+save %.0f ms", st.seconds * 1e3);
      ann_for(s, {}, &st);
      std::printf(", ANN open (memory-mapped) %.0f ms (%s)", st.seconds * 1e3,
                  st.action == AnnStatus::Loaded ? "in step" : "rebuilt?");
      t = Clock::now();
      std::string why;
      AnnIndex::load(ann_path(s), &why, /*mapped=*/false);
      std::printf(", ANN read whole %.0f ms\n", ms_since(t));
      for (size_t threshold : {size_t{0}, size_t{1}}) {
        for (const Scope& scope : {Scope{}, Scope{"/photos"}, Scope{"/photos/1"}}) {
          SearchOptions o;
          o.ann_threshold = threshold;
          o.scope = scope;
          SearchInfo info;
          t = Clock::now();
          search(s, qs.data(), o, &info);
          std::printf("  search()   one call, %s, scope %s (%zu rows): %.0f ms (load + search + paths)\n",
                      info.ann ? "ANN index from disk" : "exact over rows from SQLite",
                      scope.empty() ? "all" : scope[0].c_str(), info.candidates, ms_since(t));
          if (threshold == 0 && n >= 1000000 && scope.empty()) break;  // the 9 s exact loads once is enough
        }
      }
      std::printf("  files      db %.0f MB, ANN %.0f MB\n", static_cast<double>(fs::file_size(db)) / 1e6,
                  static_cast<double>(fs::file_size(db + ".faiss")) / 1e6);
    }
  }
  return 0;
}
