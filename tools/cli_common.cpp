#include "cli_common.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "audio/audio.h"
#include "classify/label_sets.h"
#include "image/image.h"
#include "util/progress.h"

namespace zeroshot::cli {

namespace fs = std::filesystem;

void ModelArgs::add_to(CLI::App& app) {
  model_option = app.add_option("-m,--model", model,
                                "Hugging Face model folder or hub id (downloaded once into the HF cache; default " +
                                    std::string(kDefaultModel) + ", ~600 MB)")
                     ->default_val(std::string(kDefaultModel))
                     ->envname("ZEROSHOT_MODEL");
  app.add_option("--threads", threads, "Worker threads (0: all cores)")->default_val(0)->check(CLI::NonNegativeNumber);
  app.add_option("--max-megapixels", max_megapixels, "Refuse images larger than this, before decoding them")
      ->default_val(100)
      ->check(CLI::PositiveNumber);
  app.add_option("--revision", revision, "Hub revision (branch, tag or commit) for hub ids")->default_val("main");
  app.add_flag("--offline", offline, "Never use the network (also HF_HUB_OFFLINE=1)");
  add_precision_option(app, &precision);
  app.add_flag("--fast-decode", fast_decode,
               "Large JPEGs: decode at 1/2..1/8 scale in the IDCT (Pillow's draft), several times faster; "
               "embeddings close to, not equal to, the reference's. Part of the model fingerprint: an index made "
               "with it is searched with it");
  app.add_option("--max-audio-seconds", max_audio_seconds, "Audio models: refuse longer audio files")
      ->default_val(600)
      ->check(CLI::PositiveNumber);
  app.add_option("--crop", crop,
                 "Audio models, clips over 10 s: middle (deterministic, default) or random (Hugging Face's draws "
                 "after np.random.seed(--seed))")
      ->default_val("middle")
      ->check(CLI::IsMember({"middle", "random"}));
  app.add_option("--seed", seed, "Seed of --crop random")->default_val(0);
}

std::unique_ptr<Model> ModelArgs::load(bool quiet, bool no_cache) const {
  ModelOptions o;
  o.threads = threads;
  o.max_image_pixels = static_cast<uint64_t>(std::llround(max_megapixels * 1e6));
  o.revision = revision;
  o.offline = offline;
  o.precision = parse_precision(precision);
  o.fast_decode = fast_decode;
  o.weights_cache = !no_cache;
  o.progress = !quiet;
  o.max_audio_seconds = max_audio_seconds;
  o.audio_crop = crop == "random" ? AudioCrop::Random : AudioCrop::Middle;
  o.audio_seed = seed;
  try {
    return Model::load(model, o);
  } catch (const Error& e) {
    // The texts of the hub client when a file is neither downloadable nor cached (src/io/hub.cpp).
    const std::string what = e.what();
    if (what.find("cannot reach") == std::string::npos && what.find("not in the cache") == std::string::npos) throw;
    const bool defaulted = model == kDefaultModel && (model_option == nullptr || model_option->count() == 0);
    throw Error(what + "; " +
                (defaulted ? model + " is the default model (about 600 MB, downloaded once on first use): give "
                           : std::string("give ")) +
                "--model DIR for a model folder you have (or set ZEROSHOT_MODEL), or " +
                (what.find("HF_HUB_OFFLINE") != std::string::npos ? "run once without --offline / HF_HUB_OFFLINE"
                                                                  : "HF_ENDPOINT for a hub mirror"));
  }
}

CLI::Option* add_precision_option(CLI::App& app, std::string* precision) {
  return app
      .add_option("--precision", *precision,
                  "Arithmetic of the linear layers: f32 (exact, the default), bf16 or int8 (faster; int8 uses "
                  "zeroshot-int8.safetensors from `zeroshot quantize` when the model folder has it). Caches of "
                  "embeddings are kept per precision")
      ->default_val("f32")
      ->check(CLI::IsMember({"f32", "bf16", "int8", "int4"}));
}

Precision parse_precision(const std::string& name) {
  if (name == "f32") return Precision::F32;
  if (name == "bf16") return Precision::BF16;
  if (name == "int8") return Precision::Int8;
  if (name == "int4") return Precision::Int4;
  throw Error("--precision " + name, "unknown precision (f32, bf16, int8 or int4)");
}

const char* precision_name(Precision p) {
  return p == Precision::BF16 ? "bf16" : p == Precision::Int8 ? "int8" : p == Precision::Int4 ? "int4" : "f32";
}

void add_format_option(CLI::App& app, std::string* format) {
  app.add_option("-f,--format", *format,
                 "Output: table (aligned, for people) or json (one object per line); "
                 "default: table on a terminal, json otherwise")
      ->default_val("auto")
      ->check(CLI::IsMember({"auto", "table", "json"}));
}

std::string explain_limits(const std::string& message) {
  // The texts of image::detail::check_size and audio::decode (src/image/image.cpp, src/audio/audio.cpp).
  static const std::regex pixels(R"(image of (\d+)x(\d+) pixels exceeds the limit of (\d+) pixels)");
  static const std::regex seconds(R"(exceeds the limit of [0-9.]+ s)");
  std::smatch m;
  if (std::regex_search(message, m, pixels)) {
    auto mp = [](double px) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4g", px / 1e6);
      return std::string(buf);
    };
    const double w = std::stod(m[1].str()), h = std::stod(m[2].str()), limit = std::stod(m[3].str());
    return m.prefix().str() + "image of " + m[1].str() + "x" + m[2].str() + " pixels (" + mp(w * h) +
           " megapixels) exceeds --max-megapixels " + mp(limit) + m.suffix().str();
  }
  if (std::regex_search(message, m, seconds))
    return m.prefix().str() + m.str() + " (--max-audio-seconds)" + m.suffix().str();
  return message;
}

namespace {

// CLI11 keeps the arguments no option took in App::missing_ (protected), each with how it read it: a positional
// (Classifier::NONE) or an unknown option. The public remaining() loses that distinction, which decides between
// an input file named "-x" after "--" and an unknown option -x.
struct LeftoverAccess : CLI::App {
  static const missing_t& of(const CLI::App& app) { return app.*(&LeftoverAccess::missing_); }
};

}  // namespace

void add_global_options(CLI::App& app) {
  // No bound variables: finish_parse copies what was given to the command's own option, whose checks then apply.
  app.add_option("-m,--model", "Model folder or hub id (for the command that follows; as its --model)");
  app.add_option("--revision", "Hub revision (as the command's --revision)");
  app.add_flag("--offline")->description("Never use the network (as the command's --offline)");
  app.add_option("--threads", "Worker threads (as the command's --threads)");
  app.add_option("--precision", "f32, bf16, int8 or int4 (as the command's --precision)");
  app.add_option("--max-megapixels", "As the command's --max-megapixels");
  app.add_option("--max-audio-seconds", "As the command's --max-audio-seconds");
  app.add_flag("-q,--quiet")->description("No progress bars (as the command's --quiet)");
}

namespace {

// Whether `o`'s value came from its environment variable rather than the command line.
bool from_env(const CLI::Option& o) {
  const std::string name = o.get_envname();
  const char* v = name.empty() ? nullptr : std::getenv(name.c_str());
  return v != nullptr && o.results() == std::vector<std::string>{v};
}

// "embed photo.jpg": the option the input needs.
std::string input_hint(const CLI::App& cmd, const std::string& arg) {
  auto has = [&](const char* name) { return cmd.get_option_no_throw(name) != nullptr; };
  if (has("--image") && image::has_image_extension(arg)) return "; did you mean --image " + arg + "?";
  if (has("--audio") && audio::has_audio_extension(arg)) return "; did you mean --audio " + arg + "?";
  if (has("--text"))
    return "; inputs go in options: --text \"" + arg + "\", --image FILE, --audio FILE or --text-file F";
  return "";
}

}  // namespace

void prepare_parse(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    sub->allow_extras();  // finish_parse sorts the leftovers: positionals, or unknown options (a usage error)
    for (CLI::Option* o : sub->get_options())
      if (o->get_expected_max() > 1) o->allow_extra_args(false);
  }
}

void finish_parse(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands()) {
    for (const CLI::Option* global : app.get_options()) {
      if (global->count() == 0 || global->get_name() == "--help" || global->get_name() == "--version") continue;
      CLI::Option* own = sub->get_option_no_throw(global->get_name());
      if (own == nullptr)
        throw CLI::ExtrasError(global->get_name() + " does not apply to " + sub->get_name(),
                               CLI::ExitCodes::ExtrasError);
      if (own->count() > 0 && !from_env(*own)) continue;  // given after the command name too: that one wins
      own->clear();
      own->add_result(global->results());
      own->run_callback();
    }
    std::vector<std::string> positionals, unknown;
    for (const auto& [kind, text] : LeftoverAccess::of(*sub)) {
      if (kind == CLI::detail::Classifier::POSITIONAL_MARK) continue;  // a "--" CLI11 kept
      (kind == CLI::detail::Classifier::NONE ? positionals : unknown).push_back(text);
    }
    if (!unknown.empty()) throw CLI::ExtrasError(sub->get_name(), unknown);
    if (positionals.empty()) continue;
    auto lists = sub->get_options([](CLI::Option* o) { return o->get_positional() && o->get_expected_max() > 1; });
    if (lists.empty()) {
      const std::string hint = input_hint(*sub, positionals[0]);
      if (hint.empty()) throw CLI::ExtrasError(sub->get_name(), positionals);
      throw CLI::ExtrasError(sub->get_name() + ": \"" + positionals[0] + "\" is not an option's value" + hint,
                             CLI::ExitCodes::ExtrasError);
    }
    lists[0]->add_result(positionals);
    lists[0]->run_callback();
  }
}

bool stdout_is_tty() { return ::isatty(STDOUT_FILENO) == 1; }
bool stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }

Format resolve_format(const std::string& f) {
  if (f == "json") return Format::Json;
  if (f == "table") return Format::Table;
  return stdout_is_tty() ? Format::Table : Format::Json;
}

std::string other_files_summary(const std::vector<std::string>& files, size_t shown) {
  if (files.empty()) return "";
  std::string s =
      std::to_string(files.size()) + (files.size() == 1 ? " file" : " files") + " of other types not read: ";
  for (size_t i = 0; i < files.size() && i < shown; ++i) s += (i ? ", " : "") + files[i];
  if (files.size() > shown) s += ", and " + std::to_string(files.size() - shown) + " more";
  return s;
}

namespace {

// A regular file in a walked folder that was not taken: kept for the summary unless hidden (".DS_Store").
void note_other(const fs::path& p, std::vector<std::string>& others) {
  const std::string name = p.filename().string();
  if (!name.empty() && name[0] != '.') others.push_back(p.string());
}

void print_others(std::vector<std::string>& others) {
  if (others.empty()) return;
  std::sort(others.begin(), others.end());
  std::fprintf(stderr, "zeroshot: %s\n", other_files_summary(others).c_str());
}

}  // namespace

std::vector<std::string> gather_image_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> out, others;
  for (const auto& in : inputs) {
    std::error_code ec;
    const auto st = fs::status(in, ec);
    if (ec || !fs::exists(st)) throw Error(in, "no such file or directory");
    if (fs::is_directory(st)) {
      std::vector<std::string> found;
      for (fs::recursive_directory_iterator it(in, fs::directory_options::skip_permission_denied, ec), end;
           !ec && it != end; it.increment(ec)) {
        if (!it->is_regular_file(ec)) continue;
        if (image::has_image_extension(it->path().string())) found.push_back(it->path().string());
        else note_other(it->path(), others);
      }
      if (ec) throw Error(in, "cannot read directory: " + ec.message());
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else {
      out.push_back(in);
    }
  }
  print_others(others);
  return out;
}

std::vector<std::string> gather_model_inputs(const std::vector<std::string>& inputs, const Model& model) {
  const bool audio_model = model.modality() == Modality::Audio;
  auto wanted = [&](const std::string& p) {
    return audio_model ? audio::has_audio_extension(p) : image::has_image_extension(p);
  };
  std::vector<std::string> out, others;
  for (const auto& in : inputs) {
    std::error_code ec;
    const auto st = fs::status(in, ec);
    if (ec || !fs::exists(st)) throw Error(in, "no such file or directory");
    if (!fs::is_directory(st)) {
      if (audio_model && image::has_image_extension(in) && !audio::has_audio_extension(in))
        throw Error(in, "an image, but " + model.name() + " is an audio model (" + model.model_type() + ")");
      if (!audio_model && audio::has_audio_extension(in) && !image::has_image_extension(in))
        throw Error(in, "an audio file, but " + model.name() + " is an image model (" + model.model_type() + ")");
      out.push_back(in);
      continue;
    }
    std::vector<std::string> found;
    for (fs::recursive_directory_iterator it(in, fs::directory_options::skip_permission_denied, ec), end;
         !ec && it != end; it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      if (wanted(it->path().string())) found.push_back(it->path().string());
      else note_other(it->path(), others);
    }
    if (ec) throw Error(in, "cannot read directory: " + ec.message());
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  print_others(others);
  if (out.empty()) throw Error("inputs", audio_model ? "no audio files found" : "no image files found");
  return out;
}

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

}  // namespace

void LabelArgs::add_to(CLI::App& app) {
  app.add_option("-l,--labels", lists,
                 "Labels separated by commas: \"cat,dog,a red car\"; a label with a comma in double quotes: "
                 "'\"a cat, sitting\",a dog' (CSV: \"\" is a quote inside). A value that is just a built-in set's "
                 "name (imagenet) is that set (repeatable)");
  app.add_option("--label", exact, "One label exactly as typed: commas, quotes and brackets are kept (repeatable)");
  app.add_option("--label-set", sets,
                 "A built-in label set: imagenet, cifar10, cifar100, food101, oxfordpets, esc50, ... (repeatable; "
                 "data/README.md lists them)");
}

namespace {

// Optimal string alignment distance (Levenshtein plus adjacent transpositions), ASCII case-insensitive.
size_t edit_distance(const std::string& a, const std::string& b) {
  auto low = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = low(a[i - 1]) == low(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && low(a[i - 1]) == low(b[j - 2]) && low(a[i - 2]) == low(b[j - 1]))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

std::string set_names() {
  std::string s;
  for (const auto& n : classify::label_set_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

std::string nearest_label_set(const std::string& name) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& n : classify::label_set_names()) {
    // One edit for short names, two for longer ones: "imagnet" -> imagenet, "cifar" -> cifar10, not "cat".
    const size_t d = edit_distance(name, n), allowed = n.size() >= 6 ? 2 : 1;
    if (d <= allowed && d < best_d) best = n, best_d = d;
  }
  return best;
}

std::vector<std::string> split_labels(const std::string& value) {
  const std::string where = "--labels \"" + value + "\"";
  std::vector<std::string> out;
  size_t i = 0;
  for (;;) {
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    std::string label;
    if (i < value.size() && value[i] == '"') {
      // A quoted field: everything up to the closing quote, "" standing for one quote.
      for (++i;; ++i) {
        if (i >= value.size()) throw Error(where, "a label opened with \" is not closed (a quote inside is \"\")");
        if (value[i] == '"') {
          if (i + 1 < value.size() && value[i + 1] == '"') {
            label += '"';
            ++i;
            continue;
          }
          ++i;
          break;
        }
        label += value[i];
      }
      while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
      if (i < value.size() && value[i] != ',')
        throw Error(where, "text after the closing quote of \"" + label + "\" (use --label for a label with quotes)");
      if (label.empty()) throw Error(where, "empty label");
    } else {
      const size_t end = std::min(value.find(',', i), value.size());
      label = trim(value.substr(i, end - i));
      i = end;
      if (label.empty()) throw Error(where, "empty label (labels are separated by commas)");
    }
    out.push_back(label);
    if (i >= value.size()) return out;
    ++i;  // the comma
  }
}

std::vector<std::vector<std::string>> resolve_labels(const LabelArgs& a) {
  std::vector<std::vector<std::string>> classes;
  // Whether each class came from a built-in set: CLIP's ImageNet names repeat "missile" and "sunglasses" (two
  // classes each, as published); only labels the user typed are checked for duplicates.
  std::vector<bool> from_set;
  auto add_set = [&](const classify::LabelSet& set) {
    classes.insert(classes.end(), set.classes.begin(), set.classes.end());
    from_set.resize(classes.size(), true);
  };
  auto add_label = [&](const std::string& l) {
    classes.push_back({l});
    from_set.push_back(false);
  };
  size_t typed = 0;  // labels from --labels, for the typo rule below
  std::string only_value;
  for (const auto& value : a.lists) {
    if (const auto* set = classify::find_label_set(trim(value))) {
      add_set(*set);
      continue;
    }
    const auto labels = split_labels(value);
    const bool quoted = value.find('"') != std::string::npos;
    for (const auto& l : labels) {
      if (!quoted && classify::find_label_set(l))
        throw Error("--labels \"" + value + "\"", "\"" + l + "\" is a built-in label set: give it as --label-set " + l +
                                                      ", or the word itself as --label " + l);
      add_label(l);
    }
    typed += labels.size();
    if (labels.size() == 1 && !quoted) only_value = labels[0];
  }
  for (const auto& l : a.exact) {
    if (l.empty()) throw Error("--label", "empty label");
    add_label(l);
  }
  for (const auto& name : a.sets) {
    const auto* set = classify::find_label_set(trim(name));
    if (!set) {
      const std::string near = nearest_label_set(trim(name));
      throw Error("--label-set " + name, "unknown label set" + (near.empty() ? "" : "; did you mean " + near + "?") +
                                             " (built in: " + set_names() + ")");
    }
    add_set(*set);
  }
  if (!a.file.empty()) {
    std::ifstream in(a.file);
    if (!in) throw Error(a.file, "cannot open labels file");
    std::string line;
    while (std::getline(in, line)) {
      std::string l = trim(line);
      if (!l.empty() && l[0] != '#') add_label(l);
    }
    if (in.bad()) throw Error(a.file, "read error");
  }
  if (classes.empty())
    throw Error("labels", "none given: use --labels \"cat,dog\", --label-set imagenet or --labels-file F");
  // One label alone, a typo away from a set's name: almost surely the set was meant (one label scores 1).
  if (classes.size() == 1 && typed == 1 && !only_value.empty()) {
    const std::string near = nearest_label_set(only_value);
    if (!near.empty())
      throw Error("--labels " + only_value, "did you mean the built-in label set " + near + "? Give --label-set " +
                                                near + " (or --label " + only_value + " for this one label)");
  }
  // Duplicates the user typed would split the probability mass between identical rows: refuse them.
  std::vector<std::string> seen;
  for (size_t i = 0; i < classes.size(); ++i) {
    const auto& c = classes[i];
    if (from_set[i]) continue;
    if (std::find(seen.begin(), seen.end(), c[0]) != seen.end())
      throw Error("labels", "label \"" + c[0] + "\" is given twice");
    seen.push_back(c[0]);
  }
  return classes;
}

std::vector<std::string> resolve_templates(const std::vector<std::string>& template_opts,
                                           const std::string& templates_set) {
  std::vector<std::string> t = template_opts;
  if (!templates_set.empty()) {
    std::vector<std::string> set;
    if (!classify::find_template_set(templates_set, &set)) {
      const std::string near = nearest_label_set(templates_set);
      throw Error("--templates " + templates_set, "unknown template set" +
                                                      (near.empty() ? "" : "; did you mean " + near + "?") +
                                                      " (imagenet80, imagenet7, or a label set's name)");
    }
    t.insert(t.end(), set.begin(), set.end());
  }
  return t;
}

std::string json_string(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string json_float(float f) {
  if (!std::isfinite(f)) return "null";
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, f);
  return std::string(buf, r.ptr);
}

std::string json_floats(const float* v, size_t n) {
  std::string s = "[";
  for (size_t i = 0; i < n; ++i) {
    if (i) s += ", ";
    s += json_float(v[i]);
  }
  return s + "]";
}

std::function<void(size_t, size_t)> prompt_progress(bool enabled) {
  // Under ~256 prompts the text encoder of a base model takes about a second: a bar would only flicker.
  constexpr size_t kPromptsWorthABar = 256;
  auto bar = std::make_shared<std::unique_ptr<util::ProgressBar>>();  // one per build (a classifier may make two)
  return [enabled, bar](size_t done, size_t total) {
    if (!enabled || total < kPromptsWorthABar) return;
    if (done == 0 || !*bar)
      *bar = std::make_unique<util::ProgressBar>("prompts", total, true, 0, util::ProgressUnit::Items);
    (*bar)->update(done);
    if (done >= total) (*bar)->finish();
  };
}

}  // namespace zeroshot::cli
