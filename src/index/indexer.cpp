#include "index/indexer.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "classify/zero_shot.h"
#include "index/fingerprint.h"
#include "index/scan.h"
#include "util/progress.h"

namespace zeroshot::index {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Candidate {
  const FileStat* file = nullptr;
  const StoredImage* old = nullptr;  // its row, when the path was indexed before (with other content)
  std::string hash;
  std::string error;
};

// Hashes every candidate on `threads` threads; the calling thread draws the progress bar. False when stopped.
bool hash_all(std::vector<Candidate>& cands, const IndexOptions& opt) {
  if (cands.empty()) return true;
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const size_t n_threads = std::min<size_t>(cands.size(), opt.threads ? opt.threads : hw);
  std::atomic<size_t> next{0}, done{0};
  auto work = [&] {
    for (size_t i; (i = next++) < cands.size();) {
      if (opt.stop && opt.stop->load()) break;
      try {
        cands[i].hash = file_sha256(cands[i].file->path);
      } catch (const std::exception& e) {
        cands[i].error = e.what();
      }
      ++done;
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 0; t < n_threads; ++t) pool.emplace_back(work);
  {
    util::ProgressBar bar("hashing", cands.size(), opt.progress, 0, util::ProgressUnit::Items);
    while (done.load() < cands.size() && !(opt.stop && opt.stop->load())) {
      bar.update(done.load());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    bar.update(done.load());
  }
  for (auto& t : pool) t.join();
  return !(opt.stop && opt.stop->load());
}

}  // namespace

EmbedFilesFn embed_with(const Model& model) {
  return [&model](const std::vector<std::string>& paths, size_t batch, const Model::ImageResultFn& on_result) {
    model.embed_image_files(paths, batch, on_result);
  };
}

IndexReport update_index(Store& store, const std::vector<std::string>& roots, const EmbedFilesFn& embed,
                         const IndexOptions& opt) {
  const auto t0 = Clock::now();
  IndexReport rep;
  const ScanResult sc = scan(roots, opt.excludes);
  rep.files = sc.files.size();
  rep.failures = sc.errors;
  rep.other_files = sc.other_files;

  // One snapshot of what the index holds under the roots.
  std::vector<StoredImage> row_list;
  std::vector<FailedFile> failed_list;
  {
    Transaction t(store.db(), false);
    row_list = store.images(sc.roots);
    failed_list = store.failures(sc.roots);
    t.commit();
  }
  std::unordered_map<std::string, const StoredImage*> rows;
  for (const auto& r : row_list) rows.emplace(r.path, &r);
  std::unordered_map<std::string, const FailedFile*> failed;
  for (const auto& f : failed_list) failed.emplace(f.path, &f);

  std::unordered_set<std::string> seen;
  std::vector<Candidate> cands;
  for (const auto& f : sc.files) {
    seen.insert(f.path);
    if (auto it = rows.find(f.path); it != rows.end()) {
      if (it->second->size == f.size && it->second->mtime_ns == f.mtime_ns) ++rep.unchanged;
      else cands.push_back({&f, it->second, {}, {}});
    } else if (auto ft = failed.find(f.path);
               ft != failed.end() && ft->second->size == f.size && ft->second->mtime_ns == f.mtime_ns) {
      ++rep.skipped_failed;
    } else {
      cands.push_back({&f, nullptr, {}, {}});
    }
  }
  if (!hash_all(cands, opt)) {
    rep.interrupted = true;
    rep.seconds = seconds_since(t0);
    return rep;
  }

  // Everything that needs no encoder, in one transaction: touched files, renames, copies, removals, failures.
  std::unordered_set<int64_t> claimed;  // rows of vanished files taken over by a new path
  std::vector<std::pair<std::string, std::vector<const Candidate*>>> to_embed;  // by content
  {
    Transaction t(store.db());
    bool rows_changed = false;
    std::unordered_map<std::string, size_t> embed_slot;
    auto gone = [&](const StoredImage& r) {
      if (in_scope(sc.roots, r.path)) return !seen.count(r.path);
      std::error_code ec;
      return !fs::exists(r.path, ec);
    };
    for (const auto& c : cands) {
      const FileStat& f = *c.file;
      if (!c.error.empty()) {
        if (c.old) store.remove(c.old->id), rows_changed = true;
        store.record_failure(f.path, f.size, f.mtime_ns, c.error);
        rep.failures.emplace_back(f.path, c.error);
        continue;
      }
      if (c.old && c.old->hash == c.hash) {
        store.update_stat(c.old->id, f.size, f.mtime_ns);
        ++rep.touched;
        continue;
      }
      if (auto s = embed_slot.find(c.hash); s != embed_slot.end()) {  // same content as another file to embed
        to_embed[s->second].second.push_back(&c);
        continue;
      }
      const auto same = store.find_hash(c.hash);
      const StoredImage* moved = nullptr;
      for (const auto& r : same)
        if (!claimed.count(r.id) && gone(r)) {
          moved = &r;
          break;
        }
      if (moved || !same.empty()) {
        if (c.old) store.remove(c.old->id);
        if (moved) {
          store.move(moved->id, f.path, f.size, f.mtime_ns);
          claimed.insert(moved->id);
          ++rep.renamed;
        } else {
          store.insert_copy(f.path, f.size, f.mtime_ns, same.front().id);
          ++rep.copied;
        }
        store.clear_failure(f.path);
        rows_changed = rows_changed || c.old || !moved;
        continue;
      }
      embed_slot.emplace(c.hash, to_embed.size());
      to_embed.push_back({c.hash, {&c}});
    }
    for (const auto& r : row_list)
      if (!seen.count(r.path) && !claimed.count(r.id)) {
        store.remove(r.id);
        ++rep.removed;
        rows_changed = true;
      }
    for (const auto& f : failed_list)
      if (!seen.count(f.path)) store.clear_failure(f.path);
    if (rows_changed) store.bump_generation();
    t.commit();
  }

  // The encoder: one file per distinct content; a commit every `batch` images.
  if (!to_embed.empty()) {
    const auto te = Clock::now();
    std::vector<std::string> paths;
    paths.reserve(to_embed.size());
    for (const auto& e : to_embed) paths.push_back(e.second.front()->file->path);
    const size_t batch = std::max<size_t>(1, opt.batch);
    util::ProgressBar bar("embedding", paths.size(), opt.progress, 0, util::ProgressUnit::Items);
    std::optional<Transaction> txn;
    size_t pending = 0;
    auto flush = [&] {
      if (!txn) return;
      store.bump_generation();
      txn->commit();
      txn.reset();
      pending = 0;
    };
    std::vector<float> v(store.model().dim);
    embed(paths, batch, [&](size_t i, const float* emb, const std::string& err) {
      if (!txn) txn.emplace(store.db());
      if (emb) {
        std::copy(emb, emb + v.size(), v.begin());
        classify::l2_normalize_rows(v.data(), 1, v.size());
      }
      bool first = true;
      for (const Candidate* c : to_embed[i].second) {
        const FileStat& f = *c->file;
        if (c->old) store.remove(c->old->id);
        if (emb) {
          store.insert(f.path, f.size, f.mtime_ns, c->hash, v.data());
          store.clear_failure(f.path);
          ++(first ? rep.embedded : rep.copied);
        } else {
          store.record_failure(f.path, f.size, f.mtime_ns, err);
          rep.failures.emplace_back(f.path, err);
        }
        first = false;
      }
      bar.tick();
      if (++pending >= batch) flush();
      if (opt.stop && opt.stop->load()) {
        rep.interrupted = true;
        return false;
      }
      return true;
    });
    flush();
    bar.finish();
    rep.embed_seconds = seconds_since(te);
  }
  rep.seconds = seconds_since(t0);
  return rep;
}

}  // namespace zeroshot::index
