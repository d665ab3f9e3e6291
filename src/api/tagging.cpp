// MultiLabelClassifier and Moderator: independent per-label scores over ZeroShotClassifier's label embeddings.
#include "zeroshot/tagging.h"

#include <algorithm>
#include <map>

#include "classify/multi_label.h"
#include "classify/policy.h"
#include "classify/zero_shot.h"

namespace zeroshot {

namespace {

classify::ScoreOn to_classify(ScoreOn on) {
  return on == ScoreOn::Cosine ? classify::ScoreOn::Cosine : classify::ScoreOn::Probability;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// MultiLabelClassifier

struct MultiLabelClassifier::Impl {
  ScoreOn on = ScoreOn::Probability;
  float scale = 1.f;
  ScoreHead head;  // a sigmoid head scores probabilities itself: no negatives
  std::unique_ptr<ZeroShotClassifier> positives;
  std::unique_ptr<ZeroShotClassifier> negatives;  // probability only: row neg_of[k] is label k's baseline
  std::vector<size_t> neg_of;
  std::vector<float> thresholds;
};

MultiLabelClassifier::MultiLabelClassifier(const Model& model, std::vector<std::vector<std::string>> classes,
                                           std::vector<std::string> templates, MultiLabelOptions opt)
    : impl_(std::make_unique<Impl>()) {
  const size_t k_count = classes.size();
  if (!opt.thresholds.empty() && opt.thresholds.size() != k_count)
    throw Error("thresholds", "one per label expected (" + std::to_string(k_count) + "), got " +
                                  std::to_string(opt.thresholds.size()));
  if (!opt.label_negatives.empty() && opt.label_negatives.size() != k_count)
    throw Error("negatives", "one per label expected (" + std::to_string(k_count) + "), got " +
                                 std::to_string(opt.label_negatives.size()));
  Impl& m = *impl_;
  m.on = opt.on;
  m.scale = model.logit_scale();
  m.head = model.score_head();
  const auto on = to_classify(opt.on);
  // Thresholds first: a bad one is reported before any text is encoded.
  if (opt.threshold) classify::check_threshold(on, *opt.threshold, "threshold");
  for (size_t k = 0; k < k_count; ++k) {
    const std::string where = "label \"" + (classes[k].empty() ? std::string() : classes[k][0]) + "\"";
    std::optional<float> t = opt.thresholds.empty() ? std::nullopt : opt.thresholds[k];
    if (!t) t = opt.threshold;
    if (!t && on == classify::ScoreOn::Probability) t = classify::kDefaultProbabilityThreshold;
    if (!t) throw Error(where, "cosine scores need a threshold (there is no default: calibrate one for the model)");
    classify::check_threshold(on, *t, where);
    m.thresholds.push_back(*t);
  }
  m.positives = std::make_unique<ZeroShotClassifier>(model, std::move(classes), std::move(templates), opt.classifier);
  const auto& labels = m.positives->labels();

  if (on == classify::ScoreOn::Probability && !m.head.sigmoid) {
    // Row 0: the shared baseline (one class, its names ensembled); then each distinct per-label negative.
    std::vector<std::vector<std::string>> neg_classes = {opt.negatives.empty() ? classify::neutral_names()
                                                                               : opt.negatives};
    std::map<std::string, size_t> row_of;
    m.neg_of.assign(labels.size(), 0);
    for (size_t k = 0; k < opt.label_negatives.size(); ++k) {
      const std::string& n = opt.label_negatives[k];
      if (n.empty()) continue;
      auto [it, added] = row_of.emplace(n, neg_classes.size());
      if (added) neg_classes.push_back({n});
      m.neg_of[k] = it->second;
    }
    m.negatives =
        std::make_unique<ZeroShotClassifier>(model, std::move(neg_classes), m.positives->templates(), opt.classifier);
  }
}

MultiLabelClassifier::~MultiLabelClassifier() = default;
MultiLabelClassifier::MultiLabelClassifier(MultiLabelClassifier&&) noexcept = default;

const std::vector<std::string>& MultiLabelClassifier::labels() const { return impl_->positives->labels(); }
const std::vector<float>& MultiLabelClassifier::thresholds() const { return impl_->thresholds; }
ScoreOn MultiLabelClassifier::score_on() const { return impl_->on; }

std::vector<float> MultiLabelClassifier::scores(const float* embedding) const {
  const Impl& m = *impl_;
  std::vector<float> s = m.positives->cosines(embedding);
  if (m.on == ScoreOn::Cosine) return s;
  if (m.head.sigmoid) {
    // The model's own calibration (SigLIP): sigmoid(scale * cos + logit_bias), the pipeline's score.
    for (float& v : s) v = classify::sigmoid_score(v, m.head.scale, m.head.bias);
    return s;
  }
  const std::vector<float> neg = m.negatives->cosines(embedding);
  for (size_t k = 0; k < s.size(); ++k) s[k] = classify::two_way_probability(s[k], neg[m.neg_of[k]], m.scale);
  return s;
}

std::vector<TagScore> MultiLabelClassifier::tag(const float* embedding, size_t top_k) const {
  const auto tags = classify::rank_tags(labels(), scores(embedding), impl_->thresholds, top_k);
  std::vector<TagScore> out;
  out.reserve(tags.size());
  for (const auto& t : tags) out.push_back({t.label, t.score, t.threshold, t.flagged});
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Moderator

struct Moderator::Impl {
  // Categories with the same templates share one ZeroShotClassifier (one batch of prompts, one cache entry).
  struct Group {
    std::vector<std::string> templates;
    std::vector<std::vector<std::string>> classes;
    std::unique_ptr<ZeroShotClassifier> clf;
  };
  struct Rows {
    size_t group = 0, first = 0, count = 0, negative = 0;
  };
  classify::Policy policy;
  std::vector<std::string> names;
  std::vector<Group> groups;
  std::vector<Rows> rows;  // per category
  float scale = 1.f;
  ScoreHead head;  // a sigmoid head scores probability categories itself: no negative rows
};

Moderator::Moderator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Moderator::~Moderator() = default;
Moderator::Moderator(Moderator&&) noexcept = default;

namespace {

std::unique_ptr<Moderator::Impl> build_moderator(const Model& model, classify::Policy policy,
                                                 const ClassifierOptions& options) {
  auto m = std::make_unique<Moderator::Impl>();
  m->scale = model.logit_scale();
  m->head = model.score_head();
  std::map<std::pair<size_t, std::vector<std::string>>, size_t> negative_row;  // (group, negative set) -> row
  for (const auto& c : policy.categories) {
    auto g =
        std::find_if(m->groups.begin(), m->groups.end(), [&](const auto& gr) { return gr.templates == c.templates; });
    if (g == m->groups.end()) {
      m->groups.push_back({c.templates, {}, nullptr});
      g = m->groups.end() - 1;
    }
    Moderator::Impl::Rows r;
    r.group = static_cast<size_t>(g - m->groups.begin());
    r.first = g->classes.size();
    r.count = c.prompts.size();
    // Each prompt is its own row (ensembled over the templates only); the negative set is one row (all ensembled).
    for (const auto& p : c.prompts) g->classes.push_back({p});
    if (!c.negative_prompts.empty() && !m->head.sigmoid) {
      auto [it, added] = negative_row.emplace(std::make_pair(r.group, c.negative_prompts), g->classes.size());
      if (added) g->classes.push_back(c.negative_prompts);
      r.negative = it->second;
    }
    m->rows.push_back(r);
    m->names.push_back(c.name);
  }
  for (auto& g : m->groups)
    g.clf = std::make_unique<ZeroShotClassifier>(model, std::move(g.classes), g.templates, options);
  m->policy = std::move(policy);
  return m;
}

}  // namespace

Moderator Moderator::load(const Model& model, const std::string& policy_path, const ClassifierOptions& options) {
  return Moderator(build_moderator(model, classify::load_policy_file(policy_path), options));
}

Moderator Moderator::parse(const Model& model, const std::string& policy_toml, const std::string& source_name,
                           const ClassifierOptions& options) {
  return Moderator(build_moderator(model, classify::parse_policy(policy_toml, source_name), options));
}

const std::vector<std::string>& Moderator::categories() const { return impl_->names; }

std::vector<TagScore> Moderator::moderate(const float* embedding) const {
  const Impl& m = *impl_;
  std::vector<std::vector<float>> cos;
  cos.reserve(m.groups.size());
  for (const auto& g : m.groups) cos.push_back(g.clf->cosines(embedding));
  std::vector<TagScore> out;
  out.reserve(m.rows.size());
  for (size_t i = 0; i < m.rows.size(); ++i) {
    const auto& r = m.rows[i];
    const auto& c = m.policy.categories[i];
    const std::vector<float>& gc = cos[r.group];
    float s = 0.f;
    if (m.head.sigmoid && c.on == classify::ScoreOn::Probability) {
      // The model's own sigmoid of the best-matching prompt (prompts are alternatives, as in category_score).
      const float best = *std::max_element(gc.data() + r.first, gc.data() + r.first + r.count);
      s = classify::sigmoid_score(best, m.head.scale, m.head.bias);
    } else {
      s = classify::category_score(c, gc.data() + r.first, r.count, gc[r.negative], m.scale);
    }
    out.push_back({c.name, s, c.threshold, s >= c.threshold});
  }
  return out;
}

}  // namespace zeroshot
