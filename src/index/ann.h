// Approximate nearest neighbours for large indexes: a FAISS IVF-Flat index over inner product (exact vectors in
// k-means-trained inverted lists; a query scans the `nprobe` lists nearest to it), keyed by the store's row ids.
// IVF rather than HNSW because it supports removal (deleted photos) and builds in seconds at 1M vectors.
//
// Persisted beside the database as "<db>.faiss": a header (magic, the database's uuid and generation, the newest
// row id it holds, its training size, the payload's size and CRC-32s) then FAISS's own serialization. A file that
// is damaged, truncated or made for another database is never parsed: it is rebuilt. An index in step with the
// database is memory-mapped (a search reads only the lists it probes); one that lags is read whole and updated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "index/exact.h"
#include "index/store.h"

namespace faiss {
struct IndexIVF;
}

namespace zeroshot::index {

struct AnnStamp {
  std::string uuid;         // the database's
  int64_t generation = -1;  // the database's generation the index matches
  int64_t max_id = 0;       // the newest row id it holds (rows after it are new)
  uint64_t trained_n = 0;   // rows it was trained on (a rebuild is due when the rows outgrow it 4x)
};

// Lists for n vectors when not given: about sqrt(n) (FAISS's guideline is 4-16 sqrt(n); fewer, larger lists
// train faster on few cores and keep recall high at a small nprobe).
size_t default_nlist(size_t n);
// Lists scanned per query when not given: max(32, nlist / 16), capped at nlist: recall@10 of 0.94-1.0 on the
// clustered synthetic benchmark at 100k and 1M vectors (docs/benchmarks.md; structureless data does far worse).
size_t default_nprobe(size_t nlist);

class AnnIndex {
 public:
  AnnIndex();
  ~AnnIndex();
  AnnIndex(AnnIndex&&) noexcept;
  AnnIndex& operator=(AnnIndex&&) noexcept;

  // Trains on (a sample of) v and adds every row. nlist 0: default_nlist.
  static AnnIndex build(const Vectors& v, size_t nlist = 0);
  void add(const Vectors& v);
  size_t remove(const std::vector<int64_t>& ids);

  // The k best ids for q (normalized), best first. `allowed` (sorted ids) restricts the candidates. May return
  // fewer than k (few vectors in the lists scanned). nprobe 0: default_nprobe.
  std::vector<Hit> search(const float* q, size_t k, size_t nprobe = 0,
                          const std::vector<int64_t>* allowed = nullptr) const;
  // Every stored vector within `radius` (inner product >= radius) of each of the n queries: (query, id, score).
  struct Match {
    size_t query;
    int64_t id;
    float score;
  };
  std::vector<Match> range(const float* qs, size_t n, float radius, size_t nprobe = 0) const;

  bool empty() const { return !index_; }
  size_t size() const;
  size_t dim() const;
  size_t nlist() const;
  std::vector<int64_t> ids() const;  // sorted

  AnnStamp stamp;

  // Atomic: written to a temporary file beside `path`, then renamed over it.
  void save(const std::string& path) const;
  // Empty index (and *why set) when the file is missing, damaged or not ours; never throws for its content.
  // mapped: the inverted lists stay in the file, memory-mapped read-only (FAISS's IO_FLAG_MMAP): loading costs
  // O(nlist), not O(rows); only the prefix (every size FAISS trusts) is checksummed; add/remove are refused.
  // Otherwise the whole payload is checksummed and read into memory.
  static AnnIndex load(const std::string& path, std::string* why, bool mapped = false);
  bool mapped() const { return mapped_; }

 private:
  std::unique_ptr<faiss::IndexIVF> index_;
  bool mapped_ = false;
};

struct AnnOptions {
  size_t nlist = 0;  // for a rebuild; 0: default_nlist
  bool save = true;  // write <db>.faiss back when it changed
};
struct AnnStatus {
  enum Action { Loaded, Updated, Built } action = Loaded;
  std::string note;  // why it was rebuilt, or why it could not be saved
  double seconds = 0;
};

// "<db>.faiss"
std::string ann_path(const Store& store);

// The store's ANN index, in step with it: loaded when its stamp matches the database; brought up to date when it
// lags (rows added since its newest id, rows removed dropped); rebuilt when missing, damaged, made for another
// database or model, or outgrown; saved back when changed.
AnnIndex ann_for(const Store& store, const AnnOptions& opt = {}, AnnStatus* status = nullptr);

}  // namespace zeroshot::index
