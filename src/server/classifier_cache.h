// Label embeddings shared across requests: an LRU of classifiers (softmax ZeroShotClassifier, or
// MultiLabelClassifier for multi_label) keyed by the labels, the templates and the kind. A classifier is built on
// the first request that names its labels (the text encoder runs once, also when several requests ask at once) and
// reused by every later one.
#pragma once

#include <cstddef>
#include <functional>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace zeroshot::server {

template <class T>
class LruCache {
 public:
  explicit LruCache(size_t capacity) : capacity_(capacity) {}

  // The entry for `key`, built with make() on a miss, outside the lock. Requests that miss the same key while it is
  // being built wait for that one build (the text encoder runs once) and share its result or its exception.
  // *hit: false only for the request that built it.
  std::shared_ptr<const T> get(const std::string& key, const std::function<std::shared_ptr<const T>()>& make,
                               bool* hit) {
    std::promise<std::shared_ptr<const T>> promise;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto it = map_.find(key);
      if (it != map_.end()) {
        order_.splice(order_.begin(), order_, it->second);
        *hit = true;
        return it->second->second;
      }
      auto p = pending_.find(key);
      if (p != pending_.end()) {
        auto f = p->second;
        lock.unlock();
        *hit = true;
        return f.get();
      }
      pending_.emplace(key, promise.get_future().share());
    }
    *hit = false;
    std::shared_ptr<const T> v;
    try {
      v = make();
    } catch (...) {
      promise.set_exception(std::current_exception());
      std::lock_guard<std::mutex> lock(mu_);
      pending_.erase(key);
      throw;
    }
    promise.set_value(v);
    std::lock_guard<std::mutex> lock(mu_);
    pending_.erase(key);
    if (capacity_ == 0) return v;
    order_.emplace_front(key, v);
    map_[key] = order_.begin();
    while (order_.size() > capacity_) {
      map_.erase(order_.back().first);
      order_.pop_back();
    }
    return v;
  }

  // Whether `key` is built and kept (does not count as a use).
  bool contains(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    return map_.count(key) > 0;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return order_.size();
  }

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const T>>;
  size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<std::string, typename std::list<Entry>::iterator> map_;
  std::unordered_map<std::string, std::shared_future<std::shared_ptr<const T>>> pending_;  // being built
};

// An unambiguous key of string lists (lengths prefixed).
inline std::string cache_key(const std::string& kind, const std::vector<std::vector<std::string>>& parts) {
  std::string k = kind;
  for (const auto& list : parts) {
    k += "|" + std::to_string(list.size());
    for (const auto& s : list) k += ":" + std::to_string(s.size()) + ":" + s;
  }
  return k;
}

}  // namespace zeroshot::server
