// Searching what zeroshot.inference (or clip-retrieval) embedded, without Python: the folder's partitions
// OUT/img_emb/img_emb_{i}.npy, the FAISS index `zeroshot index-embeddings` built over them (default
// OUT/index.faiss; ids = row positions in the partitions taken in order, autofaiss's convention) and, beside it, the
// index's metadata store (OUT/index.metadata.sqlite: the metadata/*.parquet rows in index order, the partitions and
// the model; python/zeroshot/embeddings.py writes it, because Debian 12 has no C++ Parquet reader).
//
//   auto e = zeroshot::index::EmbeddingsIndex::open("out/");
//   e.check_model(model);                   // the query must be embedded by the model that embedded the images
//   for (const auto& h : e.search(q, 10)) ...  // q normalized; best first
//
// open() checks that the three agree, so a search never returns another row's path: every partition is a strict
// float16/float32 (rows, dim) .npy (index/npy.h), the partitions are those the index was built from with the same
// row counts (a partition added or rewritten since: "run zeroshot index-embeddings again"), and the index, the
// metadata store and the partitions hold the same number of rows of the same dimension. Every failure is a
// zeroshot::Error "<file>: <problem>" naming the file. The index file itself is read by FAISS, which trusts it:
// it is the output of index-embeddings, not an input from others.
//
// Thread safety: search() may be called from several threads (one lock around FAISS and SQLite).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "zeroshot/zeroshot.h"

namespace zeroshot::index {

// What made the folder (OUT/zeroshot-inference.json, written by zeroshot.inference); empty fields when it has none
// (clip-retrieval's output: the model must then be named).
struct EmbeddingsPlan {
  std::string model;  // as given to zeroshot.inference: a folder or a hub id
  std::string fingerprint;
  std::string precision;
};
EmbeddingsPlan read_embeddings_plan(const std::string& out);

// OUT/index.faiss -> OUT/index.metadata.sqlite (python: zeroshot.embeddings.metadata_store_path).
std::string embeddings_metadata_path(const std::string& index_path);
// The partitions OUT/img_emb/img_emb_*.npy by their number; Error naming OUT when the folder is missing or has none.
std::vector<std::string> embedding_partitions(const std::string& out);

struct EmbeddingHit {
  int64_t id = 0;  // row in the partitions taken in order
  std::string path;
  std::string caption;  // "" when the metadata has none
  float score = 0;      // inner product = cosine (rows and query are unit vectors)
};

class EmbeddingsIndex {
 public:
  // index_path "": OUT/index.faiss.
  static EmbeddingsIndex open(const std::string& out, const std::string& index_path = "");
  EmbeddingsIndex(EmbeddingsIndex&&) noexcept;
  EmbeddingsIndex& operator=(EmbeddingsIndex&&) noexcept;
  ~EmbeddingsIndex();

  // Error naming the folder when `model` is not the model recorded in OUT (its fingerprint), or its dimension is
  // not the index's.
  void check_model(const Model& model) const;
  // The k best rows for the unit query vector q (dim() floats), best first. nprobe: IVF lists scanned, 0: nlist/16
  // (at least 1), as zeroshot.embeddings.search; ignored by an exact (Flat) index.
  std::vector<EmbeddingHit> search(const float* q, size_t k, size_t nprobe = 0) const;

  const std::string& folder() const;
  const EmbeddingsPlan& plan() const;
  size_t size() const;
  size_t dim() const;
  const std::string& index_type() const;  // FAISS factory string, e.g. "Flat", "IVF1264,Flat"

  struct Impl;

 private:
  explicit EmbeddingsIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zeroshot::index
