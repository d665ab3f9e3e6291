// Shared pieces of the zeroshot commands: output formats, input gathering, label/template options, JSON text.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "zeroshot/zeroshot.h"

namespace zeroshot::cli {

enum class Format { Table, Json };

// Options every model-using command has.
struct ModelArgs {
  std::string model = kDefaultModel;
  int threads = 0;
  double max_megapixels = 100;
  std::string revision = "main";
  bool offline = false;
  std::string precision = "f32";  // --precision f32|bf16|int8 (parse_precision)
  // Audio models: --max-audio-seconds, --crop middle|random, --seed.
  double max_audio_seconds = 600;
  std::string crop = "middle";
  uint32_t seed = 0;
  void add_to(CLI::App& app);
  std::unique_ptr<Model> load(bool quiet) const;
};

// --precision f32|bf16|int8, the arithmetic of the linear layers (zeroshot::Precision). ModelArgs::add_to adds it;
// a command without ModelArgs can add it alone. parse_precision throws zeroshot::Error for another name.
CLI::Option* add_precision_option(CLI::App& app, std::string* precision);
Precision parse_precision(const std::string& name);
const char* precision_name(Precision p);

// --format table|json; "auto" (the default): table on a terminal, json otherwise.
void add_format_option(CLI::App& app, std::string* format);
Format resolve_format(const std::string& format);

// Files named directly are kept (in order); folders are walked recursively for image files, sorted by path.
// A missing path is an error naming it.
std::vector<std::string> gather_image_inputs(const std::vector<std::string>& inputs);
// The same for the model's modality: folders are walked for image or audio files; a file named directly whose
// extension belongs to the other modality is an error naming it ("... is an audio model ...").
std::vector<std::string> gather_model_inputs(const std::vector<std::string>& inputs, const Model& model);
// Both print one line on stderr for the files in those folders that were left out as not of the wanted type (a
// format we do not read must not vanish silently): other_files_summary below. Hidden files are not counted.

// "3 files of other types not read: a.mov, b/notes.txt, x.raw" (the first `shown` names, then "and N more");
// empty when there are none.
std::string other_files_summary(const std::vector<std::string>& files, size_t shown = 5);

// Labels from --labels (comma-separated, or a built-in set name like "imagenet") and --labels-file (one per line).
// Returns classes: classes[k][0] is the label shown, further entries synonyms (built-in sets only).
std::vector<std::vector<std::string>> resolve_labels(const std::vector<std::string>& labels_opts,
                                                     const std::string& labels_file);
// Templates from --template (repeatable, used verbatim) and --templates (a set name: imagenet80, imagenet7, or a
// dataset's name). Empty result: the caller's default.
std::vector<std::string> resolve_templates(const std::vector<std::string>& template_opts, const std::string& templates_set);

// JSON helpers: a quoted, escaped string; the shortest text that reads back as the same float.
std::string json_string(const std::string& s);
std::string json_float(float f);
std::string json_floats(const float* v, size_t n);

bool stdout_is_tty();
bool stderr_is_tty();

}  // namespace zeroshot::cli
