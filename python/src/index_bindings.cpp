// zeroshot._zeroshot.Index: the photo index (src/index, the layer `zeroshot index` and `zeroshot search` run on)
// for Python: incremental indexing of folders, and search by text, image or a weighted combination (rclip's
// query syntax or explicit terms). The database is the CLI's: an index made by one is read by the other.
//
// One SQLite connection per Index: calls on one Index are serialized by a mutex (with the GIL released, so other
// Python threads go on); use one Index per thread for parallel searches.
#include <nanobind/nanobind.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <mutex>

#include "index/indexer.h"
#include "index/query.h"
#include "index/search.h"
#include "index/store.h"
#include "zeroshot/zeroshot.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace zeroshot {
namespace {

struct Index {
  Index(const Model& m, index::Store s) : model(m), store(std::move(s)) {}
  const Model& model;
  std::mutex mu;
  index::Store store;
};

index::ModelId id_of(const Model& m) { return {m.name(), m.fingerprint(), m.embedding_dim()}; }

using Term = std::tuple<float, bool, std::string>;  // (signed weight, is an image, text or path)

std::vector<index::QueryTerm> to_terms(const std::vector<Term>& terms) {
  std::vector<index::QueryTerm> out;
  for (const auto& [w, image, value] : terms) out.push_back({w, image, value});
  return out;
}

}  // namespace

void bind_index(nb::module_& m) {
  m.def("default_index_path", &index::default_db_path);
  // The name of the model an index was made with (the database's own record), for opening it without naming one.
  m.def(
      "index_model_name",
      [](const std::string& db) {
        nb::gil_scoped_release unlocked;
        return index::Store::open(db, index::ModelId{}, false).model().name;
      },
      "db"_a);
  m.def(
      "parse_query",
      [](const std::vector<std::string>& words, const std::vector<std::string>& images) {
        std::vector<Term> out;
        for (const auto& t : index::parse_query(words, images)) out.emplace_back(t.weight, t.image, t.value);
        return out;
      },
      "words"_a, "images"_a);

  nb::class_<Index>(m, "Index")
      .def(
          "__init__",
          [](Index* self, const Model& model, const std::string& db, bool create, bool reindex) {
            nb::gil_scoped_release unlocked;
            new (self) Index(model, index::Store::open(db, id_of(model), create, reindex));
          },
          "model"_a, "db"_a, "create"_a, "reindex"_a, nb::keep_alive<1, 2>())
      .def_prop_ro("path", [](Index& x) { return x.store.path(); })
      .def("__len__",
           [](Index& x) {
             nb::gil_scoped_release unlocked;
             std::lock_guard<std::mutex> lock(x.mu);
             return x.store.count();
           })
      .def(
          "update",
          [](Index& x, const std::vector<std::string>& roots, const std::vector<std::string>& excludes, size_t batch) {
            index::IndexReport r;
            {
              nb::gil_scoped_release unlocked;
              std::lock_guard<std::mutex> lock(x.mu);
              index::IndexOptions o;
              o.excludes = excludes;
              o.batch = std::max<size_t>(batch, 1);
              std::vector<std::string> abs;
              for (const auto& p : roots) abs.push_back(index::absolute_path(p));
              r = index::update_index(x.store, abs, index::embed_with(x.model), o);
            }
            nb::dict d;
            d["files"] = r.files;
            d["embedded"] = r.embedded;
            d["unchanged"] = r.unchanged;
            d["touched"] = r.touched;
            d["renamed"] = r.renamed;
            d["copied"] = r.copied;
            d["removed"] = r.removed;
            d["skipped_failed"] = r.skipped_failed;
            d["failures"] = nb::cast(r.failures);
            d["seconds"] = r.seconds;
            return d;
          },
          "roots"_a, "excludes"_a, "batch"_a)
      .def(
          "search",
          [](Index& x, const std::vector<Term>& terms, size_t top_k, const std::vector<std::string>& scope) {
            std::vector<std::pair<std::string, float>> out;
            nb::gil_scoped_release unlocked;
            const std::vector<float> q = index::query_vector(x.model, to_terms(terms));
            index::SearchOptions o;
            o.top_k = top_k;
            for (const auto& d : scope) o.scope.push_back(index::absolute_path(d));
            std::lock_guard<std::mutex> lock(x.mu);
            for (auto& r : index::search(x.store, q.data(), o)) out.emplace_back(std::move(r.path), r.score);
            return out;
          },
          "terms"_a, "top_k"_a, "scope"_a);
}

}  // namespace zeroshot
