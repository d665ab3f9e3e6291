#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "zeroshot/error.h"

namespace zeroshot::eval {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// NaN ranks below every number, so the comparisons below stay a strict weak order.
float rank_key(float v) { return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v; }

// Descending by score, ties toward the lower index.
struct ByScore {
  const float* s;
  size_t stride;
  bool operator()(size_t a, size_t b) const {
    const float x = rank_key(s[a * stride]), y = rank_key(s[b * stride]);
    return x != y ? x > y : a < b;
  }
};

}  // namespace

std::vector<int> top_k(const float* scores, size_t num_classes, size_t k) {
  k = std::min(k, num_classes);
  std::vector<size_t> idx(num_classes);
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(), ByScore{scores, 1});
  return std::vector<int>(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k));
}

SingleLabelMetrics single_label_metrics(const float* scores, size_t n, size_t num_classes,
                                        const std::vector<int>& targets) {
  if (targets.size() != n) throw Error("metrics", "targets and scores disagree on the number of samples");
  if (num_classes == 0) throw Error("metrics", "no classes");
  SingleLabelMetrics m;
  m.samples = n;
  m.per_class.resize(num_classes);
  m.top1.resize(n);
  size_t hit1 = 0, hit5 = 0;
  std::vector<std::pair<int, int>> pairs(n);
  for (size_t i = 0; i < n; ++i) {
    const int t = targets[i];
    if (t < 0 || static_cast<size_t>(t) >= num_classes) throw Error("metrics", "target out of range");
    const auto best = top_k(scores + i * num_classes, num_classes, 5);
    m.top1[i] = best[0];
    hit1 += best[0] == t;
    hit5 += std::find(best.begin(), best.end(), t) != best.end();
    auto& c = m.per_class[static_cast<size_t>(t)];
    ++c.support;
    c.correct += best[0] == t;
    ++m.per_class[static_cast<size_t>(best[0])].predicted;
    pairs[i] = {t, best[0]};
  }
  m.acc1 = n ? static_cast<double>(hit1) / static_cast<double>(n) : kNaN;
  m.acc5 = n && num_classes >= 5 ? static_cast<double>(hit5) / static_cast<double>(n) : kNaN;
  double recall_sum = 0;
  size_t present = 0;
  for (auto& c : m.per_class) {
    c.recall = c.support ? static_cast<double>(c.correct) / static_cast<double>(c.support) : kNaN;
    c.precision = c.predicted ? static_cast<double>(c.correct) / static_cast<double>(c.predicted) : kNaN;
    if (c.support) {
      recall_sum += c.recall;
      ++present;
    }
  }
  m.mean_per_class_recall = present ? recall_sum / static_cast<double>(present) : kNaN;
  std::sort(pairs.begin(), pairs.end());
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && pairs[j] == pairs[i]) ++j;
    m.confusion.push_back({pairs[i].first, pairs[i].second, j - i});
    i = j;
  }
  return m;
}

double average_precision(const float* scores, const unsigned char* positive, size_t n) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), ByScore{scores, 1});
  double tp = 0, sum = 0;
  for (size_t r = 0; r < n; ++r) {
    if (!positive[order[r]]) continue;
    tp += 1;
    sum += tp / static_cast<double>(r + 1);
  }
  return sum / std::max(tp, 1.0);
}

MultiLabelMetrics multi_label_metrics(const float* scores, size_t n, size_t num_classes,
                                      const std::vector<std::vector<int>>& labels) {
  if (labels.size() != n) throw Error("metrics", "labels and scores disagree on the number of samples");
  if (num_classes == 0) throw Error("metrics", "no classes");
  std::vector<std::vector<size_t>> members(num_classes);  // positives of each class (O(labels) memory, not n x K)
  for (size_t i = 0; i < n; ++i)
    for (int l : labels[i]) {
      if (l < 0 || static_cast<size_t>(l) >= num_classes) throw Error("metrics", "label out of range");
      members[static_cast<size_t>(l)].push_back(i);
    }
  MultiLabelMetrics m;
  m.samples = n;
  m.average_precision.resize(num_classes);
  m.positives.resize(num_classes);
  std::vector<float> column(n);
  std::vector<unsigned char> pos(n);
  double sum = 0;
  for (size_t k = 0; k < num_classes; ++k) {
    for (size_t i = 0; i < n; ++i) column[i] = scores[i * num_classes + k];
    std::fill(pos.begin(), pos.end(), 0);
    for (size_t i : members[k]) pos[i] = 1;
    m.positives[k] = static_cast<size_t>(std::count(pos.begin(), pos.end(), 1));
    m.average_precision[k] = average_precision(column.data(), pos.data(), n);
    sum += m.average_precision[k];
  }
  m.mean_average_precision = sum / static_cast<double>(num_classes);
  return m;
}

std::vector<ConfusionCell> worst_confused(const std::vector<ConfusionCell>& confusion, size_t limit) {
  std::vector<ConfusionCell> off;
  for (const auto& c : confusion)
    if (c.truth != c.predicted) off.push_back(c);
  std::stable_sort(off.begin(), off.end(), [](const ConfusionCell& a, const ConfusionCell& b) {
    if (a.count != b.count) return a.count > b.count;
    return a.truth != b.truth ? a.truth < b.truth : a.predicted < b.predicted;
  });
  if (off.size() > limit) off.resize(limit);
  return off;
}

}  // namespace zeroshot::eval
