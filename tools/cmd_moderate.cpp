// zeroshot moderate: flags images against the categories of a moderation policy (TOML).
//
// Exit codes follow diff(1) and linters: 0 nothing flagged, 1 something flagged, 2 trouble (a bad policy or
// option, a missing model, an unreadable image: the others are still checked and reported).
#include <cstdio>

#include "classify/policy.h"
#include "cli_common.h"
#include "commands.h"
#include "exit_codes.h"
#include "util/progress.h"
#include "zeroshot/tagging.h"

namespace zeroshot::cli {

namespace {

constexpr int kExitFlagged = 1;
constexpr int kExitTrouble = kExitError;  // also for an unreadable image (exit_codes.h)

struct ModerateArgs {
  ModelArgs model;
  std::vector<std::string> inputs;
  std::string policy;
  size_t batch = 8;
  std::string format;
  bool quiet = false;
  bool no_cache = false;
};

std::string json_line(const std::string& path, const std::vector<TagScore>& r) {
  std::string flagged, scores;
  for (const auto& c : r) {
    if (c.flagged)
      flagged += std::string(flagged.empty() ? "" : ", ") + "{\"category\": " + json_string(c.label) +
                 ", \"score\": " + json_float(c.score) + ", \"threshold\": " + json_float(c.threshold) + "}";
    scores += std::string(scores.empty() ? "" : ", ") + json_string(c.label) + ": " + json_float(c.score);
  }
  return "{\"image\": " + json_string(path) + ", \"flagged\": [" + flagged + "], \"scores\": {" + scores + "}}";
}

void print_table(const std::string& path, const std::vector<TagScore>& r) {
  size_t w = 8;
  std::string names;
  for (const auto& c : r) {
    w = std::max(w, c.label.size());
    if (c.flagged) names += (names.empty() ? "" : ", ") + c.label;
  }
  std::printf("%s: %s\n", path.c_str(), names.empty() ? "ok" : ("FLAGGED " + names).c_str());
  for (const auto& c : r)
    std::printf("  %-*s  %8.4f  %s %7.4f%s\n", static_cast<int>(w), c.label.c_str(), c.score, c.flagged ? ">=" : "< ",
                c.threshold, c.flagged ? "  flagged" : "");
}

int run(const ModerateArgs& a) {
  const Format fmt = resolve_format(a.format);
  classify::load_policy_file(a.policy);  // a bad policy is reported before the model is loaded
  const auto paths = gather_image_inputs(a.inputs);
  if (paths.empty()) throw Error("inputs", "no image files found");
  auto model = a.model.load(a.quiet, a.no_cache);
  ClassifierOptions copt;
  if (a.no_cache) copt.cache_dir = "none";
  copt.progress = prompt_progress(!a.quiet);
  const Moderator mod = Moderator::load(*model, a.policy, copt);

  util::ProgressBar bar("moderating", paths.size(), !a.quiet, 0, util::ProgressUnit::Items);
  size_t failed = 0, flagged = 0;
  const bool bar_shares_terminal = stdout_is_tty();
  model->embed_image_files(paths, a.batch, [&](size_t i, const float* emb, const std::string& engine_err) {
    const std::string err = emb ? "" : explain_limits(engine_err);
    if (bar_shares_terminal || !emb) bar.clear();
    if (!emb) {
      ++failed;
      std::fprintf(stderr, "zeroshot: %s\n", err.c_str());
      if (fmt == Format::Json)
        std::printf("{\"image\": %s, \"error\": %s}\n", json_string(paths[i]).c_str(), json_string(err).c_str());
    } else {
      const auto r = mod.moderate(emb);
      for (const auto& c : r)
        if (c.flagged) {
          ++flagged;
          break;
        }
      if (fmt == Format::Json) std::printf("%s\n", json_line(paths[i], r).c_str());
      else print_table(paths[i], r);
    }
    std::fflush(stdout);
    bar.tick();
    return true;
  });
  bar.finish();
  if (failed) {
    std::fprintf(stderr, "zeroshot: %zu of %zu images could not be read\n", failed, paths.size());
    return kExitTrouble;
  }
  return flagged ? kExitFlagged : 0;
}

}  // namespace

void add_moderate_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<ModerateArgs>();
  CLI::App* c = app.add_subcommand("moderate", "Flag images (files or folders) against a moderation policy");
  c->add_option("inputs", a->inputs, "Image files and folders (folders are searched recursively)")->required();
  c->add_option("-p,--policy", a->policy, "Policy file (TOML): categories of prompts with thresholds")->required();
  a->model.add_to(*c);
  c->add_option("-b,--batch-size", a->batch, "Images encoded together")->default_val(8)->check(CLI::Range(1, 1024));
  add_format_option(*c, &a->format);
  c->add_flag("-q,--quiet", a->quiet, "No progress bar");
  c->add_flag(
      "--no-cache", a->no_cache,
      "Do not read or write the caches in $XDG_CACHE_HOME/zeroshot (default ~/.cache/zeroshot): prompt embeddings, "
      "packed weights");
  c->footer(
      "Each category is scored on its own: the best of its prompts against its negative prompts as a two-way\n"
      "softmax of exp(logit_scale) x cosine (on = \"probability\"), or that prompt's cosine (on = \"cosine\"), and is\n"
      "flagged when the score >= its threshold. examples/moderation-policy.toml shows the format.\n"
      "JSON (one line per image): {\"image\": PATH, \"flagged\": [{\"category\": C, \"score\": S, \"threshold\": T},\n"
      "...], \"scores\": {C: S, ...}} with categories in policy order; an unreadable image gives\n"
      "{\"image\": PATH, \"error\": MESSAGE}.\n"
      "Exit code: 0 nothing flagged, 1 something flagged, 2 trouble (bad policy or input, unreadable image).");
  // Errors become exit code 2 here, so that they cannot be mistaken for "flagged" (main() maps errors to 1).
  c->callback([a, action] {
    *action = [a] {
      try {
        return run(*a);
      } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "zeroshot: out of memory\n");
      } catch (const std::exception& e) {
        std::fprintf(stderr, "zeroshot: %s\n", explain_limits(e.what()).c_str());
      }
      return kExitTrouble;
    };
  });
}

}  // namespace zeroshot::cli
