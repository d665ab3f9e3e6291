// One loaded model per (folder, threads) for the whole test binary: loading is the slow part of most end-to-end
// tests, and a loaded zeroshot::Model is immutable and safe to share between threads. Header-only: only tests that
// link the public API (zeroshot) include it. A load failure throws zeroshot::Error, failing the test that asked.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "zeroshot/zeroshot.h"

namespace zeroshot::testing {

inline const Model& shared_model(const std::string& dir, int threads = 1) {
  static std::mutex mu;
  static std::map<std::pair<std::string, int>, std::unique_ptr<Model>> models;
  const std::lock_guard<std::mutex> lock(mu);
  auto& m = models[{dir, threads}];
  if (!m) {
    ModelOptions o;
    o.threads = threads;
    o.progress = false;
    m = Model::load(dir, o);
  }
  return *m;
}

}  // namespace zeroshot::testing
