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
  bool fast_decode = false;       // --fast-decode: ModelOptions::fast_decode (opt-in everywhere; exact by default)
  // Audio models: --max-audio-seconds, --crop middle|random, --seed.
  double max_audio_seconds = 600;
  std::string crop = "middle";
  uint32_t seed = 0;
  void add_to(CLI::App& app);
  // A hub id that can be neither downloaded nor found in the cache is an error that says what to do instead
  // (and, for the default model, that it is the default and what the first run downloads).
  // no_cache: the model's weights cache off too (ModelOptions::weights_cache), for the commands' --no-cache.
  std::unique_ptr<Model> load(bool quiet, bool no_cache = false) const;
  const CLI::Option* model_option = nullptr;  // set by add_to
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

// The label options of classify and eval. The rule: --labels takes labels, separated by commas, a label with a
// comma in double quotes (a CSV field: "" is a quote inside); --label takes one label exactly as typed;
// --label-set names a built-in set. A --labels value that is just a set's name is that set (the README's
// `--labels imagenet`); a set's name among other labels, or one label a typo away from a set's name, is an error
// that says which option to use, so a misspelled set never becomes a label.
struct LabelArgs {
  std::vector<std::string> lists;  // --labels
  std::vector<std::string> exact;  // --label
  std::vector<std::string> sets;   // --label-set
  std::string file;                // --labels-file (one per line; the caller adds the option)
  // Adds -l,--labels, --label and --label-set.
  void add_to(CLI::App& app);
};

// Classes in the order: --labels, --label, --label-set, --labels-file. classes[k][0] is the label shown, further
// entries synonyms (built-in sets only). Throws Error on no labels, a label given twice or a rule above.
std::vector<std::vector<std::string>> resolve_labels(const LabelArgs& a);
// One --labels value split by the rule above (no set lookup). Throws Error naming the value.
std::vector<std::string> split_labels(const std::string& value);
// The built-in label-set name a typo away from `name` (case-insensitive), or "".
std::string nearest_label_set(const std::string& name);

// Templates from --template (repeatable, used verbatim) and --templates (a set name: imagenet80, imagenet7, or a
// dataset's name). Empty result: the caller's default.
std::vector<std::string> resolve_templates(const std::vector<std::string>& template_opts,
                                           const std::string& templates_set);

// JSON helpers: a quoted, escaped string; the shortest text that reads back as the same float.
std::string json_string(const std::string& s);
std::string json_float(float f);
std::string json_floats(const float* v, size_t n);

// An engine error message with its limits put in the CLI's terms: the engine reports the pixel limit in pixels and
// names no option; here the message says the limit in megapixels with --max-megapixels, and --max-audio-seconds for
// the audio duration limit. Other messages come back unchanged. Every error line the CLI prints goes through it.
std::string explain_limits(const std::string& message);

// Parsing rules every command shares; main() calls prepare_parse before CLI::App::parse and finish_parse after.
// Every text, template, label, query and path reaches the command verbatim: CLI11 2.1 reads a value "[a,b]" of
// an option that takes a list as the two values a and b, and "[cat]" as cat (its syntax for list defaults), except
// where the option takes one value per flag (allow_extra_args false). So prepare_parse makes every list option
// take one value per flag (`--text a --text b`), and a positional list take its first value itself while the
// rest are left over (allow_extras), which finish_parse appends to it unchanged. An unknown option left over is
// CLI11's usage error (CLI::ExtrasError), as before.
// Options given before the command name (`zeroshot --offline classify ...`) apply to the command: add_global_options
// puts the model options and --quiet on the top-level app, and finish_parse hands each one given there to the
// command (where the command's own option, given after its name, wins). A command without that option is a usage
// error. An embed input given without its option (`embed photo.jpg`) is a usage error that suggests the option.
void add_global_options(CLI::App& app);
void prepare_parse(CLI::App& app);
void finish_parse(CLI::App& app);

bool stdout_is_tty();
bool stderr_is_tty();

// A ClassifierOptions::progress that draws a "prompts" bar on stderr (on a terminal, when `enabled`) for label
// sets large enough to take a while (ImageNet x 7 templates: ~30 s on first use, then the label cache).
std::function<void(size_t, size_t)> prompt_progress(bool enabled);

}  // namespace zeroshot::cli
