#include "index/embeddings.h"

#include <sqlite3.h>

#include <faiss/IVFlib.h>
#include <faiss/Index.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_io.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "index/npy.h"
#include "index/sqlite.h"
#include "zeroshot/error.h"

namespace zeroshot::index {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPlanFile = "zeroshot-inference.json";
constexpr const char* kIndexFile = "index.faiss";
constexpr const char* kReindex = ": run zeroshot index-embeddings again";

// The partition number of "img_emb_{i}.npy" (zero-padded), or -1 when the name is not one.
int64_t partition_number(const std::string& name) {
  const std::string prefix = "img_emb_", suffix = ".npy";
  if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return -1;
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() > 15 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return -1;
  return std::stoll(digits);
}

}  // namespace

EmbeddingsPlan read_embeddings_plan(const std::string& out) {
  EmbeddingsPlan p;
  const std::string path = (fs::path(out) / kPlanFile).string();
  std::ifstream f(path);
  if (!f) return p;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path, std::string("not valid JSON (") + e.what() + ")");
  }
  const auto text = [&](const char* key) {
    const auto it = j.is_object() ? j.find(key) : j.end();
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  p.model = text("model");
  p.fingerprint = text("model_fingerprint");
  p.precision = text("precision");
  if (p.model.empty() || p.fingerprint.empty()) throw Error(path, "names no model and model_fingerprint");
  return p;
}

std::string embeddings_metadata_path(const std::string& index_path) {
  const std::string ext = ".faiss";
  const bool has =
      index_path.size() > ext.size() && index_path.compare(index_path.size() - ext.size(), ext.size(), ext) == 0;
  return (has ? index_path.substr(0, index_path.size() - ext.size()) : index_path) + ".metadata.sqlite";
}

std::vector<std::string> embedding_partitions(const std::string& out) {
  std::error_code ec;
  if (!fs::is_directory(out, ec)) throw Error(out, "no such folder");
  const fs::path dir = fs::path(out) / "img_emb";
  std::vector<std::pair<int64_t, std::string>> found;
  if (fs::is_directory(dir, ec))
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const int64_t n = partition_number(e.path().filename().string());
      if (n >= 0) found.emplace_back(n, e.path().string());
    }
  if (found.empty()) throw Error(out, "no img_emb/img_emb_*.npy partitions (not an embedding output folder)");
  std::sort(found.begin(), found.end());
  std::vector<std::string> files;
  files.reserve(found.size());
  for (auto& f : found) files.push_back(std::move(f.second));
  return files;
}

struct EmbeddingsIndex::Impl {
  std::string out, index_path, meta_path, index_type;
  EmbeddingsPlan plan;
  std::unique_ptr<faiss::Index> index;
  faiss::IndexIVF* ivf = nullptr;  // inside `index` when it is an IVF index
  Db db;
  std::mutex mu;
};

EmbeddingsIndex::EmbeddingsIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EmbeddingsIndex::EmbeddingsIndex(EmbeddingsIndex&&) noexcept = default;
EmbeddingsIndex& EmbeddingsIndex::operator=(EmbeddingsIndex&&) noexcept = default;
EmbeddingsIndex::~EmbeddingsIndex() = default;

EmbeddingsIndex EmbeddingsIndex::open(const std::string& out, const std::string& index_path) {
  auto m = std::make_unique<Impl>();
  m->out = out;
  const std::vector<std::string> files = embedding_partitions(out);
  m->plan = read_embeddings_plan(out);
  m->index_path = index_path.empty() ? (fs::path(out) / kIndexFile).string() : index_path;
  m->meta_path = embeddings_metadata_path(m->index_path);
  std::error_code ec;
  if (!fs::is_regular_file(m->index_path, ec))
    throw Error(m->index_path, "no index: build it with zeroshot index-embeddings " + out);
  if (!fs::is_regular_file(m->meta_path, ec))
    throw Error(m->meta_path, std::string("no metadata store beside the index") + kReindex);

  // The partitions as they are now, against those the index was built from.
  m->db = Db(m->meta_path, SQLITE_OPEN_READONLY);
  std::vector<std::pair<std::string, int64_t>> built;
  int64_t meta_rows = 0;
  try {
    Stmt parts(m->db, "SELECT file, rows FROM partitions ORDER BY number");
    while (parts.step()) built.emplace_back(parts.text(0), parts.int64(1));
    Stmt count(m->db, "SELECT count(*) FROM rows");
    if (count.step()) meta_rows = count.int64(0);
    Stmt type(m->db, "SELECT value FROM info WHERE key = 'index_type'");
    if (type.step()) m->index_type = type.text(0);
  } catch (const Error& e) {
    throw Error(m->meta_path, std::string("not a metadata store of zeroshot index-embeddings") + kReindex);
  }
  int64_t rows = 0;
  uint64_t dim = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    const NpyHeader h = read_npy_header(files[i]);
    if (dim && h.cols != dim)
      throw Error(files[i],
                  "rows of dimension " + std::to_string(h.cols) + ", the other partitions' are " + std::to_string(dim));
    dim = h.cols;
    const std::string name = fs::path(files[i]).filename().string();
    if (i >= built.size())
      throw Error(files[i], "not in the index (built from " + std::to_string(built.size()) + " partitions)" + kReindex);
    if (built[i].first != name)
      throw Error(files[i], "the index was built from " + built[i].first + " in its place" + kReindex);
    if (static_cast<int64_t>(h.rows) != built[i].second)
      throw Error(files[i], std::to_string(h.rows) + " rows, " + std::to_string(built[i].second) +
                                " when the index was built" + kReindex);
    rows += static_cast<int64_t>(h.rows);
  }
  if (built.size() > files.size())
    throw Error((fs::path(out) / "img_emb" / built[files.size()].first).string(),
                std::string("in the index but missing") + kReindex);
  if (meta_rows != rows)
    throw Error(m->meta_path,
                std::to_string(meta_rows) + " metadata rows, the partitions hold " + std::to_string(rows) + kReindex);

  try {
    m->index.reset(faiss::read_index(m->index_path.c_str()));
  } catch (const faiss::FaissException& e) {
    const std::string what = e.what();
    throw Error(m->index_path, "not a FAISS index (" + what.substr(0, what.find('\n')) + ")");
  }
  if (m->index->metric_type != faiss::METRIC_INNER_PRODUCT)
    throw Error(m->index_path, "not an inner-product index (cosine over unit rows)");
  if (m->index->ntotal != rows)
    throw Error(m->index_path,
                std::to_string(m->index->ntotal) + " vectors, the partitions hold " + std::to_string(rows) + kReindex);
  if (static_cast<uint64_t>(m->index->d) != dim)
    throw Error(m->index_path, "vectors of dimension " + std::to_string(m->index->d) + ", the partitions' are " +
                                   std::to_string(dim) + kReindex);
  m->ivf = faiss::ivflib::try_extract_index_ivf(m->index.get());
  return EmbeddingsIndex(std::move(m));
}

void EmbeddingsIndex::check_model(const Model& model) const {
  if (!impl_->plan.fingerprint.empty() && model.fingerprint() != impl_->plan.fingerprint)
    throw Error(impl_->out, "was embedded with another model (" + impl_->plan.model + ") than " + model.name());
  if (model.embedding_dim() != dim())
    throw Error(impl_->out, "embeddings of dimension " + std::to_string(dim()) + ", " + model.name() + " embeds " +
                                std::to_string(model.embedding_dim()));
}

std::vector<EmbeddingHit> EmbeddingsIndex::search(const float* q, size_t k, size_t nprobe) const {
  Impl& m = *impl_;
  k = std::min<size_t>(k, static_cast<size_t>(m.index->ntotal));
  std::vector<EmbeddingHit> hits;
  if (k == 0) return hits;
  std::vector<float> scores(k);
  std::vector<faiss::Index::idx_t> ids(k);
  std::lock_guard<std::mutex> lock(m.mu);
  if (m.ivf) m.ivf->nprobe = nprobe ? std::min(nprobe, m.ivf->nlist) : std::max<size_t>(1, m.ivf->nlist / 16);
  m.index->search(1, q, static_cast<faiss::Index::idx_t>(k), scores.data(), ids.data());
  Stmt row(m.db, "SELECT image_path, caption FROM rows WHERE id = ?");
  for (size_t i = 0; i < k; ++i) {
    if (ids[i] < 0) continue;  // an IVF search may find fewer than k in the lists it scans
    row.bind(1, static_cast<int64_t>(ids[i]));
    EmbeddingHit h;
    h.id = ids[i];
    h.score = scores[i];
    if (!row.step()) throw Error(m.meta_path, "no metadata row " + std::to_string(ids[i]) + kReindex);
    h.path = row.is_null(0) ? "" : row.text(0);
    h.caption = row.is_null(1) ? "" : row.text(1);
    row.reset();
    hits.push_back(std::move(h));
  }
  return hits;
}

const std::string& EmbeddingsIndex::folder() const { return impl_->out; }
const EmbeddingsPlan& EmbeddingsIndex::plan() const { return impl_->plan; }
size_t EmbeddingsIndex::size() const { return static_cast<size_t>(impl_->index->ntotal); }
size_t EmbeddingsIndex::dim() const { return static_cast<size_t>(impl_->index->d); }
const std::string& EmbeddingsIndex::index_type() const { return impl_->index_type; }

}  // namespace zeroshot::index
