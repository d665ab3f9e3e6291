// zeroshot embed: projected embeddings of texts and images (or audio, for CLAP models), in the order given on the
// command line.
#include <cstdio>
#include <fstream>

#include "classify/zero_shot.h"
#include "cli_common.h"
#include "commands.h"
#include "exit_codes.h"
#include "url_inputs.h"

namespace zeroshot::cli {

namespace {

struct EmbedArgs {
  ModelArgs model;
  UrlArgs url;  // --image / --audio http(s):// URLs: --max-download-mb, --download-timeout
  std::vector<std::string> texts, images, text_files, audios;
  bool normalize = false;
  std::string format;
  bool quiet = false;
  CLI::Option *text_opt = nullptr, *image_opt = nullptr, *text_file_opt = nullptr, *audio_opt = nullptr;
  CLI::App* cmd = nullptr;
};

struct Input {
  bool image = false;  // a file: image, or audio when `audio`
  std::string value;
  bool audio = false;
};

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path, "cannot open text file");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
  }
  if (in.bad()) throw Error(path, "read error");
  return out;
}

int run(const EmbedArgs& a) {
  // Inputs in command-line order: CLI11 records the order options were parsed in.
  std::vector<Input> inputs;
  size_t ti = 0, ii = 0, fi = 0, ai = 0;
  for (const CLI::Option* o : a.cmd->parse_order()) {
    if (o == a.text_opt) inputs.push_back({false, a.texts.at(ti++)});
    else if (o == a.image_opt) inputs.push_back({true, a.images.at(ii++)});
    else if (o == a.audio_opt) inputs.push_back({true, a.audios.at(ai++), true});
    else if (o == a.text_file_opt)
      for (auto& l : read_lines(a.text_files.at(fi++))) inputs.push_back({false, l});
  }
  if (inputs.empty()) throw Error("embed", "nothing to embed: give --text, --text-file, --image or --audio");
  const Format fmt = resolve_format(a.format);
  auto model = a.model.load(a.quiet);
  const bool audio_model = model->modality() == Modality::Audio;
  for (const auto& in : inputs)
    if (in.image && in.audio != audio_model)
      throw Error(in.audio ? "--audio " + in.value : "--image " + in.value,
                  model->name() + " is an " + (audio_model ? "audio" : "image") + " model (" + model->model_type() +
                      "): use --" + (audio_model ? "audio" : "image"));

  std::vector<std::string> texts, images;
  FetchedInputs fetched(a.url);
  for (const auto& in : inputs) {
    if (in.image) images.push_back(fetched.local(in.value));
    else texts.push_back(in.value);
  }
  const Embeddings te = model->embed_texts(texts);
  Embeddings ie;
  ie.dim = model->embedding_dim();
  std::vector<std::string> image_errors(images.size());
  ie.data.resize(images.size() * ie.dim);
  ie.rows = images.size();
  bool failed = false;
  model->embed_files(images, 8, [&](size_t i, const float* e, const std::string& err) {
    if (e) std::copy(e, e + ie.dim, ie.data.begin() + static_cast<std::ptrdiff_t>(i * ie.dim));
    else image_errors[i] = explain_limits(err), failed = true;
    return true;
  });

  size_t t = 0, im = 0;
  for (const auto& in : inputs) {
    const size_t idx = in.image ? im++ : t++;
    const char* kind = in.audio ? "audio" : in.image ? "image" : "text";
    if (in.image && !image_errors[idx].empty()) {
      const std::string err = fetched.named(image_errors[idx]);
      std::fprintf(stderr, "zeroshot: %s\n", err.c_str());
      if (fmt == Format::Json)
        std::printf("{\"kind\": \"%s\", \"input\": %s, \"error\": %s}\n", kind, json_string(in.value).c_str(),
                    json_string(err).c_str());
      continue;
    }
    std::vector<float> v(in.image ? ie.row(idx) : te.row(idx), (in.image ? ie.row(idx) : te.row(idx)) + te.dim);
    if (a.normalize) classify::l2_normalize_rows(v.data(), 1, v.size());
    if (fmt == Format::Json) {
      std::printf("{\"kind\": \"%s\", \"input\": %s, \"embedding\": %s}\n", kind, json_string(in.value).c_str(),
                  json_floats(v.data(), v.size()).c_str());
    } else {
      double n = 0;
      for (float x : v) n += static_cast<double>(x) * x;
      // The first values, then "..." inside the bracket when there are more.
      std::string head = json_floats(v.data(), std::min<size_t>(v.size(), 4));
      if (v.size() > 4) head.insert(head.size() - 1, ", ...");
      std::printf("%-5s  %s\n       dim %zu  norm %.4f  %s\n", kind, in.value.c_str(), v.size(), std::sqrt(n),
                  head.c_str());
    }
  }
  return failed ? kExitSomeInputsFailed : kExitOk;
}

}  // namespace

void add_embed_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<EmbedArgs>();
  CLI::App* c = app.add_subcommand("embed", "Print projected embeddings of texts and images");
  a->cmd = c;
  a->model.add_to(*c);
  a->url.add_to(*c);
  a->text_opt = c->add_option("--text", a->texts, "A text to embed (repeatable)");
  a->image_opt = c->add_option("--image", a->images, "An image file or http(s):// URL to embed (repeatable)");
  a->audio_opt = c->add_option("--audio", a->audios,
                               "An audio file or http(s):// URL to embed, for audio models (CLAP; repeatable)");
  a->text_file_opt = c->add_option("--text-file", a->text_files, "A file of texts, one per line (repeatable)");
  c->add_flag("--normalize", a->normalize, "L2-normalize the embeddings");
  add_format_option(*c, &a->format);
  c->add_flag("-q,--quiet", a->quiet, "No progress bar");
  c->footer(
      "JSON (one line per input, in command-line order):\n"
      "  {\"kind\": \"image\"|\"audio\"|\"text\", \"input\": PATH_OR_TEXT, \"embedding\": [...]}\n"
      "Embeddings are the model's projected features (get_image_features / get_text_features), not normalized\n"
      "unless --normalize is given.\n"
      "Exit code: 0 done; 1 some inputs could not be read (the others are printed); 2 error.");
  c->callback([a, action] { *action = [a] { return run(*a); }; });
}

}  // namespace zeroshot::cli
