#include "index/search.h"

#include <cblas.h>
#include <algorithm>
#include <numeric>
#include <unordered_map>

#include "index/exact.h"
#include "zeroshot/error.h"

namespace zeroshot::index {

std::vector<SearchResult> search(const Store& store, const float* q, const SearchOptions& opt, SearchInfo* info) {
  SearchInfo si;
  std::vector<Hit> hits;
  // The rows in scope: their ids (a range scan of the path index) both count them and restrict the ANN search.
  std::vector<int64_t> allowed;
  if (opt.scope.empty()) {
    si.candidates = store.count();
  } else {
    allowed = store.ids(opt.scope);
    si.candidates = allowed.size();
  }
  bool done = false;
  if (opt.ann_threshold > 0 && si.candidates >= opt.ann_threshold) {
    AnnIndex a = ann_for(store, opt.ann, &si.ann_status);
    const bool everything = opt.scope.empty() || allowed.size() == a.size();
    hits = a.search(q, opt.top_k, opt.nprobe, everything ? nullptr : &allowed);
    si.ann = true;
    done = hits.size() >= std::min(opt.top_k, si.candidates);
  }
  if (!done) {
    Transaction t(store.db(), false);
    const Vectors v = store.vectors(opt.scope);
    t.commit();
    si.candidates = v.rows();
    si.ann = false;
    hits = exact_top_k(v, q, opt.top_k);
  }
  std::vector<SearchResult> out;
  for (const auto& h : hits) {
    std::string p = store.path_of(h.id);
    if (!p.empty()) out.push_back({h.id, std::move(p), h.score});  // a row removed meanwhile is skipped
  }
  if (info) *info = si;
  return out;
}

namespace {

size_t find_root(std::vector<size_t>& parent, size_t x) {
  while (parent[x] != x) x = parent[x] = parent[parent[x]];
  return x;
}

}  // namespace

std::vector<DuplicateGroup> find_duplicates(const Store& store, const Scope& scope, const DedupOptions& opt) {
  Vectors v;
  std::unordered_map<int64_t, const StoredImage*> by_id;
  std::vector<StoredImage> rows;
  {
    Transaction t(store.db(), false);
    v = store.vectors(scope);
    rows = store.images(scope);
    t.commit();
  }
  for (const auto& r : rows) by_id.emplace(r.id, &r);
  const size_t n = v.rows();
  std::vector<size_t> parent(n);
  std::iota(parent.begin(), parent.end(), size_t{0});
  auto link = [&](size_t a, size_t b) {
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);
  };
  if (opt.ann_threshold > 0 && n >= opt.ann_threshold) {
    const AnnIndex a = AnnIndex::build(v);
    // Ids in v are ascending: a binary search maps an id back to its row.
    for (const auto& m : a.range(v.data.data(), n, opt.threshold, opt.nprobe)) {
      const size_t j = static_cast<size_t>(std::lower_bound(v.ids.begin(), v.ids.end(), m.id) - v.ids.begin());
      if (j < n && j != m.query) link(m.query, j);
    }
  } else {
    for (const auto& p : exact_pairs_above(v.data.data(), n, v.dim, opt.threshold)) link(p.a, p.b);
  }
  std::unordered_map<size_t, std::vector<size_t>> comps;
  for (size_t i = 0; i < n; ++i) comps[find_root(parent, i)].push_back(i);
  std::vector<DuplicateGroup> groups;
  for (auto& [root, members] : comps) {
    if (members.size() < 2) continue;
    auto size_of = [&](size_t i) { return by_id.count(v.ids[i]) ? by_id[v.ids[i]]->size : 0; };
    auto path_of = [&](size_t i) { return by_id.count(v.ids[i]) ? by_id[v.ids[i]]->path : std::string(); };
    const size_t first = *std::min_element(members.begin(), members.end(), [&](size_t a, size_t b) {
      return size_of(a) != size_of(b) ? size_of(a) > size_of(b) : path_of(a) < path_of(b);
    });
    DuplicateGroup g;
    for (size_t i : members)
      g.push_back({path_of(i), size_of(i), cblas_sdot(static_cast<int>(v.dim), v.row(i), 1, v.row(first), 1)});
    std::sort(g.begin(), g.end(), [&](const DuplicateMember& a, const DuplicateMember& b) {
      const bool fa = a.path == path_of(first), fb = b.path == path_of(first);
      if (fa != fb) return fa;
      return a.score != b.score ? a.score > b.score : a.path < b.path;
    });
    groups.push_back(std::move(g));
  }
  std::sort(groups.begin(), groups.end(),
            [](const DuplicateGroup& a, const DuplicateGroup& b) { return a.front().path < b.front().path; });
  return groups;
}

}  // namespace zeroshot::index
