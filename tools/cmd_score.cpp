// zeroshot score: CLIPScore / RefCLIPScore of (image, caption) pairs; zeroshot rank: images best first for a prompt
// (reranking the candidates of an image generator). The arithmetic is classify/clip_score.h.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "classify/clip_score.h"
#include "classify/zero_shot.h"
#include "cli_common.h"
#include "commands.h"
#include "util/progress.h"

namespace zeroshot::cli {

namespace {

struct Pair {
  std::string image;
  std::string caption;
  std::vector<std::string> refs;
  std::string where;  // "FILE:LINE" for a caption file's row, "" for command-line pairs
};

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c) != 0; });
}

// One CSV record (RFC 4180: fields in double quotes may hold commas, "" is a quote). Quoted fields spanning lines
// are not supported: a caption is one line.
std::vector<std::string> split_csv(const std::string& line, const std::string& where) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c != '"') out.back() += c;
      else if (i + 1 < line.size() && line[i + 1] == '"') out.back() += '"', ++i;
      else quoted = false;
    } else if (c == '"' && out.back().empty()) {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  if (quoted) throw Error(where, "unterminated quoted field");
  return out;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return out;
    start = tab + 1;
  }
}

// A caption file: one pair a line, IMAGE<TAB>CAPTION[<TAB>REFERENCE...] (CSV with the same columns when the name
// ends in .csv). Blank lines and lines starting with # are skipped, so is a first row whose first field is "image"
// (a header). Relative image paths are relative to the file's folder. A malformed row or a missing image is an
// error naming FILE:LINE, raised before any model is loaded.
std::vector<Pair> read_caption_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path, "cannot open caption file");
  namespace fs = std::filesystem;
  const bool csv = fs::path(path).extension() == ".csv";
  const fs::path base = fs::path(path).parent_path();
  std::vector<Pair> pairs;
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (blank(line) || line[0] == '#') continue;
    const std::string where = path + ":" + std::to_string(n);
    std::vector<std::string> f = csv ? split_csv(line, where) : split_tabs(line);
    if (pairs.empty() && n == 1) {
      std::string first = f[0];
      std::transform(first.begin(), first.end(), first.begin(), [](unsigned char c) { return std::tolower(c); });
      if (first == "image") continue;
    }
    if (f.size() < 2)
      throw Error(where,
                  csv ? "expected IMAGE,CAPTION[,REFERENCE...]" : "expected IMAGE<TAB>CAPTION[<TAB>REFERENCE...]");
    if (blank(f[0])) throw Error(where, "empty image path");
    if (blank(f[1])) throw Error(where, "empty caption");
    Pair p;
    p.where = where;
    p.image = fs::path(f[0]).is_absolute() || base.empty() ? f[0] : (base / f[0]).string();
    std::error_code ec;
    if (!fs::is_regular_file(p.image, ec)) throw Error(where, "image not found: " + p.image);
    p.caption = f[1];
    for (size_t k = 2; k < f.size(); ++k) {
      if (blank(f[k])) throw Error(where, "empty reference caption (column " + std::to_string(k + 1) + ")");
      p.refs.push_back(f[k]);
    }
    pairs.push_back(std::move(p));
  }
  if (in.bad()) throw Error(path, "read error");
  if (pairs.empty()) throw Error(path, "no (image, caption) rows");
  return pairs;
}

std::unique_ptr<Model> load_image_model(const ModelArgs& m, bool quiet, const char* command) {
  auto model = m.load(quiet);
  if (model->modality() != Modality::Image)
    throw Error(model->name(), std::string(command) + " needs an image-text model; this is an audio model (" +
                                   model->model_type() + ")");
  return model;
}

// L2-normalized text embeddings of `texts`, deduplicated (a prompt shared by every pair is embedded once).
struct TextTable {
  std::vector<std::string> texts;
  Embeddings emb;
  size_t add(const std::string& t) {
    const auto it = std::find(texts.begin(), texts.end(), t);
    if (it != texts.end()) return static_cast<size_t>(it - texts.begin());
    texts.push_back(t);
    return texts.size() - 1;
  }
  void embed(const Model& model) {
    emb = model.embed_texts(texts);
    classify::l2_normalize_rows(emb.data.data(), emb.rows, emb.dim);
  }
};

// Embeds `paths` (progress bar on stderr) and calls on(i, normalized embedding or nullptr, error) in input order.
// Returns how many could not be read; each gets a "zeroshot: ..." line on stderr.
size_t embed_images(const Model& model, const std::vector<std::string>& paths, size_t batch, bool quiet,
                    const std::function<void(size_t, const float*, const std::string&)>& on) {
  util::ProgressBar bar("embedding", paths.size(), !quiet, 0, util::ProgressUnit::Items);
  size_t failed = 0;
  std::vector<float> v(model.embedding_dim());
  model.embed_files(paths, batch, [&](size_t i, const float* e, const std::string& err) {
    bar.clear();
    if (e) {
      std::copy(e, e + v.size(), v.begin());
      classify::l2_normalize_rows(v.data(), 1, v.size());
    } else {
      ++failed;
    }
    on(i, e ? v.data() : nullptr, err);
    bar.tick();
    return true;
  });
  bar.finish();
  return failed;
}

// ---- score -----------------------------------------------------------------------------------------------------

struct ScoreArgs {
  ModelArgs model;
  std::string text;
  std::vector<std::string> refs;
  std::string captions;
  std::vector<std::string> inputs;
  std::string prefix;
  float scale = classify::kClipScoreWeight;
  size_t batch = 8;
  std::string format;
  bool quiet = false;
  CLI::Option* text_opt = nullptr;
};

int run_score(const ScoreArgs& a) {
  const Format fmt = resolve_format(a.format);
  std::vector<Pair> pairs;
  if (!a.captions.empty()) {
    if (a.text_opt->count() || !a.inputs.empty() || !a.refs.empty())
      throw Error("--captions", "takes the images, captions and references from the file: no --text, --ref or IMAGES");
    pairs = read_caption_file(a.captions);
  } else {
    if (!a.text_opt->count()) throw Error("score", "give --text T IMAGES... or --captions FILE");
    if (blank(a.text)) throw Error("--text", "empty text");
    for (const auto& r : a.refs)
      if (blank(r)) throw Error("--ref", "empty reference caption");
    if (a.inputs.empty()) throw Error("score", "no images given");
    for (auto& p : gather_image_inputs(a.inputs)) pairs.push_back({p, a.text, a.refs, ""});
    if (pairs.empty()) throw Error("inputs", "no image files found");
  }
  auto model = load_image_model(a.model, a.quiet, "score");

  // Every caption and reference goes through the prefix, as the paper's code does with "A photo depicts ".
  TextTable tt;
  std::vector<size_t> cap_row(pairs.size());
  std::vector<std::vector<size_t>> ref_rows(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    cap_row[i] = tt.add(a.prefix + pairs[i].caption);
    for (const auto& r : pairs[i].refs) ref_rows[i].push_back(tt.add(a.prefix + r));
  }
  tt.embed(*model);
  const size_t dim = tt.emb.dim;

  std::vector<std::string> paths;
  paths.reserve(pairs.size());
  for (const auto& p : pairs) paths.push_back(p.image);
  double sum_s = 0, sum_ref = 0;
  size_t scored = 0, with_refs = 0;
  if (fmt == Format::Table) std::printf("%9s  %9s  %9s  %s\n", "CLIPScore", "RefCLIP-S", "cosine", "image / caption");
  const size_t failed =
      embed_images(*model, paths, a.batch, a.quiet, [&](size_t i, const float* v, const std::string& err) {
        const Pair& p = pairs[i];
        if (!v) {
          const std::string msg = p.where.empty() ? err : p.where + ": " + err;
          std::fprintf(stderr, "zeroshot: %s\n", msg.c_str());
          if (fmt == Format::Json)
            std::printf("{\"image\": %s, \"error\": %s}\n", json_string(p.image).c_str(), json_string(msg).c_str());
          return;
        }
        const float cos = classify::dot(v, tt.emb.row(cap_row[i]), dim);
        const float s = classify::clip_score(cos, a.scale);
        sum_s += s;
        ++scored;
        float ref_s = 0.f;
        if (!ref_rows[i].empty()) {
          float best = -1.f;
          for (size_t r : ref_rows[i]) best = std::max(best, classify::dot(tt.emb.row(cap_row[i]), tt.emb.row(r), dim));
          ref_s = classify::ref_clip_score(s, best);
          sum_ref += ref_s;
          ++with_refs;
        }
        if (fmt == Format::Json) {
          std::string line = "{\"image\": " + json_string(p.image) + ", \"caption\": " + json_string(p.caption) +
                             ", \"cosine\": " + json_float(cos) + ", \"clip_score\": " + json_float(s);
          if (!ref_rows[i].empty()) line += ", \"ref_clip_score\": " + json_float(ref_s);
          std::printf("%s}\n", line.c_str());
        } else {
          char ref_text[32] = "-";
          if (!ref_rows[i].empty()) std::snprintf(ref_text, sizeof ref_text, "%.4f", static_cast<double>(ref_s));
          std::printf("%9.4f  %9s  %9.4f  %s\n%33s%s\n", s, ref_text, cos, p.image.c_str(), "", p.caption.c_str());
        }
        std::fflush(stdout);
      });

  // The corpus-level score is the mean of the per-pair scores (the paper's; torchmetrics instead clips the mean of
  // the unclipped 100 * cos, which differs only when some cosine is negative).
  const double mean_s = scored ? sum_s / static_cast<double>(scored) : 0.0;
  const double mean_ref = with_refs ? sum_ref / static_cast<double>(with_refs) : 0.0;
  if (fmt == Format::Json) {
    std::string line = "{\"pairs\": " + std::to_string(scored) + ", \"failed\": " + std::to_string(failed) +
                       ", \"scale\": " + json_float(a.scale) +
                       ", \"mean_clip_score\": " + json_float(static_cast<float>(mean_s));
    if (with_refs) line += ", \"mean_ref_clip_score\": " + json_float(static_cast<float>(mean_ref));
    std::printf("%s}\n", line.c_str());
  } else {
    std::printf("mean CLIPScore %.4f over %zu pairs (w = %g)", mean_s, scored, static_cast<double>(a.scale));
    if (with_refs) std::printf(", mean RefCLIPScore %.4f over %zu", mean_ref, with_refs);
    std::printf("\n");
  }
  if (failed) {
    std::fprintf(stderr, "zeroshot: %zu of %zu images could not be read\n", failed, pairs.size());
    return 1;
  }
  return 0;
}

// ---- rank ------------------------------------------------------------------------------------------------------

struct RankArgs {
  ModelArgs model;
  std::string text;
  std::vector<std::string> inputs;
  size_t top = 0;
  size_t batch = 8;
  std::string format;
  bool quiet = false;
};

int run_rank(const RankArgs& a) {
  const Format fmt = resolve_format(a.format);
  if (blank(a.text)) throw Error("--text", "empty text");
  const auto paths = gather_image_inputs(a.inputs);
  if (paths.empty()) throw Error("inputs", "no image files found");
  auto model = load_image_model(a.model, a.quiet, "rank");
  TextTable tt;
  tt.add(a.text);
  tt.embed(*model);
  std::vector<float> cos(paths.size());
  std::vector<bool> ok(paths.size());
  const size_t failed =
      embed_images(*model, paths, a.batch, a.quiet, [&](size_t i, const float* v, const std::string& err) {
        if (!v) {
          std::fprintf(stderr, "zeroshot: %s\n", err.c_str());
          if (fmt == Format::Json)
            std::printf("{\"path\": %s, \"error\": %s}\n", json_string(paths[i]).c_str(), json_string(err).c_str());
          return;
        }
        ok[i] = true;
        cos[i] = classify::dot(v, tt.emb.row(0), tt.emb.dim);
      });
  std::vector<size_t> order;
  for (size_t i = 0; i < paths.size(); ++i)
    if (ok[i]) order.push_back(i);
  // Stable: equal scores keep the input order.
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return cos[x] > cos[y]; });
  if (a.top && order.size() > a.top) order.resize(a.top);
  for (size_t r = 0; r < order.size(); ++r) {
    const size_t i = order[r];
    if (fmt == Format::Json)
      std::printf("{\"rank\": %zu, \"path\": %s, \"score\": %s}\n", r + 1, json_string(paths[i]).c_str(),
                  json_float(cos[i]).c_str());
    else std::printf("%4zu  %8.4f  %s\n", r + 1, static_cast<double>(cos[i]), paths[i].c_str());
  }
  if (failed) {
    std::fprintf(stderr, "zeroshot: %zu of %zu images could not be read\n", failed, paths.size());
    return 1;
  }
  return 0;
}

}  // namespace

void add_score_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<ScoreArgs>();
  CLI::App* c = app.add_subcommand("score", "CLIPScore (and RefCLIPScore) of images against captions");
  c->add_option("inputs", a->inputs, "Image files and folders, each scored against --text");
  a->model.add_to(*c);
  a->text_opt = c->add_option("--text", a->text, "The caption (or generation prompt) every image is scored against");
  c->add_option("--ref", a->refs, "A reference caption for RefCLIPScore, with --text (repeatable)")
      ->allow_extra_args(false);
  c->add_option("--captions", a->captions,
                "File of IMAGE<TAB>CAPTION[<TAB>REFERENCE...] lines (CSV when named *.csv); images relative to it");
  c->add_option("--prefix", a->prefix,
                "Text put before every caption and reference (the paper's code uses \"A photo depicts \")");
  c->add_option("--scale", a->scale, "w in w * max(cos, 0): 2.5 as in the paper, 100 for torchmetrics' CLIPScore")
      ->default_val(classify::kClipScoreWeight)
      ->check(CLI::PositiveNumber);
  c->add_option("-b,--batch-size", a->batch, "Images encoded together")->default_val(8)->check(CLI::Range(1, 1024));
  add_format_option(*c, &a->format);
  c->add_flag("-q,--quiet", a->quiet, "No progress bar");
  c->footer(
      "CLIPScore (Hessel et al. 2021) of a pair: w * max(cos(image, caption), 0) on L2-normalized embeddings, w = "
      "2.5;\n"
      "--scale 100 gives torchmetrics' CLIPScore scale, 100 * max(cos, 0). With reference captions, RefCLIPScore:\n"
      "the harmonic mean of the CLIPScore and max(max over references of cos(caption, reference), 0).\n"
      "JSON (one line per pair, in input order): {\"image\": PATH, \"caption\": C, \"cosine\": X, \"clip_score\": S\n"
      "[, \"ref_clip_score\": R]}; then {\"pairs\": N, \"failed\": F, \"scale\": W, \"mean_clip_score\": M\n"
      "[, \"mean_ref_clip_score\": MR]} (means over the pairs scored, the paper's corpus-level scores).\n"
      "An image that cannot be read gives {\"image\": PATH, \"error\": MESSAGE} and exit code 1; a caption file\n"
      "row naming a missing image stops the command before any scoring (FILE:LINE in the message).");
  c->callback([a, action] { *action = [a] { return run_score(*a); }; });
}

void add_rank_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<RankArgs>();
  CLI::App* c = app.add_subcommand("rank", "Rank images best first by their similarity to a prompt");
  c->add_option("inputs", a->inputs, "Image files and folders (candidates)")->required();
  a->model.add_to(*c);
  c->add_option("--text", a->text, "The prompt the images were generated from")->required();
  c->add_option("--top", a->top, "Show only the N best (0: all)")->default_val(0);
  c->add_option("-b,--batch-size", a->batch, "Images encoded together")->default_val(8)->check(CLI::Range(1, 1024));
  add_format_option(*c, &a->format);
  c->add_flag("-q,--quiet", a->quiet, "No progress bar");
  c->footer(
      "Score: cos(image, prompt) on L2-normalized embeddings; ties keep the input order.\n"
      "JSON (best first): {\"rank\": 1, \"path\": PATH, \"score\": COS}; an image that cannot be read gives\n"
      "{\"path\": PATH, \"error\": MESSAGE} (before the ranking) and exit code 1.");
  c->callback([a, action] { *action = [a] { return run_rank(*a); }; });
}

}  // namespace zeroshot::cli
