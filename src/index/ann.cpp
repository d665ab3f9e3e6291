#include "index/ann.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <faiss/invlists/OnDiskInvertedLists.h>
#include <omp.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "util/mapped_file.h"
#include "zeroshot/error.h"

namespace zeroshot::index {

namespace fs = std::filesystem;
using idx_t = faiss::Index::idx_t;

namespace {

constexpr char kMagic[8] = {'Z', 'S', 'A', 'N', 'N', 0, 0, 2};

// Fixed little-endian layout, written field by field.
struct Header {
  char magic[8];
  char uuid[32];
  int64_t generation;
  int64_t max_id;
  uint64_t trained_n;
  uint64_t dim;
  uint64_t payload_size;
  uint64_t prefix_size;  // bytes of the payload before the lists' codes and ids
  uint32_t crc;          // of the whole payload
  uint32_t prefix_crc;   // of the prefix alone (checked when the lists are memory-mapped)
};
static_assert(sizeof(Header) == 8 + 32 + 6 * 8 + 8, "no padding in the header");

uint32_t crc32_of(uint32_t crc, const void* p, size_t n) {
  const auto* b = static_cast<const Bytef*>(p);
  while (n > 0) {  // crc32_z takes z_size_t, but stay in uInt-sized steps for old zlibs
    const size_t step = std::min<size_t>(n, 1u << 30);
    crc = static_cast<uint32_t>(::crc32(crc, b, static_cast<uInt>(step)));
    b += step;
    n -= step;
  }
  return crc;
}

struct CrcFileWriter : faiss::IOWriter {
  FILE* f;
  uint32_t crc = static_cast<uint32_t>(::crc32(0, nullptr, 0));
  uint64_t bytes = 0;
  explicit CrcFileWriter(FILE* file) : f(file) {}
  size_t operator()(const void* ptr, size_t size, size_t nitems) override {
    if (size == 0 || nitems == 0) return nitems;  // FAISS writes empty arrays with a null pointer
    const size_t n = std::fwrite(ptr, size, nitems, f);
    crc = crc32_of(crc, ptr, n * size);
    bytes += n * size;
    return n;
  }
};

struct MemoryReader : faiss::IOReader {
  const uint8_t* p;
  size_t n, pos = 0;
  MemoryReader(const uint8_t* data, size_t size) : p(data), n(size) {}
  size_t operator()(void* ptr, size_t size, size_t nitems) override {
    if (size == 0 || nitems == 0) return nitems;
    const size_t items = std::min(nitems, (n - pos) / size);
    if (items) std::memcpy(ptr, p + pos, items * size);
    pos += items * size;
    return items;
  }
};

struct SortedIdSelector : faiss::IDSelector {
  const std::vector<int64_t>* ids;
  explicit SortedIdSelector(const std::vector<int64_t>* v) : ids(v) {}
  bool is_member(idx_t id) const override { return std::binary_search(ids->begin(), ids->end(), id); }
};

// FAISS's k-means and adds alternate OpenMP loops with OpenBLAS calls: two thread pools that spin while the other
// works. With OpenMP at one thread the BLAS calls still use every core and builds run 2x faster (docs/benchmarks.md).
struct SerialOpenMp {
  int saved = omp_get_max_threads();
  SerialOpenMp() { omp_set_num_threads(1); }
  ~SerialOpenMp() { omp_set_num_threads(saved); }
};

}  // namespace

size_t default_nlist(size_t n) {
  if (n == 0) return 1;
  return std::clamp<size_t>(static_cast<size_t>(std::lround(std::sqrt(static_cast<double>(n)))), 1, 65536);
}

size_t default_nprobe(size_t nlist) { return std::min(nlist, std::max<size_t>(32, nlist / 16)); }

AnnIndex::AnnIndex() = default;
AnnIndex::~AnnIndex() = default;
AnnIndex::AnnIndex(AnnIndex&&) noexcept = default;
AnnIndex& AnnIndex::operator=(AnnIndex&&) noexcept = default;

size_t AnnIndex::size() const { return index_ ? static_cast<size_t>(index_->ntotal) : 0; }
size_t AnnIndex::dim() const { return index_ ? static_cast<size_t>(index_->d) : 0; }
size_t AnnIndex::nlist() const { return index_ ? index_->nlist : 0; }

AnnIndex AnnIndex::build(const Vectors& v, size_t nlist) {
  if (v.rows() == 0 || v.dim == 0) throw Error("ann index", "nothing to index");
  if (nlist == 0) nlist = default_nlist(v.rows());
  nlist = std::min(nlist, v.rows());
  const int d = static_cast<int>(v.dim);
  auto ivf =
      std::make_unique<faiss::IndexIVFFlat>(new faiss::IndexFlatIP(d), v.dim, nlist, faiss::METRIC_INNER_PRODUCT);
  ivf->own_fields = true;
  ivf->cp.spherical = true;              // centroids on the unit sphere, like the vectors
  ivf->cp.min_points_per_centroid = 1;   // small indexes: no "please provide more points" warning on stderr
  ivf->cp.max_points_per_centroid = 64;  // k-means on a sample of 64 per list: seconds at 1M vectors
  ivf->cp.seed = 1234;
  ivf->verbose = false;
  SerialOpenMp serial;
  ivf->train(static_cast<idx_t>(v.rows()), v.data.data());
  ivf->add_with_ids(static_cast<idx_t>(v.rows()), v.data.data(), v.ids.data());
  AnnIndex a;
  a.index_ = std::move(ivf);
  a.stamp.trained_n = v.rows();
  a.stamp.max_id = v.ids.empty() ? 0 : v.ids.back();
  return a;
}

void AnnIndex::add(const Vectors& v) {
  if (!index_) throw Error("ann index", "not built");
  if (v.rows() == 0) return;
  if (v.dim != dim()) throw Error("ann index", "dimension mismatch");
  if (mapped_) throw Error("ann index", "memory-mapped, read-only");
  SerialOpenMp serial;
  index_->add_with_ids(static_cast<idx_t>(v.rows()), v.data.data(), v.ids.data());
  stamp.max_id = std::max(stamp.max_id, v.ids.back());
}

size_t AnnIndex::remove(const std::vector<int64_t>& ids) {
  if (!index_ || ids.empty()) return 0;
  if (mapped_) throw Error("ann index", "memory-mapped, read-only");
  faiss::IDSelectorBatch sel(ids.size(), ids.data());
  return index_->remove_ids(sel);
}

std::vector<int64_t> AnnIndex::ids() const {
  std::vector<int64_t> out;
  if (!index_) return out;
  out.reserve(size());
  const faiss::InvertedLists* il = index_->invlists;
  for (size_t l = 0; l < il->nlist; ++l) {
    const size_t n = il->list_size(l);
    if (n == 0) continue;
    faiss::InvertedLists::ScopedIds ids(il, l);
    out.insert(out.end(), ids.get(), ids.get() + n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<Hit> AnnIndex::search(const float* q, size_t k, size_t nprobe, const std::vector<int64_t>* allowed) const {
  std::vector<Hit> out;
  if (!index_ || k == 0 || index_->ntotal == 0) return out;
  std::vector<float> dist(k);
  std::vector<idx_t> lab(k);
  faiss::SearchParametersIVF p;
  p.nprobe = std::min(nprobe ? nprobe : default_nprobe(nlist()), nlist());
  SortedIdSelector sel(allowed);
  if (allowed) p.sel = &sel;
  index_->search(1, q, static_cast<idx_t>(k), dist.data(), lab.data(), &p);
  for (size_t i = 0; i < k; ++i)
    if (lab[i] >= 0) out.push_back({lab[i], dist[i]});
  return out;
}

std::vector<AnnIndex::Match> AnnIndex::range(const float* qs, size_t n, float radius, size_t nprobe) const {
  std::vector<Match> out;
  if (!index_ || n == 0) return out;
  faiss::SearchParametersIVF p;
  p.nprobe = std::min(nprobe ? nprobe : default_nprobe(nlist()), nlist());
  faiss::RangeSearchResult res(static_cast<idx_t>(n));
  // FAISS keeps inner products strictly above the radius: ask a hair lower, then apply ">=" here.
  index_->range_search(static_cast<idx_t>(n), qs, std::nextafter(radius, -2.0f), &res, &p);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = res.lims[i]; j < res.lims[i + 1]; ++j)
      if (res.distances[j] >= radius) out.push_back({i, res.labels[j], res.distances[j]});
  return out;
}

namespace {

// The payload's "prefix": everything FAISS writes before the inverted lists' codes and ids, which come last in an
// IVF-Flat serialization (ntotal * (code_size + 8) bytes). It holds every size and count the reader trusts.
uint64_t prefix_size(const faiss::IndexIVF& ivf, uint64_t payload) {
  const uint64_t data = static_cast<uint64_t>(ivf.ntotal) * (ivf.code_size + sizeof(idx_t));
  return data <= payload ? payload - data : payload;
}

bool read_header(const std::string& path, Header* h, uint64_t* file_size, std::string* why) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    *why = "no ANN index yet";
    return false;
  }
  *file_size = fs::file_size(path, ec);
  FILE* f = ec ? nullptr : std::fopen(path.c_str(), "rb");
  if (!f) {
    *why = path + " cannot be read";
    return false;
  }
  const bool ok = std::fread(h, sizeof *h, 1, f) == 1;
  std::fclose(f);
  if (!ok) {
    *why = path + " is truncated";
    return false;
  }
  if (std::memcmp(h->magic, kMagic, sizeof kMagic) != 0) {
    *why = path + " is not a zeroshot ANN index (of this version)";
    return false;
  }
  if (h->payload_size != *file_size - sizeof *h || h->prefix_size > h->payload_size) {
    *why = path + " is truncated or has trailing bytes";
    return false;
  }
  return true;
}

}  // namespace

void AnnIndex::save(const std::string& path) const {
  if (!index_) throw Error(path, "no ANN index to save");
  if (mapped_) throw Error(path, "a memory-mapped ANN index is saved already");
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "w+b");
  if (!f) throw Error(tmp, std::string("cannot write the ANN index: ") + std::strerror(errno));
  bool ok = true;
  try {
    Header h{};
    ok = std::fwrite(&h, sizeof h, 1, f) == 1;
    CrcFileWriter w(f);
    faiss::write_index(index_.get(), &w);
    std::memcpy(h.magic, kMagic, sizeof kMagic);
    std::memset(h.uuid, 0, sizeof h.uuid);
    std::memcpy(h.uuid, stamp.uuid.data(), std::min(stamp.uuid.size(), sizeof h.uuid));
    h.generation = stamp.generation;
    h.max_id = stamp.max_id;
    h.trained_n = stamp.trained_n;
    h.dim = dim();
    h.payload_size = w.bytes;
    h.crc = w.crc;
    h.prefix_size = prefix_size(*index_, w.bytes);
    // The prefix's own CRC, read back from the file (it is small: the centroids and the list sizes).
    std::vector<uint8_t> prefix(h.prefix_size);
    ok = ok && std::fflush(f) == 0 && std::fseek(f, sizeof h, SEEK_SET) == 0 &&
         std::fread(prefix.data(), 1, prefix.size(), f) == prefix.size();
    h.prefix_crc = crc32_of(static_cast<uint32_t>(::crc32(0, nullptr, 0)), prefix.data(), prefix.size());
    ok = ok && !std::ferror(f) && std::fseek(f, 0, SEEK_SET) == 0 && std::fwrite(&h, sizeof h, 1, f) == 1;
    ok = ok && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  } catch (const std::exception&) {
    ok = false;
  }
  ok = std::fclose(f) == 0 && ok;
  std::error_code ec;
  if (!ok) {
    fs::remove(tmp, ec);
    throw Error(tmp, "cannot write the ANN index (disk full or read-only?)");
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(path, "cannot replace the ANN index: " + ec.message());
  }
}

AnnIndex AnnIndex::load(const std::string& path, std::string* why, bool mapped) {
  AnnIndex a;
  Header h{};
  uint64_t file_size = 0;
  if (!read_header(path, &h, &file_size, why)) return a;
  try {
    std::unique_ptr<faiss::Index> idx;
    if (mapped) {
      // Only the prefix is checked and parsed; FAISS maps the lists (codes and ids: data, no sizes) in place.
      FILE* f = std::fopen(path.c_str(), "rb");
      if (!f) {
        *why = path + " cannot be read";
        return a;
      }
      std::vector<uint8_t> prefix(h.prefix_size);
      const uint32_t crc0 = static_cast<uint32_t>(::crc32(0, nullptr, 0));
      const bool ok =
          std::fseek(f, sizeof h, SEEK_SET) == 0 && std::fread(prefix.data(), 1, prefix.size(), f) == prefix.size() &&
          crc32_of(crc0, prefix.data(), prefix.size()) == h.prefix_crc && std::fseek(f, sizeof h, SEEK_SET) == 0;
      if (!ok) {
        std::fclose(f);
        *why = path + " is damaged (checksum mismatch)";
        return a;
      }
      try {
        faiss::FileIOReader r(f);
        r.name = path;
        idx.reset(faiss::read_index(&r, faiss::IO_FLAG_MMAP));
      } catch (...) {
        std::fclose(f);
        throw;
      }
      std::fclose(f);
    } else {
      util::MappedFile m(path);
      if (m.size() != file_size) {
        *why = path + " changed while being read";
        return a;
      }
      const uint32_t crc = crc32_of(static_cast<uint32_t>(::crc32(0, nullptr, 0)), m.data() + sizeof h, h.payload_size);
      if (crc != h.crc) {
        *why = path + " is damaged (checksum mismatch)";
        return a;
      }
      MemoryReader r(m.data() + sizeof h, h.payload_size);
      idx.reset(faiss::read_index(&r));
    }
    auto* ivf = dynamic_cast<faiss::IndexIVFFlat*>(idx.get());
    if (!ivf || ivf->metric_type != faiss::METRIC_INNER_PRODUCT || static_cast<uint64_t>(ivf->d) != h.dim) {
      *why = path + " holds another kind of FAISS index";
      return a;
    }
    if (auto* od = dynamic_cast<faiss::OnDiskInvertedLists*>(ivf->invlists)) {
      // FAISS would start up to 32 threads per search to touch the probed lists ahead of the scan: pointless for a
      // file in the page cache, and threads that outlive the search.
      od->prefetch_nthread = 0;
    }
    a.index_.reset(ivf);
    (void)idx.release();  // a.index_ owns it now (the same object, as its IVF type)
    a.mapped_ = mapped;
    a.stamp.uuid.assign(h.uuid, strnlen(h.uuid, sizeof h.uuid));
    a.stamp.generation = h.generation;
    a.stamp.max_id = h.max_id;
    a.stamp.trained_n = h.trained_n;
  } catch (const std::exception& e) {
    *why = path + " cannot be read (" + e.what() + ")";
    return AnnIndex();
  }
  return a;
}

std::string ann_path(const Store& store) { return store.path() + ".faiss"; }

AnnIndex ann_for(const Store& store, const AnnOptions& opt, AnnStatus* status) {
  const auto t0 = std::chrono::steady_clock::now();
  AnnStatus st;
  const std::string path = ann_path(store);
  std::string why;
  // One snapshot of the database for everything below.
  Transaction t(store.db(), false);
  const std::string uuid = store.uuid();
  const int64_t gen = store.generation();
  // In step: memory-map its lists (no copy). Lagging: read it whole, to update it.
  AnnIndex a = AnnIndex::load(path, &why, /*mapped=*/true);
  if (!a.empty() && a.stamp.uuid == uuid && a.stamp.generation != gen) a = AnnIndex::load(path, &why, false);
  bool changed = false;
  if (!a.empty() && (a.stamp.uuid != uuid || a.dim() != store.model().dim)) {
    why = path + " belongs to another database or model";
    a = AnnIndex();
  }
  if (!a.empty() && a.stamp.generation != gen) {
    // Rows added since: ids past its newest. Rows removed: ids it holds that the database no longer has.
    const std::vector<int64_t> db_ids = store.ids({});
    const std::vector<int64_t> have = a.ids();
    std::vector<int64_t> gone;
    std::set_difference(have.begin(), have.end(), db_ids.begin(), db_ids.end(), std::back_inserter(gone));
    const size_t after =
        static_cast<size_t>(db_ids.end() - std::upper_bound(db_ids.begin(), db_ids.end(), a.stamp.max_id));
    if (db_ids.size() > 4 * std::max<uint64_t>(a.stamp.trained_n, 1) || gone.size() * 2 > have.size() ||
        db_ids.empty()) {
      why = "the rows changed too much since the ANN index was trained";
      a = AnnIndex();
    } else {
      a.remove(gone);
      if (after) a.add(store.vectors_after(a.stamp.max_id));
      a.stamp.generation = gen;
      st.action = AnnStatus::Updated;
      changed = true;
    }
  }
  if (a.empty()) {
    const Vectors all = store.vectors({});
    t.commit();
    if (all.rows() == 0) throw Error(store.path(), "the index is empty");
    a = AnnIndex::build(all, opt.nlist);
    a.stamp.uuid = uuid;
    a.stamp.generation = gen;
    st.action = AnnStatus::Built;
    st.note = why;
    changed = true;
  } else {
    t.commit();
  }
  if (changed && opt.save) {
    try {
      a.save(path);
    } catch (const Error& e) {
      st.note = std::string("not saved: ") + e.what();
    }
  }
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (status) *status = st;
  return a;
}

}  // namespace zeroshot::index
