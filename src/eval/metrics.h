// Classification metrics as CLIP_benchmark computes them (clip_benchmark/metrics/zeroshot_classification.py), as
// pure functions of a score matrix and the true labels.
//
// `scores` is N x K row-major (N samples, K classes), higher = more likely (cosines, logits or probabilities all
// rank the same). Ties are broken toward the lower class index (torch.topk leaves them unspecified); NaN ranks last.
//
//   acc1, acc5              fraction of samples whose true class is among the 1 / 5 best; acc5 is NaN when K < 5
//                           (CLIP_benchmark reports nan there)
//   mean_per_class_recall   sklearn's balanced_accuracy_score: the mean, over classes with at least one sample, of
//                           correct / support
//   per-class precision     correct / predicted (NaN when the class was never predicted), recall correct / support
//                           (NaN when it has no samples)
//   mean_average_precision  multi-label: per class, rank samples by score (descending, ties by sample order) and
//                           average the precision at the rank of each positive (0 when the class has no positives);
//                           then the mean over all K classes (CLIP_benchmark's average_precision_per_class)
#pragma once

#include <cstddef>
#include <vector>

namespace zeroshot::eval {

struct ClassStats {
  size_t support = 0;    // samples of this class
  size_t predicted = 0;  // samples predicted (top-1) as this class
  size_t correct = 0;
  double precision = 0, recall = 0;  // NaN when undefined (see above)
};

struct ConfusionCell {
  int truth = 0, predicted = 0;
  size_t count = 0;
};

struct SingleLabelMetrics {
  size_t samples = 0;
  double acc1 = 0, acc5 = 0, mean_per_class_recall = 0;
  std::vector<ClassStats> per_class;     // K entries
  std::vector<ConfusionCell> confusion;  // non-zero cells of the K x K matrix, by (truth, predicted)
  std::vector<int> top1;                 // the prediction for each sample
};

struct MultiLabelMetrics {
  size_t samples = 0;
  double mean_average_precision = 0;
  std::vector<double> average_precision;  // per class
  std::vector<size_t> positives;          // per class
};

// The k best class indices of one score row, best first (k is clamped to K).
std::vector<int> top_k(const float* scores, size_t num_classes, size_t k);

// targets[i] in [0, K). Throws zeroshot::Error on a target out of range or sizes that do not agree.
SingleLabelMetrics single_label_metrics(const float* scores, size_t n, size_t num_classes,
                                        const std::vector<int>& targets);

// labels[i]: the positive classes of sample i (any number, each in [0, K)).
MultiLabelMetrics multi_label_metrics(const float* scores, size_t n, size_t num_classes,
                                      const std::vector<std::vector<int>>& labels);

// Average precision of one class from its n scores and 0/1 truths.
double average_precision(const float* scores, const unsigned char* positive, size_t n);

// Off-diagonal cells, most frequent first (ties: by truth, then predicted), at most `limit`.
std::vector<ConfusionCell> worst_confused(const std::vector<ConfusionCell>& confusion, size_t limit);

}  // namespace zeroshot::eval
