#include "eval/evaluate.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <unordered_map>

#include "classify/label_sets.h"
#include "classify/zero_shot.h"

namespace zeroshot::eval {

std::vector<TemplateSet> resolve_template_sets(const std::vector<std::string>& items,
                                               const std::string& default_template) {
  std::vector<TemplateSet> sets;
  for (const auto& raw : items) {
    TemplateSet s;
    s.name = raw;
    if (raw.find("{}") != std::string::npos) {
      classify::validate_template(raw);
      s.templates = {raw};
    } else if (raw == "default") {
      s.templates = {default_template};
    } else if (!classify::find_template_set(raw, &s.templates) || s.templates.empty()) {
      throw Error("--templates " + raw,
                  "not a template set (default, imagenet80, imagenet7, a label set's name) nor a template with {}");
    }
    for (const auto& t : sets)
      if (t.name == s.name) throw Error("--templates " + raw, "given twice");
    sets.push_back(std::move(s));
  }
  if (sets.empty()) sets.push_back({"default", {default_template}});
  if (sets.size() > 1) {
    TemplateSet all{"ensemble", {}};
    std::set<std::string> seen;
    for (const auto& s : sets)
      for (const auto& t : s.templates)
        if (seen.insert(t).second) all.templates.push_back(t);
    sets.push_back(std::move(all));
  }
  return sets;
}

PromptPlan plan_prompts(const std::vector<Class>& classes, const std::vector<TemplateSet>& sets) {
  PromptPlan plan;
  std::unordered_map<std::string, size_t> row_of;
  plan.rows.resize(sets.size());
  for (size_t s = 0; s < sets.size(); ++s) {
    plan.rows[s].resize(classes.size());
    for (size_t k = 0; k < classes.size(); ++k) {
      // names x templates, name-major: ZeroShotClassifier's order (the average does not depend on it, the float
      // rounding of the sum does).
      for (const auto& name : classes[k].names)
        for (const auto& t : sets[s].templates) {
          std::string p = classify::fill_template(t, name);
          auto [it, fresh] = row_of.emplace(p, plan.prompts.size());
          if (fresh) plan.prompts.push_back(std::move(p));
          plan.rows[s][k].push_back(it->second);
        }
    }
  }
  return plan;
}

std::vector<float> class_embeddings(const PromptPlan& plan, size_t set, const float* prompt_embeds, size_t dim) {
  const auto& rows = plan.rows.at(set);
  std::vector<float> out(rows.size() * dim);
  std::vector<float> gathered;
  for (size_t k = 0; k < rows.size(); ++k) {
    gathered.resize(rows[k].size() * dim);
    for (size_t j = 0; j < rows[k].size(); ++j)
      std::copy(prompt_embeds + rows[k][j] * dim, prompt_embeds + (rows[k][j] + 1) * dim,
                gathered.begin() + static_cast<std::ptrdiff_t>(j * dim));
    const std::vector<float> e = classify::ensemble_label_embeddings(gathered.data(), 1, rows[k].size(), dim);
    std::copy(e.begin(), e.end(), out.begin() + static_cast<std::ptrdiff_t>(k * dim));
  }
  return out;
}

Embeddings embed_prompts(const PromptPlan& plan, const EmbedTextsFn& embed, size_t chunk,
                         const std::function<void(size_t, size_t)>& progress) {
  if (chunk == 0) chunk = 1;
  Embeddings all;
  const size_t n = plan.prompts.size();
  for (size_t b = 0; b < n; b += chunk) {
    const size_t e = std::min(n, b + chunk);
    const std::vector<std::string> part(plan.prompts.begin() + static_cast<std::ptrdiff_t>(b),
                                        plan.prompts.begin() + static_cast<std::ptrdiff_t>(e));
    Embeddings got = embed(part);
    if (got.rows != part.size() || got.data.size() != got.rows * got.dim)
      throw Error("text encoder", "returned " + std::to_string(got.rows) + " embeddings for " +
                                      std::to_string(part.size()) + " prompts");
    if (b == 0) {
      all.dim = got.dim;
      all.data.reserve(n * got.dim);
    } else if (got.dim != all.dim) {
      throw Error("text encoder", "embedding size changed between batches");
    }
    all.data.insert(all.data.end(), got.data.begin(), got.data.end());
    all.rows += got.rows;
    if (progress) progress(e, n);
  }
  return all;
}

std::vector<float> cosine_scores(const float* inputs, size_t n, const float* classes, size_t num_classes, size_t dim) {
  std::vector<float> out(n * num_classes);
  for (size_t i = 0; i < n; ++i) {
    // The engine's own cosine (classify::cosines), so the ranking is the one `classify` gives.
    const std::vector<float> c = classify::cosines(inputs + i * dim, classes, num_classes, dim);
    std::copy(c.begin(), c.end(), out.begin() + static_cast<std::ptrdiff_t>(i * num_classes));
  }
  return out;
}

Evaluation evaluate(const Dataset& data, std::vector<size_t> evaluated,
                    std::vector<std::pair<size_t, std::string>> failed, const float* inputs, size_t dim,
                    const std::vector<TemplateSet>& sets, const std::vector<std::vector<float>>& class_embeds,
                    bool multi_label) {
  if (class_embeds.size() != sets.size()) throw Error("evaluate", "one class embedding matrix per template set needed");
  const size_t K = data.classes.size();
  std::vector<ScoreFn> scorers;
  for (const auto& ce : class_embeds) {
    if (ce.size() != K * dim) throw Error("evaluate", "class embeddings of the wrong size");
    scorers.emplace_back([&ce, inputs, K, dim](size_t n) { return cosine_scores(inputs, n, ce.data(), K, dim); });
  }
  return evaluate_scores(data, std::move(evaluated), std::move(failed), sets, scorers, multi_label);
}

Evaluation evaluate_scores(const Dataset& data, std::vector<size_t> evaluated,
                           std::vector<std::pair<size_t, std::string>> failed, const std::vector<TemplateSet>& sets,
                           const std::vector<ScoreFn>& scorers, bool multi_label) {
  if (scorers.size() != sets.size()) throw Error("evaluate", "one scorer per template set needed");
  const size_t K = data.classes.size();
  Evaluation ev;
  ev.multi_label = multi_label || data.multi_label;
  ev.evaluated = std::move(evaluated);
  ev.failed = std::move(failed);
  const size_t n = ev.evaluated.size();
  std::vector<int> targets;
  std::vector<std::vector<int>> labels;
  std::map<int, std::vector<size_t>> by_fold;  // fold -> rows of the evaluated samples
  for (size_t r = 0; r < n; ++r) {
    const Sample& s = data.samples.at(ev.evaluated[r]);
    if (ev.multi_label) {
      labels.push_back(s.labels);
    } else {
      if (s.labels.size() != 1) throw Error(s.path, "a single-label evaluation needs exactly one label per sample");
      targets.push_back(s.labels[0]);
    }
    if (s.fold != 0) by_fold[s.fold].push_back(r);
  }
  for (size_t si = 0; si < sets.size(); ++si) {
    SetResult r;
    r.set = sets[si];
    const std::vector<float> scores = scorers[si](n);
    if (scores.size() != n * K) throw Error("evaluate", "a score matrix of the wrong size");
    if (ev.multi_label) {
      r.multi = multi_label_metrics(scores.data(), n, K, labels);
    } else {
      r.single = single_label_metrics(scores.data(), n, K, targets);
      for (const auto& [fold, rows] : by_fold) {
        std::vector<float> sub(rows.size() * K);
        std::vector<int> t(rows.size());
        for (size_t j = 0; j < rows.size(); ++j) {
          std::copy(scores.begin() + static_cast<std::ptrdiff_t>(rows[j] * K),
                    scores.begin() + static_cast<std::ptrdiff_t>((rows[j] + 1) * K),
                    sub.begin() + static_cast<std::ptrdiff_t>(j * K));
          t[j] = targets[rows[j]];
        }
        r.folds.emplace_back(fold, single_label_metrics(sub.data(), rows.size(), K, t));
      }
    }
    ev.sets.push_back(std::move(r));
  }
  return ev;
}

nlohmann::ordered_json metrics_json(const SetResult& r, bool multi_label) {
  using J = nlohmann::ordered_json;
  auto num = [](double v) { return std::isfinite(v) ? J(v) : J(nullptr); };
  if (multi_label) return J{{"mean_average_precision", num(r.multi.mean_average_precision)}};
  return J{{"acc1", num(r.single.acc1)},
           {"acc5", num(r.single.acc5)},
           {"mean_per_class_recall", num(r.single.mean_per_class_recall)}};
}

nlohmann::ordered_json to_json(const Dataset& data, const Evaluation& ev, const RunInfo& info, size_t worst_pairs) {
  using J = nlohmann::ordered_json;
  auto num = [](double v) { return std::isfinite(v) ? J(v) : J(nullptr); };
  J j;
  j["dataset"] = data.source;
  j["model"] = info.model;
  j["task"] = "zeroshot_classification";
  j["layout"] = layout_name(data.layout);
  j["modality"] = data.modality;
  j["multi_label"] = ev.multi_label;
  j["samples"] = data.samples.size();
  j["evaluated"] = ev.evaluated.size();
  j["classes"] = data.classes.size();
  if (ev.sets.empty()) return j;
  const SetResult& primary = ev.sets[0];
  j["metrics"] = metrics_json(primary, ev.multi_label);
  j["primary_templates"] = primary.set.name;
  J sets = J::array();
  for (const auto& r : ev.sets) {
    J s{{"name", r.set.name}, {"templates", r.set.templates}, {"metrics", metrics_json(r, ev.multi_label)}};
    if (!r.folds.empty()) {
      J folds = J::array();
      for (const auto& [fold, m] : r.folds)
        folds.push_back({{"fold", fold},
                         {"samples", m.samples},
                         {"acc1", num(m.acc1)},
                         {"acc5", num(m.acc5)},
                         {"mean_per_class_recall", num(m.mean_per_class_recall)}});
      s["per_fold"] = folds;
    }
    sets.push_back(std::move(s));
  }
  j["templates"] = std::move(sets);
  J per_class = J::array();
  for (size_t k = 0; k < data.classes.size(); ++k) {
    J c{{"class", data.classes[k].names[0]}, {"id", data.classes[k].id}};
    if (ev.multi_label) {
      c["positives"] = primary.multi.positives[k];
      c["average_precision"] = num(primary.multi.average_precision[k]);
    } else {
      const ClassStats& s = primary.single.per_class[k];
      c["support"] = s.support;
      c["predicted"] = s.predicted;
      c["correct"] = s.correct;
      c["precision"] = num(s.precision);
      c["recall"] = num(s.recall);
    }
    per_class.push_back(std::move(c));
  }
  j["per_class"] = std::move(per_class);
  if (!ev.multi_label) {
    J conf = J::array();
    for (const auto& c : primary.single.confusion) conf.push_back({c.truth, c.predicted, c.count});
    j["confusion"] = std::move(conf);
    J worst = J::array();
    for (const auto& c : worst_confused(primary.single.confusion, worst_pairs)) {
      std::string example;
      for (size_t r = 0; r < ev.evaluated.size() && example.empty(); ++r)
        if (data.samples[ev.evaluated[r]].labels[0] == c.truth && primary.single.top1[r] == c.predicted)
          example = data.samples[ev.evaluated[r]].path;
      worst.push_back({{"true", data.classes[static_cast<size_t>(c.truth)].names[0]},
                       {"predicted", data.classes[static_cast<size_t>(c.predicted)].names[0]},
                       {"count", c.count},
                       {"example", example}});
    }
    j["worst_confused"] = std::move(worst);
  }
  J failures = J::array();
  for (const auto& [i, e] : ev.failed) failures.push_back({{"path", data.samples.at(i).path}, {"error", e}});
  j["failures"] = std::move(failures);
  if (!info.cache.empty()) j["cache"] = info.cache;
  j["embedded"] = info.embedded;
  j["from_cache"] = info.from_cache;
  j["seconds"] = {{"total", info.seconds_total}, {"text", info.seconds_text}, {"inputs", info.seconds_inputs}};
  if (!info.head.empty()) j["head"] = info.head;
  if (!info.shot_curve.empty()) {
    J curve = J::array();
    for (const auto& p : info.shot_curve) curve.push_back({{"shots", p.shots}, {"train", p.train}, {"score", p.score}});
    j["few_shot"] = {{"method", info.shot_method},
                     {"metric", info.shot_metric},
                     {"test", info.shot_test},
                     {"zero_shot", info.shot_zero_shot},
                     {"curve", std::move(curve)}};
  }
  return j;
}

}  // namespace zeroshot::eval
