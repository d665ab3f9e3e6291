// zeroshot explain: per label, a heat map of the image regions that support it (zeroshot/explain.h), written as a
// PNG overlay on the image and a JSON grid.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "classify/explain.h"
#include "cli_common.h"
#include "commands.h"
#include "image/heatmap.h"
#include "image/image.h"
#include "zeroshot/explain.h"

namespace zeroshot::cli {

namespace {

namespace fs = std::filesystem;

struct ExplainArgs {
  ModelArgs model;
  std::string input;
  LabelArgs labels;
  std::vector<std::string> templates;
  std::string templates_set;
  std::string out_dir;
  std::string method = "surgery";
  int vv_blocks = 1;
  size_t top = 0;
  bool json = false;
  bool quiet = false;
  bool no_cache = false;
};

// A file name for a label: characters outside [A-Za-z0-9._-] become '_' (a label may hold '/', spaces, anything),
// and a name already taken (two labels that differ only there, or case-folding file systems) gets -2, -3, ...
std::string file_stem(const std::string& label, std::set<std::string>* taken) {
  std::string s;
  for (const unsigned char c : label) s += (std::isalnum(c) || c == '.' || c == '-' || c == '_') ? char(c) : '_';
  if (s.empty() || s[0] == '.') s = "_" + s;  // never hidden, never "." or ".."
  std::string lower;
  for (const unsigned char c : s) lower += static_cast<char>(std::tolower(c));
  std::string name = s, key = lower;
  for (int i = 2; taken->count(key); ++i) {
    name = s + "-" + std::to_string(i);
    key = lower + "-" + std::to_string(i);
  }
  taken->insert(key);
  return name;
}

std::string maps_json(const ExplainArgs& a, const Model& model, const image::RgbImage& img,
                      const std::vector<LabelMap>& maps, const std::vector<std::string>& pngs) {
  const image::Square sq = image::center_square(img.width, img.height);
  std::ostringstream o;
  o << "{\"image\": " << json_string(a.input) << ", \"model\": " << json_string(model.name())
    << ", \"method\": " << json_string(a.method) << ", \"vv_blocks\": " << a.vv_blocks << ", \"width\": " << img.width
    << ", \"height\": " << img.height << ", \"grid\": [" << maps.front().grid << ", " << maps.front().grid
    << "], \"crop\": {\"x\": " << sq.x0 << ", \"y\": " << sq.y0 << ", \"size\": " << sq.side << "}, \"maps\": [";
  for (size_t k = 0; k < maps.size(); ++k) {
    const LabelMap& m = maps[k];
    o << (k ? ", " : "") << "{\"label\": " << json_string(m.label) << ", \"score\": " << json_float(m.score)
      << ", \"png\": " << json_string(pngs[k]) << ", \"min\": " << json_float(m.min)
      << ", \"max\": " << json_float(m.max) << ", \"values\": [";
    for (int r = 0; r < m.grid; ++r)
      o << (r ? ", " : "") << json_floats(m.values.data() + static_cast<size_t>(r) * m.grid, m.grid);
    o << "]}";
  }
  o << "]}";
  return o.str();
}

int run(const ExplainArgs& a) {
  classify::MapMethod method{};
  if (!classify::parse_map_method(a.method, &method))
    throw Error("--method", "\"" + a.method + "\" is not a map method (surgery or cosine)");
  const auto classes = resolve_labels(a.labels);
  const auto templates = resolve_templates(a.templates, a.templates_set);
  auto model = a.model.load(a.quiet, a.no_cache);
  if (model->patch_grid() <= 0)
    throw Error(model->name(), std::string("a ") + model->model_type() +
                                   " model has no patch tokens to explain with (explanation maps need a CLIP ViT)");
  // The image decoded once for the overlay and once by the model's own preprocessing (which, for OpenCLIP
  // checkpoints, converts the Pillow mode after resizing, not before), so the map is exactly classify's.
  image::DecodeOptions dopt;
  dopt.max_pixels = static_cast<uint64_t>(a.model.max_megapixels * 1e6);
  const image::RgbImage img = image::decode_file(a.input, dopt);
  const std::vector<float> pixels = model->preprocess_image_file(a.input);
  ClassifierOptions copt;
  if (a.no_cache) copt.cache_dir = "none";
  copt.progress = prompt_progress(!a.quiet);
  const ZeroShotClassifier clf(*model, classes, templates, copt);
  ExplainOptions eopt;
  eopt.vv_blocks = a.vv_blocks;
  eopt.feature_surgery = method == classify::MapMethod::Surgery;
  std::vector<LabelMap> maps = explain(*model, clf, pixels.data(), eopt);
  if (a.top > 0 && a.top < maps.size()) {
    // Every label takes part in the maps (feature surgery subtracts what they share); only the best are written.
    std::stable_sort(maps.begin(), maps.end(), [](const LabelMap& x, const LabelMap& y) { return x.score > y.score; });
    maps.resize(a.top);
  }

  std::error_code ec;
  fs::create_directories(a.out_dir, ec);
  if (ec) throw Error(a.out_dir, "cannot create the output folder: " + ec.message());
  std::set<std::string> taken = {"maps"};
  std::vector<std::string> pngs;
  for (const LabelMap& m : maps) {
    pngs.push_back(file_stem(m.label, &taken) + ".png");
    // Colours span this map's own min..max (as CLIP Surgery's get_similarity_map normalizes each map).
    image::write_png(image::heatmap_overlay(img, m.values.data(), m.grid, m.min, m.max),
                     (fs::path(a.out_dir) / pngs.back()).string());
  }
  const std::string json = maps_json(a, *model, img, maps, pngs);
  const std::string json_path = (fs::path(a.out_dir) / "maps.json").string();
  {
    std::ofstream f(json_path);
    f << json << "\n";
    if (!f.flush()) throw Error(json_path, "cannot write");
  }
  if (a.json) {
    std::printf("%s\n", json.c_str());
  } else {
    size_t w = 5;
    for (const auto& m : maps) w = std::max(w, m.label.size());
    std::printf("%s  (%d x %d patches, %s)\n", a.input.c_str(), maps.front().grid, maps.front().grid, a.method.c_str());
    for (size_t k = 0; k < maps.size(); ++k)
      std::printf("  %-*s  %8.4f  %s\n", static_cast<int>(w), maps[k].label.c_str(), maps[k].score,
                  (fs::path(a.out_dir) / pngs[k]).string().c_str());
  }
  return 0;
}

}  // namespace

void add_explain_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<ExplainArgs>();
  CLI::App* c = app.add_subcommand(
      "explain", "Heat maps of the image regions that support each label (PNG overlays + JSON grids in a folder)");
  c->add_option("image", a->input, "The image file")->required();
  a->model.add_to(*c);
  a->labels.add_to(*c);
  c->add_option("-t,--template", a->templates,
                "Prompt template with {} for the label (repeatable: embeddings are ensembled); "
                "default \"This is a photo of {}.\"")
      ->allow_extra_args(false);
  c->add_option("--templates", a->templates_set,
                "Built-in template set: imagenet80 (CLIP's 80), imagenet7 (its 7 selected), or a label set's name");
  c->add_option("-o,--output", a->out_dir, "Folder for <label>.png and maps.json (created)")->required();
  c->add_option("--method", a->method,
                "surgery: CLIP Surgery's feature surgery (what all labels share removed); cosine: plain patch cosines")
      ->default_val("surgery");
  c->add_option("--vv-blocks", a->vv_blocks,
                "Last encoder layers run with value-value attention (CLIP Surgery uses 6 of ViT-B's 12)")
      ->default_val(1)
      ->check(CLI::Range(1, 1000));
  c->add_option("--top", a->top,
                "Write the maps of the N best-scoring labels only, best first (0: all, in label order)")
      ->default_val(0);
  c->add_flag("--json", a->json, "Print maps.json on stdout instead of a table");
  c->add_flag("-q,--quiet", a->quiet, "No progress bar");
  c->add_flag(
      "--no-cache", a->no_cache,
      "Do not read or write the caches in $XDG_CACHE_HOME/zeroshot (default ~/.cache/zeroshot): label embeddings, "
      "packed weights");
  c->callback([a, action] { *action = [a] { return run(*a); }; });
}

}  // namespace zeroshot::cli
