// `zeroshot eval` on audio: a generated ESC-50-layout folder (fixture clips linked into audio/, a meta/esc50.csv
// over two folds) through the CLI with the tiny CLAP fixture models, its accuracy overall and per fold against a
// computation written here from the engine's own classification (ZeroShotClassifier on Model::embed_audio_files).
// The random-weight models give most clips the same class, so the main test labels the clips from the engine's
// own predictions (every third one wrong on purpose): the expected accuracies are then known by construction.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "classify/label_sets.h"
#include "support/cli.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "zeroshot/zeroshot.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

// One clip of the generated data set: the fixture file, its ESC-50 name, fold and category (an index into
// categories(); written as ESC-50 does, with '_').
struct Clip {
  std::string fixture, name;
  int fold;
  int target;
};

std::string spaced(std::string s) {
  for (char& c : s)
    if (c == '_') c = ' ';
  return s;
}

const std::vector<std::string>& categories() {
  static const std::vector<std::string> c = {"dog", "rain", "siren", "crying_baby", "clock_tick", "church_bells"};
  return c;
}

const std::vector<Clip>& clips() {
  static const std::vector<Clip> c = {
      {"chirp_50hz_20khz_4s.wav", "1-100-A-0.wav", 1, 0}, {"chord_3s.wav", "1-101-A-1.wav", 1, 1},
      {"clicks_10hz_2s.wav", "1-102-A-2.wav", 1, 2},      {"mix_pcm16.wav", "1-103-A-3.wav", 1, 3},
      {"tone_440hz_3s.wav", "1-104-A-4.wav", 1, 4},       {"white_noise_3s.wav", "1-105-A-5.wav", 1, 5},
      {"speech_espeak.wav", "2-200-A-0.wav", 2, 0},       {"stereo_3s.wav", "2-201-A-1.wav", 2, 1},
      {"silence_1s.wav", "2-202-A-2.wav", 2, 2},          {"mix.flac", "2-203-A-3.flac", 2, 3},
      {"short_0p35s.wav", "2-204-A-4.wav", 2, 4},         {"long_25s.wav", "2-205-A-5.wav", 2, 5},
  };
  return c;
}

class Esc50Folder {
 public:
  // targets[i]: the category of clips()[i] (default: the one clips() gives). The CSV's targets are the categories
  // used, numbered in order of first use (ESC-50 needs 0..N-1 all present).
  explicit Esc50Folder(std::vector<int> targets = {}) {
    if (targets.empty())
      for (const Clip& c : clips()) targets.push_back(c.target);
    fs::create_directories(dir_ / "esc" / "audio");
    fs::create_directories(dir_ / "esc" / "meta");
    std::ofstream csv(dir_ / "esc" / "meta" / "esc50.csv");
    csv << "filename,fold,target,category,esc10,src_file,take\n";
    std::map<int, int> number;
    for (size_t i = 0; i < clips().size(); ++i) {
      const Clip& c = clips()[i];
      const int t = number.emplace(targets[i], static_cast<int>(number.size())).first->second;
      fs::create_symlink(audio_path(c.fixture), dir_ / "esc" / "audio" / c.name);
      csv << c.name << "," << c.fold << "," << t << "," << categories()[targets[i]] << ",False,1,A\n";
    }
  }
  std::string root() const { return (dir_ / "esc").string(); }
  std::string path(const std::string& rel) const { return (dir_ / rel).string(); }

  CliResult run(const Args& args) const { return run_cli_in(tmp_.str(), args); }

 private:
  TempDir tmp_{"eval_audio"};
  const fs::path dir_ = tmp_.path;
};

// Top-1 hits per fold (and in all), from the engine's own classification of each clip against `labels`.
struct FoldHits {
  std::map<int, std::pair<size_t, size_t>> by_fold;  // fold -> (hits, samples)
  size_t hits = 0, samples = 0;
};

// The engine's top-1 category (index into categories()) of every clip.
std::vector<int> engine_predictions(const Model& model) {
  ClassifierOptions none;
  none.cache_dir = "none";
  std::vector<std::string> labels;
  for (const auto& c : categories()) labels.push_back(spaced(c));
  ZeroShotClassifier clf(model, labels, {}, none);
  std::vector<std::string> paths;
  for (const Clip& c : clips()) paths.push_back(audio_path(c.fixture));
  const Embeddings emb = model.embed_audio_files(paths);
  std::vector<int> pred;
  for (size_t i = 0; i < paths.size(); ++i)
    pred.push_back(
        static_cast<int>(std::find(labels.begin(), labels.end(), clf.classify(emb.row(i))[0].label) - labels.begin()));
  return pred;
}

FoldHits engine_hits(const Model& model, const std::vector<std::vector<std::string>>& labels, int only_fold,
                     const std::vector<int>& targets) {
  ClassifierOptions none;
  none.cache_dir = "none";
  ZeroShotClassifier clf(model, labels, {}, none);  // {}: the model's default template
  std::vector<std::string> paths;
  std::vector<const Clip*> used;
  for (const Clip& c : clips())
    if (only_fold == 0 || c.fold == only_fold) {
      paths.push_back(audio_path(c.fixture));
      used.push_back(&c);
    }
  const Embeddings emb = model.embed_audio_files(paths);
  FoldHits h;
  for (size_t i = 0; i < used.size(); ++i) {
    const size_t at = static_cast<size_t>(used[i] - clips().data());
    const bool hit =
        clf.classify(emb.row(i))[0].label == spaced(categories()[targets.empty() ? used[i]->target : targets[at]]);
    h.by_fold[used[i]->fold].first += hit;
    h.by_fold[used[i]->fold].second += 1;
    h.hits += hit;
    h.samples += 1;
  }
  return h;
}

void expect_folds(const io::Json& set, const FoldHits& want, const std::string& what) {
  ASSERT_TRUE(set.contains("per_fold")) << what;
  ASSERT_EQ(set["per_fold"].size(), want.by_fold.size()) << what;
  for (const auto& f : set["per_fold"]) {
    const int fold = f["fold"].get<int>();
    ASSERT_TRUE(want.by_fold.count(fold)) << what << " fold " << fold;
    const auto [hits, n] = want.by_fold.at(fold);
    EXPECT_EQ(f["samples"].get<size_t>(), n) << what << " fold " << fold;
    EXPECT_DOUBLE_EQ(f["acc1"].get<double>(), double(hits) / n) << what << " fold " << fold;
  }
}

std::vector<std::vector<std::string>> category_labels() {
  std::vector<std::vector<std::string>> l;
  for (const auto& c : categories()) l.push_back({spaced(c)});
  return l;
}

}  // namespace

TEST(EvalAudio, Esc50AccuracyOverallAndPerFoldEqualsTheEnginesOwn) {
  std::string all_labels;
  for (const auto& c : categories()) all_labels += (all_labels.empty() ? "" : ",") + spaced(c);
  for (const std::string m : {"clap-tiny-unfused", "clap-tiny-fused"}) {
    auto model = Model::load(clap_dir(m));
    // Labels: the engine's prediction, except every third clip, which gets the next category (a miss).
    const std::vector<int> pred = engine_predictions(*model);
    std::vector<int> targets;
    std::map<int, std::pair<size_t, size_t>> by_construction;  // fold -> (hits, samples)
    for (size_t i = 0; i < pred.size(); ++i) {
      const bool miss = i % 3 == 2;
      targets.push_back(miss ? (pred[i] + 1) % static_cast<int>(categories().size()) : pred[i]);
      by_construction[clips()[i].fold].first += !miss;
      by_construction[clips()[i].fold].second += 1;
    }
    Esc50Folder f(targets);
    // --labels: all six categories compete, whichever the CSV uses.
    const CliResult r = f.run({"eval", "-m", clap_dir(m), "--data", f.root(), "--labels", all_labels, "-f", "json",
                               "-q", "-o", f.path("out.json")});
    ASSERT_EQ(r.code, 0) << r.err;
    const io::Json j = io::parse_json(r.out, "stdout");
    EXPECT_EQ(io::load_json(f.path("out.json")), j);
    EXPECT_EQ(j["layout"], "esc50");
    EXPECT_EQ(j["modality"], "audio");
    EXPECT_EQ(j["evaluated"], clips().size());
    EXPECT_EQ(j["classes"], categories().size());
    ASSERT_EQ(j["templates"].size(), 1u);
    // No --templates: the model's default, the audio pipeline's template.
    EXPECT_EQ(j["templates"][0]["templates"].get<std::vector<std::string>>(),
              std::vector<std::string>{kDefaultAudioTemplate});

    const FoldHits want = engine_hits(*model, category_labels(), 0, targets);
    EXPECT_EQ(want.by_fold, by_construction) << m;
    EXPECT_DOUBLE_EQ(j["metrics"]["acc1"].get<double>(), double(want.hits) / want.samples) << m;
    EXPECT_DOUBLE_EQ(j["metrics"]["acc1"].get<double>(), 8.0 / 12.0) << m;
    expect_folds(j["templates"][0], want, m);

    // --fold 2: that fold only.
    const CliResult r2 = f.run(
        {"eval", "-m", clap_dir(m), "--data", f.root(), "--labels", all_labels, "--fold", "2", "-f", "json", "-q"});
    ASSERT_EQ(r2.code, 0) << r2.err;
    const io::Json j2 = io::parse_json(r2.out, "stdout");
    const FoldHits want2 = engine_hits(*model, category_labels(), 2, targets);
    EXPECT_EQ(j2["evaluated"], want2.samples);
    EXPECT_DOUBLE_EQ(j2["metrics"]["acc1"].get<double>(), double(want2.hits) / want2.samples) << m;
    expect_folds(j2["templates"][0], want2, m + " fold 2");
  }
}

TEST(EvalAudio, BuiltInEsc50LabelsMakeAllFiftyClasses) {
  Esc50Folder f;
  const std::string m = "clap-tiny-unfused";
  const CliResult r = f.run({"eval", "-m", clap_dir(m), "--data", f.root(), "--labels", "esc50", "-f", "json", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  const io::Json j = io::parse_json(r.out, "stdout");
  EXPECT_EQ(j["classes"], 50u);
  auto model = Model::load(clap_dir(m));
  const FoldHits want = engine_hits(*model, classify::find_label_set("esc50")->classes, 0, {});
  EXPECT_DOUBLE_EQ(j["metrics"]["acc1"].get<double>(), double(want.hits) / want.samples);
  expect_folds(j["templates"][0], want, "esc50 labels");
}

TEST(EvalAudio, ModalityMismatchAndImageCacheAreOneLineErrors) {
  Esc50Folder f;
  CliResult r = f.run({"eval", "-m", fixtures() + "/clip/clip-tiny-quickgelu", "--data", f.root(), "-q"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("holds audio clips"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = f.run({"eval", "-m", clap_dir("clap-tiny-unfused"), "--data", f.root(), "--cache", "-q"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--cache"), std::string::npos) << r.err;
}
