// zeroshot fit: a few-shot head (linear probe, zero-init, Tip-Adapter) from a labeled data set, written as a
// safetensors file that classify / eval / serve --head use. The math is src/classify/few_shot.h; the data set
// readers and embedding paths are eval's (eval_inputs.h).
#include <chrono>
#include <cmath>
#include <cstdio>

#include "classify/few_shot.h"
#include "cli_common.h"
#include "commands.h"
#include "eval/datasets.h"
#include "eval/evaluate.h"
#include "eval_inputs.h"
#include "exit_codes.h"
#include "fit_common.h"

namespace zeroshot::cli {

classify::LabeledEmbeddings labeled_embeddings(const eval::Dataset& d, const Inputs& in, size_t dim, bool multi_label) {
  classify::LabeledEmbeddings l;
  l.dim = dim;
  l.num_classes = d.classes.size();
  l.n = in.evaluated.size();
  l.x = in.rows;
  l.multi_label = multi_label || d.multi_label;
  for (size_t i : in.evaluated) {
    const auto& labels = d.samples[i].labels;
    if (l.multi_label) {
      std::vector<uint8_t> t(l.num_classes, 0);
      for (int c : labels) t[static_cast<size_t>(c)] = 1;
      l.targets.insert(l.targets.end(), t.begin(), t.end());
    } else {
      if (labels.size() != 1) throw Error(d.samples[i].path, "a single-label fit needs exactly one label per sample");
      l.y.push_back(labels[0]);
    }
  }
  return l;
}

std::vector<std::string> class_labels(const eval::Dataset& d) {
  std::vector<std::string> out;
  for (const auto& c : d.classes) out.push_back(c.names[0]);
  return out;
}

std::vector<float> zero_shot_weights(const Model& model, const eval::Dataset& d, const EvalArgs& a) {
  const auto sets = eval::resolve_template_sets(a.templates, model.default_template());
  return class_embeddings(model, d, {sets[0]}, a)[0];
}

classify::FitOptions fit_options(const Model& model, const EvalArgs& a, classify::FewShotMethod m,
                                 const std::vector<float>* zero_shot) {
  classify::FitOptions o;
  o.method = m;
  o.seed = a.model.seed;
  o.scale = model.logit_scale();
  o.zero_shot = zero_shot ? zero_shot->data() : nullptr;
  return o;
}

namespace {

struct FitArgs {
  EvalArgs e;
  std::string output;
  size_t shots = 0;  // 0: all
};

int run(const FitArgs& f) {
  const auto t0 = std::chrono::steady_clock::now();
  const EvalArgs& a = f.e;
  const auto method = classify::parse_method(a.method);
  (void)eval::resolve_template_sets(a.templates);  // bad --templates before the model loads
  eval::ReadOptions ro;
  ro.layout = eval::parse_layout(a.layout);
  ro.class_map = a.class_map;
  if (!a.labels.lists.empty() || !a.labels.exact.empty() || !a.labels.sets.empty() || !a.labels.file.empty())
    ro.classes = resolve_labels(a.labels);
  const eval::Dataset d = eval::read_dataset(a.data, ro);
  for (const auto& w : d.warnings) std::fprintf(stderr, "zeroshot: warning: %s\n", w.c_str());
  auto model = a.model.load(a.quiet);
  if ((d.modality == "audio") != (model->modality() == Modality::Audio))
    throw Error(a.data, "the data's modality (" + d.modality + ") is not the model's");
  std::string cache_used;
  const Inputs in = embed_dataset(*model, d, a, &cache_used);
  if (in.evaluated.empty())
    throw Error(a.data, "none of the " + std::to_string(d.samples.size()) + " files could be read");
  classify::LabeledEmbeddings all = labeled_embeddings(d, in, model->embedding_dim(), a.multi_label);
  if (f.shots > 0) {
    std::vector<std::pair<size_t, size_t>> short_classes;
    all = classify::rows_of(all, classify::select_shots(all, f.shots, a.model.seed, &short_classes));
    for (const auto& [c, have] : short_classes)
      std::fprintf(stderr, "zeroshot: warning: class \"%s\" has %zu of the %zu shots asked for; it uses them all\n",
                   d.classes[c].names[0].c_str(), have, f.shots);
  }
  // A class without any (readable) sample: named here, with the data set's own name for it.
  std::vector<size_t> count(all.num_classes, 0);
  for (size_t i = 0; i < all.n; ++i)
    for (size_t c = 0; c < all.num_classes; ++c)
      count[c] += all.multi_label ? all.targets[i * all.num_classes + c] : all.y[i] == static_cast<int>(c);
  if (method == classify::FewShotMethod::Linear)
    for (size_t c = 0; c < count.size(); ++c)
      if (count[c] == 0)
        throw Error(a.data, "class \"" + d.classes[c].names[0] +
                                "\" has no readable samples (a linear probe could never predict it; zero-init and "
                                "tip-adapter keep its zero-shot weights)");
  std::vector<float> zs;
  if (method != classify::FewShotMethod::Linear) zs = zero_shot_weights(*model, d, a);
  const classify::Head h = classify::fit_head(all, fit_options(*model, a, method, &zs));
  std::map<std::string, std::string> extra = {{"model", a.model.model},
                                              {"data", a.data},
                                              {"seed", std::to_string(a.model.seed)},
                                              {"shots", std::to_string(f.shots)},
                                              {"logit_scale", std::to_string(model->logit_scale())},
                                              {"embeddings", cache_used.empty() ? "engine" : "index:" + cache_used}};
  classify::save_head(f.output, h, class_labels(d), model->fingerprint(), extra);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!a.quiet) {
    std::printf("%s head: %zu classes, %zu samples (%zu train + %zu validation), %s\n", classify::method_name(method),
                h.num_classes, all.n, h.train, h.validation, all.multi_label ? "multi-label" : "single-label");
    if (method == classify::FewShotMethod::TipAdapter)
      std::printf("  alpha %.2f  beta %.2f  (leave-one-out accuracy %.2f%%)\n", h.alpha, h.beta,
                  100 * h.validation_score);
    else if (std::isfinite(h.validation_score))
      std::printf("  C %.4g  (validation %s %.4f)\n", h.C, all.multi_label ? "-BCE" : "accuracy", h.validation_score);
    else std::printf("  C %.4g  (no validation rows: scikit-learn's default)\n", h.C);
    std::printf("  written to %s in %.1f s\n", f.output.c_str(), secs);
  }
  return in.failed.empty() ? kExitOk : kExitSomeInputsFailed;
}

}  // namespace

void add_fit_command(CLI::App& app, std::function<int()>* action) {
  auto f = std::make_shared<FitArgs>();
  EvalArgs& a = f->e;
  CLI::App* c = app.add_subcommand("fit", "Fit a few-shot head (linear probe, zero-init, Tip-Adapter) on labeled data");
  a.model.add_to(*c);
  c->add_option("-d,--data", a.data, "Labeled data, as eval reads it (class folders, CSV/TSV, <id>_<class> files)")
      ->required();
  c->add_option("-o,--output", f->output, "The head file to write (safetensors)")->required();
  c->add_option("--layout", a.layout, "Data layout: auto, folder, csv, filename, esc50")->default_val("auto");
  a.labels.add_to(*c);
  c->add_option("--labels-file", a.labels.file, "Class names, one per line");
  c->add_option("--class-map", a.class_map, "File mapping class ids to names (as eval)");
  c->add_option("--shots", f->shots, "Use at most K samples per class (a seeded draw); 0: all")->default_val(0);
  c->add_option("--method", a.method, "linear (logistic regression), zero-init, tip-adapter")
      ->check(CLI::IsMember({"linear", "zero-init", "tip-adapter"}))
      ->default_val("linear");
  c->add_flag("--multi-label", a.multi_label, "One logistic per label (binary cross-entropy); linear only");
  c->add_option("--templates", a.templates, "Zero-shot templates (zero-init, tip-adapter): as eval's first set")
      ->delimiter(',');
  c->add_option("-b,--batch-size", a.batch, "Images encoded together")->default_val(16)->check(CLI::Range(1, 1024));
  c->add_flag("--cache", a.cache, "Keep image embeddings in an index database, as eval --cache");
  c->add_option("--db", a.db, "The index database to cache image embeddings in (implies --cache)");
  c->add_option("--label-cache", a.label_cache, "Folder of the label-embedding cache (\"none\" to disable)");
  c->add_flag("-q,--quiet", a.quiet, "No progress bars or summary");
  c->footer(
      "linear: L2-regularized logistic regression on the normalized embeddings (scikit-learn's objective\n"
      "C * sum loss + |W|^2 / 2), C chosen on a seeded validation split (a quarter of each class) by a\n"
      "log-spaced sweep 1e-6..1e6 refined around the best, then refit on all samples (the CLIP paper's protocol).\n"
      "zero-init: the same, started from and regularized toward the zero-shot weights (x logit scale).\n"
      "tip-adapter: zero-shot logits + alpha * exp(-beta (1 - cos)) @ one-hot labels of the shots, alpha and beta\n"
      "by leave-one-out accuracy. A class with fewer samples than --shots uses all it has (a warning names it).\n"
      "--seed seeds the shot draw and the validation split (and, for audio models, --crop random).");
  c->callback([f, action] { *action = [f] { return run(*f); }; });
}

}  // namespace zeroshot::cli
