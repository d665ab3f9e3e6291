// zeroshot eval: zero-shot accuracy on a labeled data set (CLIP_benchmark's metrics), template sets side by side,
// optional HTML report. The pieces live in src/eval/; this file wires them to the model, the caches and the terminal.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "classify/few_shot.h"
#include "classify/label_cache.h"
#include "classify/label_sets.h"
#include "classify/zero_shot.h"
#include "cli_common.h"
#include "commands.h"
#include "eval/datasets.h"
#include "eval/evaluate.h"
#include "eval/report.h"
#include "eval_inputs.h"
#include "exit_codes.h"
#include "fit_common.h"
#include "image/image.h"
#include "index/fingerprint.h"
#include "index_cli.h"
#include "util/progress.h"

namespace zeroshot::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Distinct files (a CSV may name one file twice) and the samples of each.
std::vector<std::string> distinct_paths(const eval::Dataset& d, std::vector<size_t>* file_of_sample) {
  std::map<std::string, size_t> index;
  std::vector<std::string> paths;
  file_of_sample->resize(d.samples.size());
  for (size_t i = 0; i < d.samples.size(); ++i) {
    auto [it, fresh] = index.emplace(d.samples[i].path, paths.size());
    if (fresh) paths.push_back(d.samples[i].path);
    (*file_of_sample)[i] = it->second;
  }
  return paths;
}

// Gathers per-file results (embedding or error) into per-sample rows.
void collect(const eval::Dataset& d, const std::vector<size_t>& file_of_sample, const std::vector<const float*>& emb,
             const std::vector<std::string>& err, size_t dim, Inputs* in) {
  for (size_t i = 0; i < d.samples.size(); ++i) {
    const size_t f = file_of_sample[i];
    if (emb[f]) {
      in->evaluated.push_back(i);
      in->rows.insert(in->rows.end(), emb[f], emb[f] + dim);
    } else {
      in->failed.emplace_back(i, err[f].empty() ? d.samples[i].path + ": not embedded" : err[f]);
    }
  }
}

Inputs embed_direct(const Model& model, const eval::Dataset& d, const EvalArgs& a) {
  std::vector<size_t> file_of_sample;
  const auto paths = distinct_paths(d, &file_of_sample);
  const size_t dim = model.embedding_dim();
  std::vector<float> store(paths.size() * dim);
  std::vector<const float*> emb(paths.size(), nullptr);
  std::vector<std::string> err(paths.size());
  const bool audio = model.modality() == Modality::Audio;
  util::ProgressBar bar(audio ? "clips" : "images", paths.size(), !a.quiet, 0, util::ProgressUnit::Items);
  model.embed_files(paths, a.batch, [&](size_t i, const float* e, const std::string& error) {
    if (e) {
      std::copy(e, e + dim, store.begin() + static_cast<std::ptrdiff_t>(i * dim));
      emb[i] = store.data() + i * dim;
    } else {
      err[i] = explain_limits(error);
      bar.clear();
      std::fprintf(stderr, "zeroshot: %s\n", error.c_str());
    }
    bar.tick();
    return true;
  });
  bar.finish();
  Inputs in;
  in.embedded = static_cast<size_t>(std::count_if(emb.begin(), emb.end(), [](const float* p) { return p; }));
  collect(d, file_of_sample, emb, err, dim, &in);
  return in;
}

// The default embedding cache: an index database (the store `zeroshot index` and `search` use) of its own per
// model, beside the search index, so evaluation images never show up in search results.
std::string default_cache_db(const Model& model) {
  const fs::path dir = fs::path(index::default_db_path()).parent_path() / "eval-cache";
  return (dir / (model.fingerprint().substr(0, 16) + ".db")).string();
}

Inputs embed_cached(const Model& model, const eval::Dataset& d, const EvalArgs& a, std::string* db_used) {
  std::vector<size_t> file_of_sample;
  const auto paths = distinct_paths(d, &file_of_sample);
  IndexCliArgs ia;
  ia.db = a.db.empty() ? default_cache_db(model) : a.db;
  ia.batch = a.batch;
  *db_used = ia.db;
  index::Store store = open_store(ia, model, true);
  // Roots: the folders holding the files (one root per file would make scope checks quadratic), plus files whose
  // names a folder walk would skip.
  std::set<std::string> roots;
  std::vector<std::string> abs(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    abs[i] = index::absolute_path(paths[i]);
    roots.insert(image::has_image_extension(abs[i]) ? fs::path(abs[i]).parent_path().string() : abs[i]);
  }
  const index::IndexReport rep = run_indexing(store, model, {roots.begin(), roots.end()}, ia, a.quiet);
  if (rep.interrupted) throw Error(ia.db, "interrupted (what was embedded is kept; run again to go on)");
  const index::Scope scope(roots.begin(), roots.end());
  const index::Vectors vecs = store.vectors(scope);
  std::map<int64_t, size_t> row_of_id;
  for (size_t r = 0; r < vecs.rows(); ++r) row_of_id.emplace(vecs.ids[r], r);
  std::map<std::string, const float*> by_path;
  for (const auto& im : store.images(scope)) {
    auto it = row_of_id.find(im.id);
    if (it != row_of_id.end()) by_path.emplace(im.path, vecs.row(it->second));
  }
  std::map<std::string, std::string> errors;
  for (const auto& f : store.failures(scope)) errors.emplace(f.path, f.error);
  for (const auto& [p, e] : rep.failures) errors[index::absolute_path(p)] = e;

  std::vector<const float*> emb(paths.size(), nullptr);
  std::vector<std::string> err(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    auto it = by_path.find(abs[i]);
    if (it != by_path.end()) {
      emb[i] = it->second;
      continue;
    }
    auto e = errors.find(abs[i]);
    err[i] = e == errors.end() ? paths[i] + ": not in the cache after indexing" : e->second;
    if (err[i].rfind(paths[i], 0) != 0 && err[i].rfind(abs[i], 0) != 0) err[i] = paths[i] + ": " + err[i];
    err[i] = explain_limits(err[i]);
    std::fprintf(stderr, "zeroshot: %s\n", err[i].c_str());
  }
  Inputs in;
  in.embedded = rep.embedded;
  const size_t found = static_cast<size_t>(std::count_if(emb.begin(), emb.end(), [](const float* p) { return p; }));
  in.from_cache = found > rep.embedded ? found - rep.embedded : 0;
  collect(d, file_of_sample, emb, err, vecs.dim, &in);
  return in;
}

}  // namespace

Inputs embed_dataset(const Model& model, const eval::Dataset& d, const EvalArgs& a, std::string* cache_used) {
  return a.cache || !a.db.empty() ? embed_cached(model, d, a, cache_used) : embed_direct(model, d, a);
}

// Each set's class embeddings: from the label-embedding disk cache when there (the key ZeroShotClassifier uses, so
// `classify` and `eval` share entries), else from one shared pass of the text encoder over every missing prompt.
std::vector<std::vector<float>> class_embeddings(const Model& model, const eval::Dataset& d,
                                                 const std::vector<eval::TemplateSet>& sets, const EvalArgs& a) {
  const size_t dim = model.embedding_dim();
  std::vector<std::vector<std::string>> names;
  for (const auto& c : d.classes) names.push_back(c.names);
  const std::string dir = classify::resolve_cache_dir(a.label_cache);
  std::vector<std::vector<float>> out(sets.size());
  std::vector<std::string> files(sets.size());
  std::vector<std::array<uint8_t, 32>> keys(sets.size());
  std::vector<eval::TemplateSet> missing;
  std::vector<size_t> missing_at;
  for (size_t s = 0; s < sets.size(); ++s) {
    if (!dir.empty()) {
      keys[s] = classify::label_cache_key(model.fingerprint(), names, sets[s].templates);
      files[s] = classify::label_cache_path(dir, keys[s]);
      if (classify::load_label_embeddings(files[s], keys[s], d.classes.size(), dim, &out[s])) continue;
    }
    missing.push_back(sets[s]);
    missing_at.push_back(s);
  }
  if (missing.empty()) return out;
  const eval::PromptPlan plan = eval::plan_prompts(d.classes, missing);
  util::ProgressBar bar("prompts", plan.prompts.size(), !a.quiet, 0, util::ProgressUnit::Items);
  const Embeddings pe = eval::embed_prompts(
      plan, [&](const std::vector<std::string>& t) { return model.embed_texts(t); }, 512,
      [&](size_t done, size_t) { bar.update(done); });
  bar.finish();
  for (size_t m = 0; m < missing.size(); ++m) {
    const size_t s = missing_at[m];
    out[s] = eval::class_embeddings(plan, m, pe.data.data(), dim);
    if (!dir.empty()) classify::store_label_embeddings(files[s], keys[s], d.classes.size(), dim, out[s].data());
  }
  return out;
}

namespace {

std::string pct(double v) {
  if (!std::isfinite(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f%%", 100 * v);
  return b;
}

void print_table(const eval::Dataset& d, const eval::Evaluation& ev, const eval::RunInfo& info, size_t show_classes) {
  std::printf("%s: %zu of %zu %s evaluated, %zu classes (%s layout, %s), model %s\n", d.source.c_str(),
              ev.evaluated.size(), d.samples.size(), d.modality == "audio" ? "clips" : "images", d.classes.size(),
              eval::layout_name(d.layout), ev.multi_label ? "multi-label" : "single-label", info.model.c_str());
  size_t w = 12;
  for (const auto& r : ev.sets) w = std::max(w, std::min<size_t>(r.set.name.size(), 40));
  if (ev.multi_label) {
    std::printf("\n  %-*s  %9s  %22s\n", static_cast<int>(w), "templates", "prompts", "mean_average_precision");
    for (const auto& r : ev.sets)
      std::printf("  %-*.*s  %9zu  %22s\n", static_cast<int>(w), 40, r.set.name.c_str(), r.set.templates.size(),
                  pct(r.multi.mean_average_precision).c_str());
  } else {
    std::printf("\n  %-*s  %9s  %8s  %8s  %21s\n", static_cast<int>(w), "templates", "prompts", "acc1", "acc5",
                "mean_per_class_recall");
    for (const auto& r : ev.sets)
      std::printf("  %-*.*s  %9zu  %8s  %8s  %21s\n", static_cast<int>(w), 40, r.set.name.c_str(),
                  r.set.templates.size(), pct(r.single.acc1).c_str(), pct(r.single.acc5).c_str(),
                  pct(r.single.mean_per_class_recall).c_str());
  }
  const eval::SetResult& p = ev.sets[0];
  if (!ev.multi_label && !p.folds.empty()) {
    std::printf("\n  per fold (%s):\n", p.set.name.c_str());
    for (const auto& [fold, m] : p.folds)
      std::printf("    fold %-3d  %6zu samples  acc1 %8s  acc5 %8s\n", fold, m.samples, pct(m.acc1).c_str(),
                  pct(m.acc5).c_str());
  }
  if (!ev.multi_label) {
    const auto worst = eval::worst_confused(p.single.confusion, 10);
    if (!worst.empty()) {
      std::printf("\n  worst-confused pairs (%s): true -> predicted\n", p.set.name.c_str());
      for (const auto& c : worst)
        std::printf("    %4zux  %s -> %s\n", c.count, d.classes[static_cast<size_t>(c.truth)].names[0].c_str(),
                    d.classes[static_cast<size_t>(c.predicted)].names[0].c_str());
    }
  }
  if (d.classes.size() <= show_classes) {
    size_t cw = 5;
    for (const auto& c : d.classes) cw = std::max(cw, std::min<size_t>(c.names[0].size(), 40));
    std::printf("\n  per class (%s):\n", p.set.name.c_str());
    if (ev.multi_label) {
      std::printf("    %-*s  %9s  %9s\n", static_cast<int>(cw), "class", "positives", "AP");
      for (size_t k = 0; k < d.classes.size(); ++k)
        std::printf("    %-*.*s  %9zu  %9s\n", static_cast<int>(cw), 40, d.classes[k].names[0].c_str(),
                    p.multi.positives[k], pct(p.multi.average_precision[k]).c_str());
    } else {
      std::printf("    %-*s  %7s  %9s  %7s  %9s  %8s\n", static_cast<int>(cw), "class", "support", "predicted",
                  "correct", "precision", "recall");
      for (size_t k = 0; k < d.classes.size(); ++k) {
        const auto& c = p.single.per_class[k];
        std::printf("    %-*.*s  %7zu  %9zu  %7zu  %9s  %8s\n", static_cast<int>(cw), 40, d.classes[k].names[0].c_str(),
                    c.support, c.predicted, c.correct, pct(c.precision).c_str(), pct(c.recall).c_str());
      }
    }
  } else {
    std::printf("\n  (%zu classes: per-class figures are in --report and --output)\n", d.classes.size());
  }
  std::printf("\n  %.1f s (text %.1f s, %s %.1f s%s)\n", info.seconds_total, info.seconds_text,
              d.modality == "audio" ? "clips" : "images", info.seconds_inputs,
              info.cache.empty() ? "" : (", " + std::to_string(info.from_cache) + " from the cache").c_str());
}

// --labels, --label, --label-set, --labels-file. A built-in set's repeated names (CLIP's ImageNet list has two
// "missile" and two "sunglasses" classes, as OpenAI's published evaluation does) are kept; the data set reader
// warns about them.
std::vector<std::vector<std::string>> given_classes(const EvalArgs& a) {
  const LabelArgs& l = a.labels;
  if (l.lists.empty() && l.exact.empty() && l.sets.empty() && l.file.empty()) return {};
  return resolve_labels(l);
}

// Scores of a head for the evaluated rows (rows[i] when given, else 0..n-1) of `inputs`.
eval::ScoreFn head_scorer(const classify::Head& h, const float* inputs, const std::vector<size_t>* rows, size_t dim) {
  return [&h, inputs, rows, dim](size_t n) {
    std::vector<float> out;
    out.reserve(n * h.num_classes);
    for (size_t i = 0; i < n; ++i) {
      const auto s = classify::head_scores(h, inputs + (rows ? (*rows)[i] : i) * dim);
      out.insert(out.end(), s.begin(), s.end());
    }
    return out;
  };
}

double primary_metric(const eval::Evaluation& ev) {
  return ev.multi_label ? ev.sets[0].multi.mean_average_precision : ev.sets[0].single.acc1;
}

// eval --shots: the test rows are those outside the largest k's draw, the same for every k and for zero-shot.
void shot_curve(const Model& model, const eval::Dataset& d, const Inputs& in,
                const std::vector<eval::TemplateSet>& sets, const std::vector<float>& zero_shot, const EvalArgs& a,
                eval::RunInfo* info) {
  const auto method = classify::parse_method(a.method);
  const size_t dim = model.embedding_dim();
  const classify::LabeledEmbeddings all = labeled_embeddings(d, in, dim, a.multi_label);
  const size_t kmax = *std::max_element(a.shots.begin(), a.shots.end());
  std::vector<std::pair<size_t, size_t>> short_classes;
  const auto pool = classify::select_shots(all, kmax, a.model.seed, &short_classes);
  for (const auto& [c, have] : short_classes)
    std::fprintf(stderr,
                 "zeroshot: warning: class \"%s\" has %zu samples, fewer than %zu shots: all go to training, "
                 "none to the test rows\n",
                 d.classes[c].names[0].c_str(), have, kmax);
  std::vector<size_t> test_rows, test_samples;
  for (size_t r = 0, j = 0; r < all.n; ++r) {
    if (j < pool.size() && pool[j] == r) {
      ++j;
      continue;
    }
    test_rows.push_back(r);
    test_samples.push_back(in.evaluated[r]);
  }
  if (test_rows.empty())
    throw Error(a.data, "no samples left to test on after drawing " + std::to_string(kmax) + " shots per class");
  const bool multi = all.multi_label;
  const auto zs_eval = eval::evaluate_scores(d, test_samples, {}, {sets[0]}, {[&](size_t n) {
                                               std::vector<float> out;
                                               for (size_t i = 0; i < n; ++i) {
                                                 const auto c =
                                                     classify::cosines(in.rows.data() + test_rows[i] * dim,
                                                                       zero_shot.data(), d.classes.size(), dim);
                                                 out.insert(out.end(), c.begin(), c.end());
                                               }
                                               return out;
                                             }},
                                             multi);
  info->shot_method = classify::method_name(method);
  info->shot_metric = multi ? "mean_average_precision" : "acc1";
  info->shot_zero_shot = primary_metric(zs_eval);
  info->shot_test = test_rows.size();
  std::vector<size_t> ks = a.shots;
  std::sort(ks.begin(), ks.end());
  ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
  util::ProgressBar bar("fits", ks.size(), !a.quiet, 0, util::ProgressUnit::Items);
  for (size_t k : ks) {
    const auto rows = classify::select_shots(all, k, a.model.seed);
    const classify::LabeledEmbeddings train = classify::rows_of(all, rows);
    std::vector<size_t> count(all.num_classes, 0);
    for (size_t i = 0; i < train.n; ++i)
      for (size_t c = 0; c < all.num_classes; ++c)
        count[c] += multi ? train.targets[i * all.num_classes + c] : train.y[i] == static_cast<int>(c);
    if (method == classify::FewShotMethod::Linear && std::find(count.begin(), count.end(), 0) != count.end())
      throw Error(a.data, "a class has no readable samples; a linear probe cannot be fitted (try --method zero-init)");
    const classify::Head h = classify::fit_head(train, fit_options(model, a, method, &zero_shot));
    const auto ev =
        eval::evaluate_scores(d, test_samples, {}, {sets[0]}, {head_scorer(h, in.rows.data(), &test_rows, dim)}, multi);
    info->shot_curve.push_back({k, train.n, primary_metric(ev)});
    bar.tick();
  }
  bar.finish();
}

void print_shot_curve(const eval::RunInfo& info) {
  std::printf("\n  k-shot curve (%s head, %s over %zu held-out samples; zero-shot %s):\n", info.shot_method.c_str(),
              info.shot_metric.c_str(), info.shot_test, pct(info.shot_zero_shot).c_str());
  std::printf("    %6s  %8s  %9s  %9s\n", "shots", "train", "few-shot", "vs zero");
  for (const auto& p : info.shot_curve)
    std::printf("    %6zu  %8zu  %9s  %+8.2f\n", p.shots, p.train, pct(p.score).c_str(),
                100 * (p.score - info.shot_zero_shot));
}

int run(const EvalArgs& a) {
  const auto t0 = Clock::now();
  const Format fmt = resolve_format(a.format);
  std::vector<std::string> items = a.templates;
  items.insert(items.end(), a.template_text.begin(), a.template_text.end());
  (void)eval::resolve_template_sets(items);  // bad --templates are reported before the model loads

  eval::ReadOptions ro;
  ro.layout = eval::parse_layout(a.layout);
  ro.class_map = a.class_map;
  ro.fold = a.fold;
  ro.classes = given_classes(a);
  const eval::Dataset d = eval::read_dataset(a.data, ro);
  for (const auto& w : d.warnings) std::fprintf(stderr, "zeroshot: warning: %s\n", w.c_str());
  const bool audio_data = d.modality == "audio";
  if (audio_data && (a.cache || !a.db.empty()))
    throw Error(a.data, "--cache / --db keep image embeddings; audio clips (the esc50 layout) are embedded directly");

  auto model = a.model.load(a.quiet);
  if (audio_data != (model->modality() == Modality::Audio))
    throw Error(a.data, "the " + std::string(eval::layout_name(d.layout)) + " layout holds " +
                            (audio_data ? "audio clips" : "images") + ", and " + a.model.model + " is an " +
                            (audio_data ? "image" : "audio") + " model");
  // "default" (and no --templates) means the model's own template: the audio pipeline's for CLAP.
  const auto sets = eval::resolve_template_sets(items, model->default_template());
  eval::RunInfo info;
  info.model = a.model.model;

  std::optional<classify::LoadedHead> head;
  if (!a.head.empty()) {
    head = classify::load_head(a.head, model->fingerprint());
    classify::check_head_labels(a.head, *head, class_labels(d));
    info.head = a.head;
  }

  auto t = Clock::now();
  // A head scores without the text encoder; the k-shot curve compares with the primary set's zero-shot scores.
  std::vector<std::vector<float>> class_embeds;
  if (!head || !a.shots.empty()) class_embeds = class_embeddings(*model, d, sets, a);
  info.seconds_text = seconds_since(t);

  t = Clock::now();
  Inputs in = embed_dataset(*model, d, a, &info.cache);
  info.seconds_inputs = seconds_since(t);
  info.embedded = in.embedded;
  info.from_cache = in.from_cache;
  if (in.evaluated.empty())
    throw Error(a.data, "none of the " + std::to_string(d.samples.size()) + " files could be read");

  const size_t dim = model->embedding_dim();
  const eval::Evaluation ev =
      head ? eval::evaluate_scores(
                 d, in.evaluated, in.failed, {{std::string("head: ") + classify::method_name(head->head.method), {}}},
                 {head_scorer(head->head, in.rows.data(), nullptr, dim)}, a.multi_label || head->head.multi_label)
           : eval::evaluate(d, in.evaluated, in.failed, in.rows.data(), dim, sets, class_embeds, a.multi_label);
  if (!a.shots.empty()) shot_curve(*model, d, in, sets, class_embeds[0], a, &info);
  info.seconds_total = seconds_since(t0);

  if (!a.output.empty()) {
    std::ofstream out(a.output, std::ios::binary | std::ios::trunc);
    out << eval::to_json(d, ev, info).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    if (!out) throw Error(a.output, "cannot write");
  }
  if (!a.report.empty()) {
    eval::ReportOptions ro2;
    ro2.max_pixels = static_cast<uint64_t>(std::llround(a.model.max_megapixels * 1e6));
    eval::write_report(a.report, d, ev, info, ro2);
    if (!a.quiet) std::fprintf(stderr, "zeroshot: report written to %s\n", a.report.c_str());
  }
  if (fmt == Format::Json) {
    std::printf("%s\n",
                eval::to_json(d, ev, info).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    print_table(d, ev, info, a.show_classes);
    if (!info.shot_curve.empty()) print_shot_curve(info);
  }
  if (!ev.failed.empty()) {
    std::fprintf(stderr, "zeroshot: %zu of %zu files could not be read; the metrics are over the other %zu\n",
                 ev.failed.size(), d.samples.size(), ev.evaluated.size());
    return kExitSomeInputsFailed;
  }
  return kExitOk;
}

}  // namespace

void add_eval_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* c = app.add_subcommand("eval", "Measure zero-shot accuracy on a labeled data set (CLIP_benchmark metrics)");
  a->model.add_to(*c);
  c->add_option("-d,--data", a->data,
                "Labeled data: a folder of class sub-folders, a CSV/TSV of path,label[,label...], or a folder of "
                "<id>_<class>.<ext> files")
      ->required();
  c->add_option("--layout", a->layout, "Data layout: auto, folder, csv, filename, esc50")->default_val("auto");
  a->labels.add_to(*c);  // the data's classes by name (extra names are distractors), or renamed in order
  c->add_option("--labels-file", a->labels.file, "Class names, one per line");
  c->add_option("--class-map", a->class_map,
                "File mapping class ids (folder names, file-name prefixes, CSV labels) to names: lines \"id name\" "
                "(tab, comma or space) or JSON {\"id\": \"name\"} / {\"0\": [\"id\", \"name\"]}");
  c->add_option("--templates", a->templates,
                "Template sets to compare, comma-separated: default, imagenet80, imagenet7, a label set's name, or a "
                "template with {}; with several, their ensemble is added. The first is the primary")
      ->delimiter(',');
  c->add_option("-t,--template", a->template_text, "A template with {} (repeatable; each is one more set)");
  c->add_flag("--multi-label", a->multi_label,
              "Score as multi-label (mean average precision) even when every sample has one label");
  c->add_option(
       "--fold", a->fold,
       "ESC-50 (needs an audio model; default template \"This is a sound of {}.\", --label-set esc50 names the 50 "
       "classes): evaluate this fold only (1-5); default all, reported per fold")
      ->default_val(0)
      ->check(CLI::Range(0, 1000));
  c->add_option("--report", a->report, "Write a self-contained HTML report here");
  c->add_option("-o,--output", a->output, "Write the JSON results here (CLIP_benchmark's keys)");
  c->add_option("-b,--batch-size", a->batch, "Images (or audio clips) encoded together")
      ->default_val(16)
      ->check(CLI::Range(1, 1024));
  c->add_flag("--cache", a->cache,
              "Keep image embeddings in an index database (the store of `zeroshot index`), one per model, so a "
              "re-run only embeds new or changed files");
  c->add_option("--db", a->db,
                "The index database to cache image embeddings in (implies --cache), e.g. your search index");
  c->add_option("--label-cache", a->label_cache,
                "Folder of the label-embedding cache (default ~/.cache/zeroshot; \"none\" to disable)");
  c->add_option("--show-classes", a->show_classes, "Print the per-class table when there are at most this many classes")
      ->default_val(30);
  c->add_option("--head", a->head, "Score with a few-shot head (zeroshot fit) instead of the templates");
  c->add_option("--shots", a->shots,
                "The k-shot curve: fit a head on k samples per class for each k (e.g. 1,2,4,8,16) and score it on "
                "the held-out rest, against zero-shot")
      ->delimiter(',')
      ->check(CLI::Range(1, 100000));
  c->add_option("--method", a->method, "The curve's heads: linear, zero-init, tip-adapter")
      ->check(CLI::IsMember({"linear", "zero-init", "tip-adapter"}))
      ->default_val("linear");
  add_format_option(*c, &a->format);
  c->add_flag("-q,--quiet", a->quiet, "No progress bars");
  c->footer(
      "Metrics (as CLIP_benchmark): acc1, acc5 (null under 5 classes), mean_per_class_recall (balanced accuracy),\n"
      "per-class precision/recall and confusion counts; multi-label data (CSV rows with several labels, or\n"
      "--multi-label): mean_average_precision and per-label AP, ranking by cosine. Scores are cosines with the\n"
      "ensembled class embeddings (the ranking of the softmax `classify` prints). Unreadable files are listed,\n"
      "left out of the metrics, and make the exit code 1.\n"
      "JSON: {\"dataset\", \"model\", \"task\", \"metrics\": {...}, \"templates\": [{\"name\", \"templates\", "
      "\"metrics\"}],\n"
      "\"per_class\", \"confusion\": [[true, predicted, count]], \"worst_confused\", \"failures\", \"seconds\", ...}");
  c->callback([a, action] { *action = [a] { return run(*a); }; });
}

}  // namespace zeroshot::cli
