// Template sets, the shared prompt plan, class ensembling (against a separate loop here), folds and the JSON form.
#include "eval/evaluate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "classify/label_sets.h"
#include "classify/zero_shot.h"
#include "zeroshot/error.h"

using namespace zeroshot;
using namespace zeroshot::eval;

namespace {

// A deterministic stand-in for the text encoder: each prompt's characters spread over `dim` floats.
Embeddings fake_embed(const std::vector<std::string>& texts, size_t dim) {
  Embeddings e;
  e.rows = texts.size();
  e.dim = dim;
  for (const auto& t : texts)
    for (size_t d = 0; d < dim; ++d) {
      float v = 0.1f * static_cast<float>(d + 1);
      for (size_t i = 0; i < t.size(); ++i)
        v += static_cast<float>((static_cast<unsigned char>(t[i]) * (i + 3) * (d + 7)) % 97) / 97.f - 0.5f;
      e.data.push_back(v);
    }
  return e;
}

}  // namespace

TEST(Evaluate, TemplateSets) {
  auto s = resolve_template_sets({});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].name, "default");
  EXPECT_EQ(s[0].templates, std::vector<std::string>{kDefaultImageTemplate});

  s = resolve_template_sets({"imagenet7", "a {} photo.", "default"});
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].templates.size(), 7u);
  EXPECT_EQ(s[1].templates, std::vector<std::string>{"a {} photo."});
  EXPECT_EQ(s[3].name, "ensemble");
  EXPECT_EQ(s[3].templates.size(), 9u);
  EXPECT_EQ(s[3].templates[7], "a {} photo.");

  // imagenet80 and imagenet7 overlap: the ensemble holds each template once.
  s = resolve_template_sets({"imagenet80", "imagenet7"});
  std::vector<std::string> t80, t7;
  ASSERT_TRUE(classify::find_template_set("imagenet80", &t80));
  ASSERT_TRUE(classify::find_template_set("imagenet7", &t7));
  std::set<std::string> all(t80.begin(), t80.end());
  all.insert(t7.begin(), t7.end());
  EXPECT_EQ(s.back().templates.size(), all.size());

  EXPECT_THROW(resolve_template_sets({"nope"}), Error);
  EXPECT_THROW(resolve_template_sets({"a {} b {"}), Error);
  EXPECT_THROW(resolve_template_sets({"default", "default"}), Error);
}

TEST(Evaluate, PromptsAreSharedAndClassesEnsembleLikeTheClassifier) {
  const std::vector<Class> classes = {{"c0", {"cat", "kitty"}}, {"c1", {"dog"}}};
  const auto sets = resolve_template_sets({"a {}.", "the {}."});
  const PromptPlan plan = plan_prompts(classes, sets);
  // 3 names x 2 templates, each prompt once although the ensemble uses all of them again.
  EXPECT_EQ(plan.prompts.size(), 6u);
  ASSERT_EQ(plan.rows.size(), 3u);
  EXPECT_EQ(plan.rows[0][0].size(), 2u);  // cat, kitty with "a {}."
  EXPECT_EQ(plan.rows[2][0].size(), 4u);  // ensemble: 2 names x 2 templates
  EXPECT_EQ(plan.prompts[plan.rows[2][1][1]], "the dog.");

  const size_t dim = 5;
  std::vector<std::pair<size_t, size_t>> calls;
  const Embeddings pe = embed_prompts(
      plan, [&](const std::vector<std::string>& t) { return fake_embed(t, dim); }, 4,
      [&](size_t done, size_t total) { calls.emplace_back(done, total); });
  EXPECT_EQ(calls, (std::vector<std::pair<size_t, size_t>>{{4, 6}, {6, 6}}));
  const Embeddings whole = fake_embed(plan.prompts, dim);
  EXPECT_EQ(pe.data, whole.data);

  for (size_t s = 0; s < sets.size(); ++s) {
    const auto ce = class_embeddings(plan, s, pe.data.data(), dim);
    ASSERT_EQ(ce.size(), classes.size() * dim);
    for (size_t k = 0; k < classes.size(); ++k) {
      // Separately: embed the class's prompts, normalize each, average, normalize.
      std::vector<std::string> prompts;
      for (const auto& n : classes[k].names)
        for (const auto& t : sets[s].templates) prompts.push_back(classify::fill_template(t, n));
      const Embeddings e = fake_embed(prompts, dim);
      std::vector<double> mean(dim, 0);
      for (size_t r = 0; r < e.rows; ++r) {
        double ss = 0;
        for (size_t d = 0; d < dim; ++d) ss += double(e.row(r)[d]) * e.row(r)[d];
        for (size_t d = 0; d < dim; ++d) mean[d] += e.row(r)[d] / std::sqrt(ss) / double(e.rows);
      }
      double ss = 0;
      for (double v : mean) ss += v * v;
      for (size_t d = 0; d < dim; ++d) EXPECT_NEAR(ce[k * dim + d], mean[d] / std::sqrt(ss), 1e-6) << s << " " << k;
    }
  }
}

TEST(Evaluate, FoldsFailuresAndJson) {
  // 2 classes along the axes of a 2-d space; samples as unit-ish vectors; folds 1 and 2.
  Dataset d;
  d.source = "esc";
  d.layout = Layout::Esc50;
  d.modality = "audio";
  d.classes = {{"0", {"dog"}}, {"1", {"rooster"}}};
  d.samples = {{"a", {0}, 1}, {"b", {1}, 1}, {"c", {0}, 2}, {"d", {1}, 2}, {"e", {0}, 2}};
  const std::vector<float> cls = {1, 0, 0, 1};
  // evaluated: a, b, c, e (d failed). Scores: a->dog (right), b->dog (wrong), c->rooster (wrong), e->dog (right).
  const std::vector<float> x = {2, 1, 3, 1, 0.1f, 1, 1, 0};
  const auto sets = resolve_template_sets({});
  const Evaluation ev = evaluate(d, {0, 1, 2, 4}, {{3, "d: cannot decode"}}, x.data(), 2, sets, {cls}, false);
  ASSERT_EQ(ev.sets.size(), 1u);
  const auto& r = ev.sets[0];
  EXPECT_DOUBLE_EQ(r.single.acc1, 0.5);
  ASSERT_EQ(r.folds.size(), 2u);
  EXPECT_EQ(r.folds[0].first, 1);
  EXPECT_DOUBLE_EQ(r.folds[0].second.acc1, 0.5);  // a right, b wrong
  EXPECT_EQ(r.folds[1].first, 2);
  EXPECT_EQ(r.folds[1].second.samples, 2u);
  EXPECT_DOUBLE_EQ(r.folds[1].second.acc1, 0.5);  // c wrong, e right
  // Cosines, not raw dot products: b = (3,1) has cosine 3/sqrt(10) with dog.
  const auto cs = cosine_scores(x.data(), 4, cls.data(), 2, 2);
  EXPECT_NEAR(cs[1 * 2 + 0], 3 / std::sqrt(10.0), 1e-6);
  EXPECT_NEAR(cs[1 * 2 + 1], 1 / std::sqrt(10.0), 1e-6);

  RunInfo info;
  info.model = "m";
  const auto j = to_json(d, ev, info);
  EXPECT_EQ(j["task"], "zeroshot_classification");
  EXPECT_DOUBLE_EQ(j["metrics"]["acc1"].get<double>(), 0.5);
  EXPECT_TRUE(j["metrics"]["acc5"].is_null());  // 2 classes < 5
  // dog: samples a, c, e -> 2 right; rooster: b -> 0 right.
  EXPECT_DOUBLE_EQ(j["metrics"]["mean_per_class_recall"].get<double>(), (2.0 / 3 + 0.0) / 2);
  EXPECT_EQ(j["templates"][0]["per_fold"].size(), 2u);
  EXPECT_EQ(j["failures"][0]["path"], "d");
  EXPECT_EQ(j["evaluated"], 4);
  EXPECT_EQ(j["per_class"][1]["class"], "rooster");
  EXPECT_EQ(j["per_class"][0]["support"], 3);
  EXPECT_EQ(j["worst_confused"].size(), 2u);

  // Multi-label forced on single-label data: each sample's one label is its positive.
  const Evaluation ml = evaluate(d, {0, 1, 2, 4}, {}, x.data(), 2, sets, {cls}, true);
  EXPECT_TRUE(ml.multi_label);
  const auto jm = to_json(d, ml, info);
  EXPECT_TRUE(jm["metrics"].contains("mean_average_precision"));
  EXPECT_FALSE(jm["metrics"].contains("acc1"));
}
