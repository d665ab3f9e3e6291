// zeroshot classify: zero-shot classification of image files and folders.
#include <cstdio>
#include <iostream>

#include "cli_common.h"
#include "commands.h"
#include "util/progress.h"

namespace zeroshot::cli {

namespace {

struct ClassifyArgs {
  ModelArgs model;
  std::vector<std::string> inputs;
  std::vector<std::string> labels;
  std::string labels_file;
  std::vector<std::string> templates;
  std::string templates_set;
  size_t top_k = 0;
  size_t batch = 8;
  std::string format;
  bool quiet = false;
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

int run(const ClassifyArgs& a) {
  const Format fmt = resolve_format(a.format);
  const auto classes = resolve_labels(a.labels, a.labels_file);
  const auto templates = resolve_templates(a.templates, a.templates_set);
  const auto paths = gather_image_inputs(a.inputs);
  if (paths.empty()) throw Error("inputs", "no image files found");
  auto model = a.model.load(a.quiet);
  ZeroShotClassifier clf(*model, classes, templates);

  util::ProgressBar bar("classifying", paths.size(), !a.quiet, 0, util::ProgressUnit::Items);
  size_t failed = 0;
  const bool bar_shares_terminal = stdout_is_tty();
  model->embed_image_files(paths, a.batch, [&](size_t i, const float* emb, const std::string& err) {
    if (bar_shares_terminal || !emb) bar.clear();
    if (!emb) {
      ++failed;
      std::fprintf(stderr, "zeroshot: %s\n", err.c_str());
      if (fmt == Format::Json)
        std::printf("{\"image\": %s, \"error\": %s}\n", json_string(paths[i]).c_str(), json_string(err).c_str());
      bar.tick();
      return true;
    }
    const auto r = clf.classify(emb, a.top_k);
    if (fmt == Format::Json) {
      std::string line = "{\"image\": " + json_string(paths[i]) + ", \"result\": [";
      for (size_t k = 0; k < r.size(); ++k) {
        if (k) line += ", ";
        line += "{\"label\": " + json_string(r[k].label) + ", \"score\": " + json_float(r[k].score) + "}";
      }
      std::printf("%s]}\n", line.c_str());
    } else {
      print_table(paths[i], r);
    }
    std::fflush(stdout);
    bar.tick();
    return true;
  });
  bar.finish();
  if (failed) {
    std::fprintf(stderr, "zeroshot: %zu of %zu images could not be read\n", failed, paths.size());
    return 1;
  }
  return 0;
}

}  // namespace

void add_classify_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<ClassifyArgs>();
  CLI::App* c = app.add_subcommand("classify", "Zero-shot classify images (files or folders) against labels you name");
  c->add_option("inputs", a->inputs, "Image files and folders (folders are searched recursively)")->required();
  a->model.add_to(*c);
  c->add_option("-l,--labels", a->labels,
                "Comma-separated labels (\"cat,dog,a red car\"), or a built-in set: imagenet, cifar10, cifar100, "
                "food101, oxfordpets, ... (repeatable)")
      ->allow_extra_args(false);  // one value per --labels, so image paths after it stay inputs
  c->add_option("--labels-file", a->labels_file, "File with one label per line (# starts a comment)");
  c->add_option("-t,--template", a->templates,
                "Prompt template with {} for the label (repeatable: embeddings are ensembled); "
                "default \"This is a photo of {}.\"")
      ->allow_extra_args(false);
  c->add_option("--templates", a->templates_set,
                "Built-in template set: imagenet80 (CLIP's 80), imagenet7 (its 7 selected), or a label set's name");
  c->add_option("-k,--top-k", a->top_k, "Show only the k best labels (0: all)")->default_val(0);
  c->add_option("-b,--batch-size", a->batch, "Images encoded together")->default_val(8)->check(CLI::Range(1, 1024));
  add_format_option(*c, &a->format);
  c->add_flag("-q,--quiet", a->quiet, "No progress bar");
  c->footer(
      "Scores are those of the Hugging Face zero-shot-image-classification pipeline: softmax over the labels of\n"
      "exp(logit_scale) x cosine(image, label), sorted by score. With several templates each label's text\n"
      "embeddings are normalized, averaged and normalized again.\n"
      "JSON (one line per image): {\"image\": PATH, \"result\": [{\"label\": L, \"score\": S}, ...]};\n"
      "an image that cannot be read gives {\"image\": PATH, \"error\": MESSAGE} and exit code 1.");
  c->callback([a, action] { *action = [a] { return run(*a); }; });
}

}  // namespace zeroshot::cli
