#include "classify/zero_shot.h"

#include <gtest/gtest.h>

#include <cmath>

#include "classify/label_sets.h"
#include "zeroshot/error.h"

using namespace zeroshot::classify;

TEST(Template, FillsLikePythonFormat) {
  EXPECT_EQ(fill_template("This is a photo of {}.", "cat"), "This is a photo of cat.");
  EXPECT_EQ(fill_template("{} and {}", "x"), "x and x");
  EXPECT_EQ(fill_template("a {{literal}} {}", "dog"), "a {literal} dog");
  EXPECT_THROW(fill_template("no field", "x"), zeroshot::Error);
  EXPECT_THROW(fill_template("bad {0}", "x"), zeroshot::Error);
  EXPECT_THROW(fill_template("stray } {}", "x"), zeroshot::Error);
}

TEST(Ensemble, NormalizeAverageRenormalize) {
  // Label 0: templates (3,4) and (0,2) -> (0.6,0.8) and (0,1) -> mean (0.3,0.9) -> /sqrt(0.9).
  // Label 1: (-5,0) and (0,0): the zero row stays zero (eps), mean (-0.5,0) -> (-1,0).
  const float p[] = {3, 4, 0, 2, -5, 0, 0, 0};
  auto e = ensemble_label_embeddings(p, 2, 2, 2);
  const double n = std::sqrt(0.3 * 0.3 + 0.9 * 0.9);
  EXPECT_NEAR(e[0], 0.3 / n, 1e-7);
  EXPECT_NEAR(e[1], 0.9 / n, 1e-7);
  EXPECT_NEAR(e[2], -1.0, 1e-7);
  EXPECT_NEAR(e[3], 0.0, 1e-7);
}

TEST(Probs, SoftmaxOfScaledCosine) {
  const float labels[] = {1, 0, 0, 1};
  const float x[] = {2, 2};  // cos = 1/sqrt2 to both -> 0.5 / 0.5
  auto p = zero_shot_probs(x, labels, 2, 2, 100.f);
  EXPECT_NEAR(p[0], 0.5, 1e-6);
  const float y[] = {1, 0};  // cos 1 and 0 -> softmax(10, 0)
  p = zero_shot_probs(y, labels, 2, 2, 10.f);
  EXPECT_NEAR(p[0], 1.0 / (1.0 + std::exp(-10.0)), 1e-6);
  EXPECT_NEAR(p[0] + p[1], 1.0, 1e-6);
}

TEST(Rank, SortedDescendingStableTopK) {
  auto r = rank({"a", "b", "c", "d"}, {0.1f, 0.4f, 0.1f, 0.4f});
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].label, "b");
  EXPECT_EQ(r[1].label, "d");
  EXPECT_EQ(r[2].label, "a");
  EXPECT_EQ(r[3].label, "c");
  EXPECT_EQ(rank({"a", "b", "c"}, {0.2f, 0.5f, 0.3f}, 2).size(), 2u);
}

TEST(LabelSets, BuiltInSetsFromThePaper) {
  const LabelSet* in = find_label_set("ImageNet");
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->classes.size(), 1000u);
  EXPECT_EQ(in->classes[0][0], "tench");
  EXPECT_EQ(in->templates.size(), 80u);
  std::vector<std::string> t;
  ASSERT_TRUE(find_template_set("imagenet7", &t));
  EXPECT_EQ(t.size(), 7u);
  ASSERT_TRUE(find_template_set("imagenet80", &t));
  EXPECT_EQ(t.size(), 80u);
  EXPECT_FALSE(find_template_set("no-such-set", &t));
  const LabelSet* esc = find_label_set("esc50");
  ASSERT_NE(esc, nullptr);
  EXPECT_EQ(esc->modality, "audio");
  EXPECT_EQ(esc->classes.size(), 50u);
  const LabelSet* fer = find_label_set("facialemotionrecognition2013");
  ASSERT_NE(fer, nullptr);
  bool has_synonyms = false;
  for (const auto& c : fer->classes) has_synonyms |= c.size() > 1;
  EXPECT_TRUE(has_synonyms);
  for (const auto& name : label_set_names())
    for (const auto& tm : find_label_set(name)->templates) EXPECT_NO_THROW(validate_template(tm)) << name << ": " << tm;
}
