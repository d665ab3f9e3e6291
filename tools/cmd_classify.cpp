// zeroshot classify: zero-shot classification of image files and folders.
#include <cstdio>
#include <iostream>

#include "classify/few_shot.h"
#include "classify/multi_label.h"
#include "classify/zero_shot.h"
#include "cli_common.h"
#include "commands.h"
#include "exit_codes.h"
#include "url_inputs.h"
#include "util/progress.h"
#include "util/trace.h"
#include "zeroshot/tagging.h"

namespace zeroshot::cli {

namespace {

struct ClassifyArgs {
  ModelArgs model;
  UrlArgs url;  // http(s):// inputs: --max-download-mb, --download-timeout
  std::vector<std::string> inputs;
  LabelArgs labels;  // labels.file: --labels-file
  std::vector<std::string> templates;
  std::string templates_set;
  size_t top_k = 0;
  size_t batch = 8;
  std::string format;
  bool quiet = false;
  bool no_cache = false;  // label-embedding disk cache (ClassifierOptions::cache_dir)
  // --multi-label (tagging): independent per-label scores; see run_multi_label.
  bool multi_label = false;
  std::string multi_label_mode = "probability";
  std::vector<std::string> thresholds;  // "0.6" or "LABEL=0.6"
  std::vector<std::string> negatives;
  std::string head;  // --head: a few-shot head (zeroshot fit) instead of the zero-shot labels
};

void print_table(const std::string& path, const std::vector<LabelScore>& r) {
  size_t w = 5;
  for (const auto& s : r) w = std::max(w, s.label.size());
  std::printf("%s\n", path.c_str());
  for (const auto& s : r) {
    const int bar = static_cast<int>(s.score * 30 + 0.5f);
    std::printf("  %-*s  %8.4f  %s\n", static_cast<int>(w), s.label.c_str(), s.score,
                std::string(static_cast<size_t>(bar), '#').c_str());
  }
}

// ---- multi-label tagging -------------------------------------------------------------------------------------

void print_tags(const std::string& path, const std::vector<TagScore>& r) {
  size_t w = 5;
  for (const auto& s : r) w = std::max(w, s.label.size());
  std::printf("%s\n", path.c_str());
  for (const auto& s : r)
    std::printf("  %-*s  %8.4f  %s %7.4f%s\n", static_cast<int>(w), s.label.c_str(), s.score, s.flagged ? ">=" : "< ",
                s.threshold, s.flagged ? "  yes" : "");
}

// Labels from --labels and from a labels file whose lines may carry a threshold and a negative name (TAB-separated,
// classify/multi_label.h); thresholds from --threshold (global or LABEL=T, which wins over the file's). All checked
// before the model is loaded.
struct TaggerSpec {
  std::vector<std::vector<std::string>> classes;
  std::vector<std::string> templates;
  MultiLabelOptions opt;
};

TaggerSpec resolve_tagger(const ClassifyArgs& a) {
  classify::ScoreOn on = classify::ScoreOn::Probability;
  classify::parse_score_on(a.multi_label_mode, &on);
  if (on == classify::ScoreOn::Cosine && !a.negatives.empty())
    throw Error("--negative", "only applies to --multi-label-mode probability");
  TaggerSpec t;
  auto& classes = t.classes;
  if (!a.labels.lists.empty() || !a.labels.exact.empty() || !a.labels.sets.empty()) {
    LabelArgs typed = a.labels;
    typed.file.clear();  // read below, with its thresholds and negatives
    classes = resolve_labels(typed);
  }
  std::vector<std::optional<float>> thr(classes.size());
  std::vector<std::string> neg(classes.size());
  if (!a.labels.file.empty()) {
    for (auto& l : classify::load_tag_labels_file(a.labels.file)) {
      const std::string where = a.labels.file + ":" + std::to_string(l.line);
      for (const auto& c : classes)
        if (c[0] == l.name) throw Error(where, "label \"" + l.name + "\" is given twice");
      if (l.threshold) classify::check_threshold(on, *l.threshold, where);
      if (!l.negative.empty() && on == classify::ScoreOn::Cosine)
        throw Error(where, "a negative only applies to --multi-label-mode probability");
      classes.push_back({l.name});
      thr.push_back(l.threshold);
      neg.push_back(l.negative);
    }
  }
  if (classes.empty())
    throw Error("labels", "none given: use --labels \"cat,dog\", --label-set imagenet or --labels-file F");
  t.opt.on = on == classify::ScoreOn::Cosine ? ScoreOn::Cosine : ScoreOn::Probability;
  for (const auto& spec_text : a.thresholds) {
    const std::string where = "--threshold \"" + spec_text + "\"";
    const auto spec = classify::parse_threshold_spec(spec_text);
    classify::check_threshold(on, spec.value, where);
    if (spec.label.empty()) {
      t.opt.threshold = spec.value;
      continue;
    }
    size_t k = 0;
    while (k < classes.size() && classes[k][0] != spec.label) ++k;
    if (k == classes.size()) throw Error(where, "no label \"" + spec.label + "\"");
    thr[k] = spec.value;
  }
  if (on == classify::ScoreOn::Cosine && !t.opt.threshold)
    for (size_t k = 0; k < classes.size(); ++k)
      if (!thr[k])
        throw Error(
            "label \"" + classes[k][0] + "\"",
            "--multi-label-mode cosine needs a threshold: --threshold T, --threshold LABEL=T or a labels-file column");
  t.opt.thresholds = std::move(thr);
  t.opt.negatives = a.negatives;
  t.opt.label_negatives = std::move(neg);
  t.templates = resolve_templates(a.templates, a.templates_set);
  return t;
}

// Embeds `paths` in batches under a progress bar and calls print(i, embedding) for each, in input order. A file that
// cannot be read gets an error line (stderr, plus a JSON line with --format json), the others go on; exit code 1
// when any failed.
int embed_and_print(const Model& model, const std::vector<std::string>& paths, const FetchedInputs& fetched,
                    const ClassifyArgs& a, Format fmt, const char* bar_label,
                    const std::function<void(size_t, const float*)>& print) {
  const bool audio = model.modality() == Modality::Audio;
  const char* key = audio ? "audio" : "image";
  util::ProgressBar bar(bar_label, paths.size(), !a.quiet, 0, util::ProgressUnit::Items);
  size_t failed = 0;
  const bool bar_shares_terminal = stdout_is_tty();
  model.embed_files(paths, a.batch, [&](size_t i, const float* emb, const std::string& engine_err) {
    const std::string err = emb ? "" : explain_limits(engine_err);
    if (bar_shares_terminal || !emb) bar.clear();
    if (!emb) {
      ++failed;
      std::fprintf(stderr, "zeroshot: %s\n", fetched.named(err).c_str());
      if (fmt == Format::Json)
        std::printf("{\"%s\": %s, \"error\": %s}\n", key, json_string(fetched.name(paths[i])).c_str(),
                    json_string(fetched.named(err)).c_str());
    } else {
      print(i, emb);
      std::fflush(stdout);
    }
    bar.tick();
    return true;
  });
  bar.finish();
  if (failed) {
    std::fprintf(stderr, "zeroshot: %zu of %zu %s could not be read\n", failed, paths.size(),
                 audio ? "audio files" : "images");
    return kExitSomeInputsFailed;
  }
  return kExitOk;
}

int run_multi_label(const ClassifyArgs& a) {
  const Format fmt = resolve_format(a.format);
  TaggerSpec spec = resolve_tagger(a);
  if (a.no_cache) spec.opt.classifier.cache_dir = "none";
  spec.opt.classifier.progress = prompt_progress(!a.quiet);
  auto model = a.model.load(a.quiet, a.no_cache);
  // Image or audio files, by the model's modality (as in run).
  FetchedInputs fetched(a.url);
  const auto paths = gather_model_inputs(fetched.local(a.inputs), *model);
  const bool audio = model->modality() == Modality::Audio;
  const char* key = audio ? "audio" : "image";
  if (paths.empty()) throw Error("inputs", audio ? "no audio files found" : "no image files found");
  const MultiLabelClassifier tagger(*model, std::move(spec.classes), std::move(spec.templates), std::move(spec.opt));

  return embed_and_print(*model, paths, fetched, a, fmt, "tagging", [&](size_t i, const float* emb) {
    const auto r = tagger.tag(emb, a.top_k);
    if (fmt == Format::Json) {
      std::string line = "{\"" + std::string(key) + "\": " + json_string(fetched.name(paths[i])) + ", \"result\": [";
      for (size_t k = 0; k < r.size(); ++k) {
        if (k) line += ", ";
        line += "{\"label\": " + json_string(r[k].label) + ", \"score\": " + json_float(r[k].score) +
                ", \"threshold\": " + json_float(r[k].threshold) +
                ", \"flagged\": " + (r[k].flagged ? "true" : "false") + "}";
      }
      std::printf("%s]}\n", line.c_str());
    } else {
      print_tags(fetched.name(paths[i]), r);
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------

// --head: scores from a few-shot head (softmax, or a sigmoid per label for a multi-label head). Labels, when given,
// must be the head's, in its order; templates do not apply (the head carries its weights).
int run_head(const ClassifyArgs& a) {
  const Format fmt = resolve_format(a.format);
  if (!a.templates.empty() || !a.templates_set.empty() || a.multi_label)
    throw Error("--head", "a head carries its own weights: --template, --templates and --multi-label do not apply");
  auto model = a.model.load(a.quiet, a.no_cache);
  const classify::LoadedHead head = classify::load_head(a.head, model->fingerprint());
  if (!a.labels.lists.empty() || !a.labels.exact.empty() || !a.labels.sets.empty() || !a.labels.file.empty()) {
    std::vector<std::string> given;
    for (const auto& c : resolve_labels(a.labels)) given.push_back(c[0]);
    classify::check_head_labels(a.head, head, given);
  }
  FetchedInputs fetched(a.url);
  const auto paths = gather_model_inputs(fetched.local(a.inputs), *model);
  const char* key = model->modality() == Modality::Audio ? "audio" : "image";
  return embed_and_print(*model, paths, fetched, a, fmt, "classifying", [&](size_t i, const float* emb) {
    const auto ranked = classify::rank(head.labels, classify::head_scores(head.head, emb), a.top_k);
    if (fmt == Format::Json) {
      std::string line = "{\"" + std::string(key) + "\": " + json_string(fetched.name(paths[i])) + ", \"result\": [";
      for (size_t k = 0; k < ranked.size(); ++k) {
        if (k) line += ", ";
        line += "{\"label\": " + json_string(ranked[k].label) + ", \"score\": " + json_float(ranked[k].score) + "}";
      }
      std::printf("%s]}\n", line.c_str());
    } else {
      std::vector<LabelScore> r;
      r.reserve(ranked.size());
      for (const auto& s : ranked) r.push_back({s.label, s.score});
      print_table(fetched.name(paths[i]), r);
    }
  });
}

int run(const ClassifyArgs& a) {
  if (!a.head.empty()) return run_head(a);
  if (a.multi_label) return run_multi_label(a);
  const Format fmt = resolve_format(a.format);
  const auto classes = resolve_labels(a.labels);
  const auto templates = resolve_templates(a.templates, a.templates_set);
  auto model = a.model.load(a.quiet, a.no_cache);
  // Image or audio files, by the model's modality (config.json's model_type); URLs fetched first.
  FetchedInputs fetched(a.url);
  const auto paths = gather_model_inputs(fetched.local(a.inputs), *model);
  const char* key = model->modality() == Modality::Audio ? "audio" : "image";
  ClassifierOptions copt;
  if (a.no_cache) copt.cache_dir = "none";
  copt.progress = prompt_progress(!a.quiet);
  ZeroShotClassifier clf(*model, classes, templates, copt);

  const int code = embed_and_print(*model, paths, fetched, a, fmt, "classifying", [&](size_t i, const float* emb) {
    const auto r = clf.classify(emb, a.top_k);
    if (fmt == Format::Json) {
      std::string line = "{\"" + std::string(key) + "\": " + json_string(fetched.name(paths[i])) + ", \"result\": [";
      for (size_t k = 0; k < r.size(); ++k) {
        if (k) line += ", ";
        line += "{\"label\": " + json_string(r[k].label) + ", \"score\": " + json_float(r[k].score) + "}";
      }
      std::printf("%s]}\n", line.c_str());
    } else {
      print_table(fetched.name(paths[i]), r);
    }
  });
  trace::note("classify done");
  return code;
}

}  // namespace

void add_classify_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<ClassifyArgs>();
  CLI::App* c = app.add_subcommand("classify", "Zero-shot classify images (files or folders) against labels you name");
  c->add_option("inputs", a->inputs, "Image files, folders (searched recursively) and http(s):// URLs")->required();
  a->model.add_to(*c);
  a->url.add_to(*c);
  a->labels.add_to(*c);
  c->add_option("--labels-file", a->labels.file, "File with one label per line (# starts a comment)");
  c->add_option("-t,--template", a->templates,
                "Prompt template with {} for the label (repeatable: embeddings are ensembled); "
                "default \"This is a photo of {}.\"")
      ->allow_extra_args(false);
  c->add_option("--templates", a->templates_set,
                "Built-in template set: imagenet80 (CLIP's 80), imagenet7 (its 7 selected), or a label set's name");
  c->add_option("-k,--top-k", a->top_k, "Show only the k best labels (0: all)")->default_val(0);
  c->add_option("-b,--batch-size", a->batch, "Images encoded together")->default_val(8)->check(CLI::Range(1, 1024));
  c->add_option("--head", a->head,
                "A few-shot head (zeroshot fit): its labels and weights score the images (labels optional; given, "
                "they must be the head's)");
  add_format_option(*c, &a->format);
  c->add_flag("-q,--quiet", a->quiet, "No progress bar");
  c->add_flag(
      "--no-cache", a->no_cache,
      "Do not read or write the caches in $XDG_CACHE_HOME/zeroshot (default ~/.cache/zeroshot): label embeddings, "
      "packed weights");
  CLI::Option* ml = c->add_flag("--multi-label", a->multi_label,
                                "Score every label on its own (tagging) instead of a softmax across the labels");
  c->add_option("--multi-label-mode", a->multi_label_mode,
                "probability: two-way softmax of the label against a negative (default); cosine: the raw cosine")
      ->check(CLI::IsMember({"probability", "cosine"}))
      ->needs(ml);
  c->add_option("--threshold", a->thresholds,
                "Flag threshold: 0.6 for every label, or LABEL=0.6 for one (repeatable); default 0.5 (probability)")
      ->allow_extra_args(false)  // one value per --threshold: image paths after it stay inputs
      ->needs(ml);
  c->add_option("--negative", a->negatives,
                "Negative name for the probability score, put through the templates (repeatable: ensembled); "
                "default \"something\" and \"an object\"")
      ->allow_extra_args(false)
      ->needs(ml);
  c->footer(
      "Scores are those of the Hugging Face zero-shot-image-classification pipeline: softmax over the labels of\n"
      "exp(logit_scale) x cosine(image, label), sorted by score. With several templates each label's text\n"
      "embeddings are normalized, averaged and normalized again.\n"
      "JSON (one line per image): {\"image\": PATH, \"result\": [{\"label\": L, \"score\": S}, ...]};\n"
      "an image that cannot be read gives {\"image\": PATH, \"error\": MESSAGE} and exit code 1 (2: an error,\n"
      "nothing classified).\n"
      "Audio models (CLAP) take audio files and folders of them (default template \"This is a sound of {}.\",\n"
      "exp(logit_scale_a)); their JSON lines say \"audio\" instead of \"image\".\n"
      "SigLIP models score each label on its own, sigmoid(exp(logit_scale) x cosine + logit_bias), as the pipeline\n"
      "does (not renormalized; --multi-label uses this sigmoid, without negatives). Their texts are padded to 64\n"
      "tokens as the pipeline pads them; a longer prompt is truncated to its first 63 tokens + </s>.\n"
      "SigLIP 2 (fixed resolution) runs its Gemma tokenizer.json as transformers does: text as typed (no\n"
      "lower-casing: lower-case labels yourself, as its model card asks), <eos> appended, padded to 64 on the\n"
      "tokenizer's padding_side; a longer prompt is truncated to its first 63 tokens + <eos>.\n"
      "\n"
      "--multi-label scores each label independently: p = softmax([s*cos(x,label), s*cos(x,negative)])[0] with\n"
      "s = exp(logit_scale) and the negative put through the same templates; flagged when p >= threshold. With\n"
      "--multi-label-mode cosine the score is the cosine and thresholds are required. In --labels-file, a line may\n"
      "be LABEL<TAB>THRESHOLD<TAB>NEGATIVE (both optional). JSON: {\"image\": PATH, \"result\": [{\"label\": L,\n"
      "\"score\": S, \"threshold\": T, \"flagged\": true|false}, ...]} sorted by score.");
  c->callback([a, action] { *action = [a] { return run(*a); }; });
}

}  // namespace zeroshot::cli
