#include "cli_common.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "classify/label_sets.h"
#include "audio/audio.h"
#include "image/image.h"

namespace zeroshot::cli {

namespace fs = std::filesystem;

void ModelArgs::add_to(CLI::App& app) {
  app.add_option("-m,--model", model,
                 "Hugging Face model folder or hub id (downloaded once into the HF cache)")
      ->default_val(std::string(kDefaultModel))
      ->envname("ZEROSHOT_MODEL");
  app.add_option("--threads", threads, "Worker threads (0: all cores)")->default_val(0)->check(CLI::NonNegativeNumber);
  app.add_option("--max-megapixels", max_megapixels, "Refuse images larger than this, before decoding them")
      ->default_val(100)
      ->check(CLI::PositiveNumber);
  app.add_option("--revision", revision, "Hub revision (branch, tag or commit) for hub ids")->default_val("main");
  app.add_flag("--offline", offline, "Never use the network (also HF_HUB_OFFLINE=1)");
  add_precision_option(app, &precision);
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

std::unique_ptr<Model> ModelArgs::load(bool quiet) const {
  ModelOptions o;
  o.threads = threads;
  o.max_image_pixels = static_cast<uint64_t>(std::llround(max_megapixels * 1e6));
  o.revision = revision;
  o.offline = offline;
  o.precision = parse_precision(precision);
  o.progress = !quiet;
  o.max_audio_seconds = max_audio_seconds;
  o.audio_crop = crop == "random" ? AudioCrop::Random : AudioCrop::Middle;
  o.audio_seed = seed;
  return Model::load(model, o);
}

CLI::Option* add_precision_option(CLI::App& app, std::string* precision) {
  return app
      .add_option("--precision", *precision,
                  "Arithmetic of the linear layers: f32 (exact, the default), bf16 or int8 (faster; int8 uses "
                  "zeroshot-int8.safetensors from `zeroshot quantize` when the model folder has it). Caches of "
                  "embeddings are kept per precision")
      ->default_val("f32")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}));
}

Precision parse_precision(const std::string& name) {
  if (name == "f32") return Precision::F32;
  if (name == "bf16") return Precision::BF16;
  if (name == "int8") return Precision::Int8;
  throw Error("--precision " + name, "unknown precision (f32, bf16 or int8)");
}

const char* precision_name(Precision p) {
  return p == Precision::BF16 ? "bf16" : p == Precision::Int8 ? "int8" : "f32";
}

void add_format_option(CLI::App& app, std::string* format) {
  app.add_option("-f,--format", *format, "Output: table (aligned, for people) or json (one object per line); "
                                         "default: table on a terminal, json otherwise")
      ->default_val("auto")
      ->check(CLI::IsMember({"auto", "table", "json"}));
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

std::vector<std::vector<std::string>> resolve_labels(const std::vector<std::string>& labels_opts,
                                                     const std::string& labels_file) {
  std::vector<std::vector<std::string>> classes;
  // Whether each class came from a built-in set: CLIP's ImageNet names repeat "missile" and "sunglasses" (two
  // classes each, as published); only labels the user typed are checked for duplicates.
  std::vector<bool> from_set;
  for (const auto& opt : labels_opts) {
    if (opt.find(',') == std::string::npos) {
      if (const auto* set = classify::find_label_set(trim(opt))) {
        classes.insert(classes.end(), set->classes.begin(), set->classes.end());
        from_set.resize(classes.size(), true);
        continue;
      }
    }
    std::string cur;
    for (size_t i = 0; i <= opt.size(); ++i) {
      if (i == opt.size() || opt[i] == ',') {
        std::string l = trim(cur);
        if (l.empty()) throw Error("--labels \"" + opt + "\"", "empty label (labels are separated by commas)");
        classes.push_back({l});
        from_set.push_back(false);
        cur.clear();
      } else {
        cur += opt[i];
      }
    }
  }
  if (!labels_file.empty()) {
    std::ifstream in(labels_file);
    if (!in) throw Error(labels_file, "cannot open labels file");
    std::string line;
    while (std::getline(in, line)) {
      std::string l = trim(line);
      if (!l.empty() && l[0] != '#') {
        classes.push_back({l});
        from_set.push_back(false);
      }
    }
    if (in.bad()) throw Error(labels_file, "read error");
  }
  if (classes.empty()) throw Error("labels", "none given: use --labels \"cat,dog\", --labels imagenet or --labels-file F");
  // Duplicates the user typed would split the probability mass between identical rows: refuse them.
  std::vector<std::string> seen;
  for (size_t i = 0; i < classes.size(); ++i) {
    const auto& c = classes[i];
    if (from_set[i]) continue;
    if (std::find(seen.begin(), seen.end(), c[0]) != seen.end()) throw Error("labels", "label \"" + c[0] + "\" is given twice");
    seen.push_back(c[0]);
  }
  return classes;
}

std::vector<std::string> resolve_templates(const std::vector<std::string>& template_opts, const std::string& templates_set) {
  std::vector<std::string> t = template_opts;
  if (!templates_set.empty()) {
    std::vector<std::string> set;
    if (!classify::find_template_set(templates_set, &set))
      throw Error("--templates " + templates_set, "unknown template set (imagenet80, imagenet7, or a label set name)");
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

}  // namespace zeroshot::cli
