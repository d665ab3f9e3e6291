#include "classify/multi_label.h"

#include <gtest/gtest.h>

#include <cmath>

#include "classify/zero_shot.h"
#include "zeroshot/error.h"

using namespace zeroshot::classify;

TEST(TwoWay, IsTheSoftmaxOfTheScaledPair) {
  // softmax([100*0.3, 100*0.2])[0] = e^30 / (e^30 + e^20) = 1 / (1 + e^-10) = 0.9999546021...
  EXPECT_NEAR(two_way_probability(0.3f, 0.2f, 100.f), 0.99995460213, 1e-7);
  EXPECT_NEAR(two_way_probability(0.2f, 0.3f, 100.f), 4.5397868702e-05, 1e-9);
  EXPECT_FLOAT_EQ(two_way_probability(0.25f, 0.25f, 100.f), 0.5f);
  // softmax([1, 3]) with scale 1: e / (e + e^3) = 1 / (1 + e^2) = 0.1192029220.
  EXPECT_NEAR(two_way_probability(1.f, 3.f, 1.f), 0.1192029220, 1e-7);
  // Saturates without overflow or NaN.
  EXPECT_EQ(two_way_probability(1.f, -1.f, 1e30f), 1.f);
  EXPECT_EQ(two_way_probability(-1.f, 1.f, 1e30f), 0.f);
}

TEST(TwoWay, FromEmbeddings) {
  // pos = (1, 0), neg = (0, 1), x = (3, 4): cosines 0.6 and 0.8; scale 10 -> 1 / (1 + e^2).
  const float pos[] = {1, 0}, neg[] = {0, 1}, x[] = {3, 4};
  const float cp = cosines(x, pos, 1, 2)[0], cn = cosines(x, neg, 1, 2)[0];
  EXPECT_NEAR(cp, 0.6, 1e-7);
  EXPECT_NEAR(cn, 0.8, 1e-7);
  EXPECT_NEAR(two_way_probability(cp, cn, 10.f), 0.1192029220, 1e-6);
}

TEST(TwoWay, ThresholdIsACosineMargin) {
  // p >= t  <=>  cos_pos - cos_neg >= log(t / (1 - t)) / s. With s = 100, t = 0.7: margin 0.0084729786.
  const float s = 100.f;
  EXPECT_GE(two_way_probability(0.2f + 0.0085f, 0.2f, s), 0.7f);
  EXPECT_LT(two_way_probability(0.2f + 0.0084f, 0.2f, s), 0.7f);
}

TEST(Tags, RankedIndependentlyAndFlagged) {
  const std::vector<std::string> labels = {"a", "b", "c", "d"};
  const std::vector<float> scores = {0.2f, 0.9f, 0.6f, 0.6f};
  const std::vector<float> thr = {0.1f, 0.95f, 0.6f, 0.7f};
  auto t = rank_tags(labels, scores, thr);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].label, "b");
  EXPECT_FALSE(t[0].flagged);  // 0.9 < 0.95
  EXPECT_EQ(t[1].label, "c");  // tie with d: label order
  EXPECT_TRUE(t[1].flagged);   // equal to the threshold counts
  EXPECT_EQ(t[2].label, "d");
  EXPECT_FALSE(t[2].flagged);
  EXPECT_EQ(t[3].label, "a");
  EXPECT_TRUE(t[3].flagged);
  EXPECT_FLOAT_EQ(t[3].threshold, 0.1f);
  EXPECT_EQ(rank_tags(labels, scores, thr, 2).size(), 2u);
  EXPECT_THROW(rank_tags(labels, {0.1f}, thr), zeroshot::Error);
}

TEST(Thresholds, RangesPerScore) {
  EXPECT_NO_THROW(check_threshold(ScoreOn::Probability, 0.0, "x"));
  EXPECT_NO_THROW(check_threshold(ScoreOn::Probability, 1.0, "x"));
  EXPECT_THROW(check_threshold(ScoreOn::Probability, -0.1, "x"), zeroshot::Error);
  EXPECT_THROW(check_threshold(ScoreOn::Probability, 1.5, "x"), zeroshot::Error);
  EXPECT_NO_THROW(check_threshold(ScoreOn::Cosine, -0.3, "x"));
  EXPECT_THROW(check_threshold(ScoreOn::Cosine, -1.01, "x"), zeroshot::Error);
  EXPECT_THROW(check_threshold(ScoreOn::Cosine, NAN, "x"), zeroshot::Error);
  try {
    check_threshold(ScoreOn::Probability, 2, "labels.txt:3");
    FAIL();
  } catch (const zeroshot::Error& e) {
    EXPECT_EQ(std::string(e.what()), "labels.txt:3: threshold must be between 0 and 1 for a probability score");
  }
}

TEST(Numbers, WholeFiniteNumbersOnly) {
  EXPECT_FLOAT_EQ(*parse_number("0.5"), 0.5f);
  EXPECT_FLOAT_EQ(*parse_number(" -0.25 "), -0.25f);
  EXPECT_FLOAT_EQ(*parse_number("5e-1"), 0.5f);
  EXPECT_FLOAT_EQ(*parse_number("1"), 1.f);
  for (const char* bad : {"", "x", "0.5x", "nan", "inf", "0..5", "--1"}) EXPECT_FALSE(parse_number(bad)) << bad;
}

TEST(ThresholdSpec, GlobalOrPerLabel) {
  auto s = parse_threshold_spec("0.6");
  EXPECT_EQ(s.label, "");
  EXPECT_FLOAT_EQ(s.value, 0.6f);
  s = parse_threshold_spec("a red car=0.75");
  EXPECT_EQ(s.label, "a red car");
  EXPECT_FLOAT_EQ(s.value, 0.75f);
  s = parse_threshold_spec("x=y=0.1");  // split at the last '='
  EXPECT_EQ(s.label, "x=y");
  EXPECT_THROW(parse_threshold_spec("=0.5"), zeroshot::Error);
  EXPECT_THROW(parse_threshold_spec("cat="), zeroshot::Error);
  EXPECT_THROW(parse_threshold_spec("cat"), zeroshot::Error);
}

TEST(LabelsFile, ColumnsCommentsAndErrors) {
  const std::string text =
      "# tags\n"
      "cat\n"
      "\n"
      "  a red car \t 0.7\n"
      "dog\t\ta cat\n"
      "gun\t0.8\ta toy gun\n"
      "bird\t\n";
  auto l = parse_tag_labels(text, "tags.txt");
  ASSERT_EQ(l.size(), 5u);
  EXPECT_EQ(l[0].name, "cat");
  EXPECT_FALSE(l[0].threshold);
  EXPECT_EQ(l[0].negative, "");
  EXPECT_EQ(l[0].line, 2u);
  EXPECT_EQ(l[1].name, "a red car");
  EXPECT_FLOAT_EQ(*l[1].threshold, 0.7f);
  EXPECT_EQ(l[2].name, "dog");
  EXPECT_FALSE(l[2].threshold);
  EXPECT_EQ(l[2].negative, "a cat");
  EXPECT_FLOAT_EQ(*l[3].threshold, 0.8f);
  EXPECT_EQ(l[3].negative, "a toy gun");
  EXPECT_EQ(l[4].name, "bird");
  auto expect_error = [](const std::string& t, const std::string& msg) {
    try {
      parse_tag_labels(t, "tags.txt");
      FAIL() << t;
    } catch (const zeroshot::Error& e) {
      EXPECT_EQ(std::string(e.what()), msg);
    }
  };
  expect_error("cat\ndog\tx\n", "tags.txt:2: threshold \"x\" is not a number");
  expect_error("cat\t1.5\n", "tags.txt:1: threshold must be between -1 and 1 for a cosine score");
  expect_error("a\tb\n\t0.5\n", "tags.txt:1: threshold \"b\" is not a number");
  expect_error("ok\n\t0.5\n", "tags.txt:2: empty label");
  expect_error("a\t0.5\tneg\textra\n", "tags.txt:1: too many TAB-separated columns (label, threshold, negative)");
  EXPECT_THROW(load_tag_labels_file("/nonexistent/tags.txt"), zeroshot::Error);
  EXPECT_THROW(load_tag_labels_file("/tmp"), zeroshot::Error);
}

TEST(Neutral, DefaultNegativesAndModeNames) {
  EXPECT_EQ(neutral_names(), (std::vector<std::string>{"something", "an object"}));
  EXPECT_EQ(fill_template(kNeutralPromptTemplate, "something"), "a photo of something.");
  ScoreOn on;
  EXPECT_TRUE(parse_score_on("cosine", &on));
  EXPECT_EQ(on, ScoreOn::Cosine);
  EXPECT_STREQ(score_on_name(on), "cosine");
  EXPECT_FALSE(parse_score_on("Cosine", &on));
}
