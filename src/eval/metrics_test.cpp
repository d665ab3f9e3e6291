// Metrics on cases worked out by hand, and on random cases against a brute-force formulation written here.
#include "eval/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "zeroshot/error.h"

using namespace zeroshot::eval;

namespace {

// One-hot-ish scores: sample i prefers class pred[i] (score 1), then the classes in index order with falling scores.
std::vector<float> scores_for(const std::vector<int>& pred, size_t K) {
  std::vector<float> s(pred.size() * K);
  for (size_t i = 0; i < pred.size(); ++i)
    for (size_t k = 0; k < K; ++k)
      s[i * K + k] = static_cast<int>(k) == pred[i] ? 1.f : 0.5f - 0.01f * static_cast<float>(k);
  return s;
}

}  // namespace

TEST(Metrics, TopKBreaksTiesTowardLowerIndexAndRanksNaNLast) {
  const float s[] = {0.5f, NAN, 0.9f, 0.5f, 0.9f};
  EXPECT_EQ(top_k(s, 5, 5), (std::vector<int>{2, 4, 0, 3, 1}));
  EXPECT_EQ(top_k(s, 5, 2), (std::vector<int>{2, 4}));
  EXPECT_EQ(top_k(s, 5, 9).size(), 5u);
}

TEST(Metrics, SingleLabelByHand) {
  // sklearn's balanced_accuracy example: true 0,0,0,0,1,1 / predicted 0,0,0,1,1,0 -> (3/4 + 1/2) / 2 = 0.625.
  const std::vector<int> truth = {0, 0, 0, 0, 1, 1}, pred = {0, 0, 0, 1, 1, 0};
  const auto s = scores_for(pred, 3);
  const auto m = single_label_metrics(s.data(), 6, 3, truth);
  EXPECT_DOUBLE_EQ(m.acc1, 4.0 / 6);
  EXPECT_TRUE(std::isnan(m.acc5));  // fewer than 5 classes, as CLIP_benchmark
  EXPECT_DOUBLE_EQ(m.mean_per_class_recall, 0.625);
  EXPECT_EQ(m.top1, pred);
  // class 0: support 4, predicted 4 (3 right), class 1: support 2, predicted 2 (1 right), class 2: nothing.
  EXPECT_EQ(m.per_class[0].support, 4u);
  EXPECT_EQ(m.per_class[0].predicted, 4u);
  EXPECT_EQ(m.per_class[0].correct, 3u);
  EXPECT_DOUBLE_EQ(m.per_class[0].precision, 0.75);
  EXPECT_DOUBLE_EQ(m.per_class[1].precision, 0.5);
  EXPECT_DOUBLE_EQ(m.per_class[1].recall, 0.5);
  EXPECT_TRUE(std::isnan(m.per_class[2].precision));
  EXPECT_TRUE(std::isnan(m.per_class[2].recall));
  ASSERT_EQ(m.confusion.size(), 4u);
  EXPECT_EQ(m.confusion[0].truth, 0);
  EXPECT_EQ(m.confusion[0].predicted, 0);
  EXPECT_EQ(m.confusion[0].count, 3u);
  EXPECT_EQ(m.confusion[1].predicted, 1);
  EXPECT_EQ(m.confusion[1].count, 1u);
  EXPECT_EQ(m.confusion[2].truth, 1);
  EXPECT_EQ(m.confusion[2].predicted, 0);
  EXPECT_EQ(m.confusion[3].count, 1u);
}

TEST(Metrics, MeanRecallSkipsClassesWithoutSamplesButPrecisionCountsThem) {
  // Class 2 has no samples but is predicted once: its precision is 0, and it is not in the recall mean.
  const std::vector<int> truth = {0, 1, 1}, pred = {2, 1, 1};
  const auto s = scores_for(pred, 3);
  const auto m = single_label_metrics(s.data(), 3, 3, truth);
  EXPECT_DOUBLE_EQ(m.mean_per_class_recall, (0.0 + 1.0) / 2);
  EXPECT_DOUBLE_EQ(m.per_class[2].precision, 0.0);
  EXPECT_TRUE(std::isnan(m.per_class[2].recall));
}

TEST(Metrics, Top5ByHand) {
  // 6 classes; the true class ranks 1st, 5th and 6th in three samples.
  const std::vector<float> s = {
      0.9f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f,  // true 0: rank 1
      0.9f, 0.1f, 0.8f, 0.7f, 0.6f, 0.5f,  // true 1: rank 6
      0.9f, 0.6f, 0.8f, 0.7f, 0.1f, 0.2f,  // true 5: rank 5
  };
  const auto m = single_label_metrics(s.data(), 3, 6, {0, 1, 5});
  EXPECT_DOUBLE_EQ(m.acc1, 1.0 / 3);
  EXPECT_DOUBLE_EQ(m.acc5, 2.0 / 3);
}

TEST(Metrics, AveragePrecisionByHand) {
  // Positives at ranks 1 and 3: (1/1 + 2/3) / 2.
  const float s[] = {0.9f, 0.8f, 0.7f, 0.6f, 0.5f};
  const unsigned char p[] = {1, 0, 1, 0, 0};
  EXPECT_NEAR(average_precision(s, p, 5), (1.0 + 2.0 / 3) / 2, 1e-12);
  // Unsorted input: ranked 0.9 (idx 2, +), 0.7 (idx 1, -), 0.3 (idx 3, +), 0.1 (idx 0, -): (1/1 + 2/3) / 2.
  const float s2[] = {0.1f, 0.7f, 0.9f, 0.3f};
  const unsigned char p2[] = {0, 0, 1, 1};
  EXPECT_NEAR(average_precision(s2, p2, 4), (1.0 + 2.0 / 3) / 2, 1e-12);
  // No positives: 0 (CLIP_benchmark divides by max(positives, 1)).
  const unsigned char none[] = {0, 0, 0, 0};
  EXPECT_EQ(average_precision(s2, none, 4), 0.0);
  // Ties keep sample order: equal scores, positive second -> precision 1/2 at rank 2.
  const float tie[] = {0.5f, 0.5f};
  const unsigned char second[] = {0, 1};
  EXPECT_DOUBLE_EQ(average_precision(tie, second, 2), 0.5);
}

TEST(Metrics, MultiLabelByHand) {
  // 4 images x 3 labels. Label 0 positives {0, 2}; label 1 positives {1, 2, 3}; label 2 none.
  const std::vector<float> s = {
      0.9f, 0.2f, 0.1f,  //
      0.8f, 0.3f, 0.2f,  //
      0.1f, 0.9f, 0.3f,  //
      0.7f, 0.1f, 0.4f,  //
  };
  const std::vector<std::vector<int>> labels = {{0}, {1}, {0, 1}, {1}};
  const auto m = multi_label_metrics(s.data(), 4, 3, labels);
  // Label 0: order 0.9(+) 0.8(-) 0.7(-) 0.1(+) -> (1/1 + 2/4) / 2 = 0.75.
  // Label 1: order 0.9(+,img2) 0.3(+,img1) 0.2(-,img0) 0.1(+,img3) -> (1 + 1 + 3/4) / 3 = 11/12.
  // Label 2: no positives -> 0. mAP = (0.75 + 11/12 + 0) / 3.
  EXPECT_NEAR(m.average_precision[0], 0.75, 1e-12);
  EXPECT_NEAR(m.average_precision[1], 11.0 / 12, 1e-12);
  EXPECT_EQ(m.average_precision[2], 0.0);
  EXPECT_EQ(m.positives, (std::vector<size_t>{2, 3, 0}));
  EXPECT_NEAR(m.mean_average_precision, (0.75 + 11.0 / 12) / 3, 1e-12);
}

TEST(Metrics, RandomCasesAgreeWithBruteForce) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const size_t n = 1 + rng() % 40, K = 1 + rng() % 12;
    std::vector<float> s(n * K);
    for (auto& v : s) v = static_cast<float>(rng() % 7) / 7.f;  // coarse values: many ties
    std::vector<int> truth(n);
    for (auto& t : truth) t = static_cast<int>(rng() % K);
    const auto m = single_label_metrics(s.data(), n, K, truth);
    // rank of class c in row i = 1 + #classes that beat it (higher score, or equal score and lower index).
    auto rank = [&](size_t i, size_t c) {
      size_t r = 1;
      for (size_t j = 0; j < K; ++j)
        if (s[i * K + j] > s[i * K + c] || (s[i * K + j] == s[i * K + c] && j < c)) ++r;
      return r;
    };
    size_t h1 = 0, h5 = 0;
    std::vector<double> hit(K, 0), sup(K, 0);
    for (size_t i = 0; i < n; ++i) {
      const size_t r = rank(i, static_cast<size_t>(truth[i]));
      h1 += r == 1;
      h5 += r <= 5;
      sup[static_cast<size_t>(truth[i])] += 1;
      hit[static_cast<size_t>(truth[i])] += r == 1;
    }
    EXPECT_DOUBLE_EQ(m.acc1, static_cast<double>(h1) / n);
    if (K >= 5) {
      EXPECT_DOUBLE_EQ(m.acc5, static_cast<double>(h5) / n);
    }
    double sum = 0, present = 0;
    for (size_t k = 0; k < K; ++k)
      if (sup[k] > 0) {
        sum += hit[k] / sup[k];
        present += 1;
      }
    EXPECT_NEAR(m.mean_per_class_recall, sum / present, 1e-12);

    // AP of each class: mean over positives p of (#positives ranked at or above p) / rank(p), ranking samples.
    std::vector<std::vector<int>> labels(n);
    for (size_t i = 0; i < n; ++i)
      for (size_t k = 0; k < K; ++k)
        if (rng() % 3 == 0) labels[i].push_back(static_cast<int>(k));
    const auto ml = multi_label_metrics(s.data(), n, K, labels);
    double total = 0;
    for (size_t k = 0; k < K; ++k) {
      auto pos = [&](size_t i) {
        return std::find(labels[i].begin(), labels[i].end(), static_cast<int>(k)) != labels[i].end();
      };
      auto srank = [&](size_t i) {
        size_t r = 1;
        for (size_t j = 0; j < n; ++j)
          if (s[j * K + k] > s[i * K + k] || (s[j * K + k] == s[i * K + k] && j < i)) ++r;
        return r;
      };
      double ap = 0, npos = 0;
      for (size_t i = 0; i < n; ++i) {
        if (!pos(i)) continue;
        npos += 1;
        double above = 0;
        for (size_t j = 0; j < n; ++j)
          if (pos(j) && srank(j) <= srank(i)) above += 1;
        ap += above / static_cast<double>(srank(i));
      }
      ap = npos > 0 ? ap / npos : 0;
      EXPECT_NEAR(ml.average_precision[k], ap, 1e-12);
      total += ap;
    }
    EXPECT_NEAR(ml.mean_average_precision, total / K, 1e-12);
  }
}

TEST(Metrics, WorstConfusedSkipsTheDiagonalAndSortsByCount) {
  const std::vector<ConfusionCell> c = {{0, 0, 9}, {0, 1, 2}, {1, 0, 5}, {1, 2, 2}, {2, 2, 1}};
  const auto w = worst_confused(c, 2);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].truth, 1);
  EXPECT_EQ(w[0].predicted, 0);
  EXPECT_EQ(w[1].truth, 0);  // count tie 2/2: lower truth first
  EXPECT_EQ(w[1].predicted, 1);
}

TEST(Metrics, BadInputIsAnError) {
  const float s[] = {0.1f, 0.2f};
  EXPECT_THROW(single_label_metrics(s, 1, 2, {2}), zeroshot::Error);
  EXPECT_THROW(single_label_metrics(s, 1, 2, {0, 1}), zeroshot::Error);
  EXPECT_THROW(multi_label_metrics(s, 1, 2, {{-1}}), zeroshot::Error);
}
