// `zeroshot eval` end to end with the fixture models: its metrics against a computation written here from the
// engine's own classification (ZeroShotClassifier: softmax over exp(logit_scale) * cosine, sorted), on the fixture
// images with a hand-made label file; the three image layouts; multi-label AP; caches; bad data reported clearly.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "support/cli.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "zeroshot/zeroshot.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

// A scratch folder per test; HF cache, XDG dirs and the label cache all inside it.
class Scratch {
 public:
  std::string path(const std::string& rel) const { return dir_ / rel; }
  std::string write(const std::string& rel, const std::string& text) const { return dir_.file(rel, text); }
  void link(const std::string& target, const std::string& rel) const {
    fs::create_directories((dir_.path / rel).parent_path());
    fs::create_symlink(target, dir_.path / rel);
  }
  CliResult run(const Args& args) const { return run_cli_in(dir_.str(), args); }

 private:
  TempDir dir_{"eval"};
};

// The hand-made labels of the fixture images (what each photo shows, roughly; a few classes share photos).
const std::vector<std::pair<std::string, std::string>>& hand_labels() {
  static const std::vector<std::pair<std::string, std::string>> l = {
      {"astronaut.png", "person"},
      {"camera.png", "person"},
      {"gray.jpg", "person"},
      {"chelsea.png", "cat"},
      {"cmyk.jpg", "cat"},
      {"progressive.jpg", "cat"},
      {"coffee.png", "cup of coffee"},
      {"horse.png", "horse"},
      {"motorcycle_left.png", "motorcycle"},
      {"rocket.jpg", "rocket"},
      {"hubble_deep_field.jpg", "galaxy"},
      {"coins.png", "coins"},
      {"page.png", "page of text"},
      {"exif_orientation6.jpg", "cat"},
      {"lossy.webp", "person"},
      {"tall.webp", "person"},
      {"wide.png", "page of text"},
      {"block.png", "coins"},
      {"green_palette.png", "galaxy"},
      {"no_time_for_that_tiny.gif", "cat"},
  };
  return l;
}

std::vector<std::string> hand_classes() {
  std::set<std::string> s;
  for (const auto& [f, c] : hand_labels()) s.insert(c);
  return {s.begin(), s.end()};  // the CSV reader's order: sorted
}

std::string hand_csv() {
  std::string csv = "path,label\n";
  for (const auto& [f, c] : hand_labels()) csv += image_path(f) + "," + c + "\n";
  return csv;
}

// Metrics computed here from ZeroShotClassifier's sorted results, one simple loop each.
struct Expect {
  double acc1 = 0, acc5 = 0, mpcr = 0;
  std::map<std::string, std::array<size_t, 3>> per_class;  // support, predicted, correct
  std::map<std::pair<std::string, std::string>, size_t> confusion;
};

Expect engine_metrics(const Model& model, const std::vector<std::string>& templates) {
  const auto classes = hand_classes();
  ZeroShotClassifier clf(model, classes, templates, ClassifierOptions{"none"});
  Expect e;
  size_t n = 0, h1 = 0, h5 = 0;
  for (const auto& [file, truth] : hand_labels()) {
    const Embeddings emb = model.embed_image_files({image_path(file)});
    const auto ranked = clf.classify(emb.row(0));
    ++n;
    h1 += ranked[0].label == truth;
    for (size_t k = 0; k < 5 && k < ranked.size(); ++k) h5 += ranked[k].label == truth;
    e.per_class[truth][0]++;
    e.per_class[ranked[0].label][1]++;
    e.per_class[truth][2] += ranked[0].label == truth;
    e.confusion[{truth, ranked[0].label}]++;
  }
  e.acc1 = double(h1) / n;
  e.acc5 = double(h5) / n;
  double sum = 0, present = 0;
  for (const auto& [c, v] : e.per_class)
    if (v[0]) {
      sum += double(v[2]) / v[0];
      present += 1;
    }
  e.mpcr = sum / present;
  return e;
}

void expect_metrics(const io::Json& m, const Expect& e, const std::string& what) {
  EXPECT_DOUBLE_EQ(m["acc1"].get<double>(), e.acc1) << what;
  EXPECT_DOUBLE_EQ(m["acc5"].get<double>(), e.acc5) << what;
  EXPECT_NEAR(m["mean_per_class_recall"].get<double>(), e.mpcr, 1e-12) << what;
}

Args model_arg(const std::string& m) { return {"-m", clip_dir(m)}; }

// `zeroshot eval -m MODEL --data DATA REST...`.
Args eval_args(const Args& model, const std::string& data, const Args& rest = {}) {
  return Args{"eval"} + model + Args{"--data", data} + rest;
}

}  // namespace

TEST(Eval, MetricsEqualTheEnginesOwnClassification) {
  for (const auto& m : clip_models()) {
    Scratch s;
    const std::string csv = s.write("labels.csv", hand_csv());
    const CliResult r = s.run(eval_args(
        model_arg(m), csv, {"--templates", "default,imagenet7", "-f", "json", "-q", "-o", s.path("out.json")}));
    ASSERT_EQ(r.code, 0) << r.err;
    const io::Json j = io::parse_json(r.out, "stdout");
    EXPECT_EQ(io::load_json(s.path("out.json")), j);
    EXPECT_EQ(j["task"], "zeroshot_classification");
    EXPECT_EQ(j["evaluated"], hand_labels().size());
    ASSERT_EQ(j["templates"].size(), 3u);  // default, imagenet7, ensemble

    auto model = Model::load(clip_dir(m));
    std::vector<std::string> t7 = j["templates"][1]["templates"];
    ASSERT_EQ(t7.size(), 7u);
    std::vector<std::string> all = {kDefaultImageTemplate};
    all.insert(all.end(), t7.begin(), t7.end());
    EXPECT_EQ(j["templates"][2]["templates"].get<std::vector<std::string>>(), all);

    const Expect def = engine_metrics(*model, {});
    expect_metrics(j["metrics"], def, m + " primary");
    expect_metrics(j["templates"][0]["metrics"], def, m + " default");
    expect_metrics(j["templates"][1]["metrics"], engine_metrics(*model, t7), m + " imagenet7");
    expect_metrics(j["templates"][2]["metrics"], engine_metrics(*model, all), m + " ensemble");

    // Per-class counts, precision/recall and confusion cells of the primary set.
    const auto classes = hand_classes();
    ASSERT_EQ(j["per_class"].size(), classes.size());
    for (size_t k = 0; k < classes.size(); ++k) {
      const auto& c = j["per_class"][k];
      EXPECT_EQ(c["class"], classes[k]);
      const auto v = def.per_class.count(classes[k]) ? def.per_class.at(classes[k]) : std::array<size_t, 3>{0, 0, 0};
      EXPECT_EQ(c["support"], v[0]) << classes[k];
      EXPECT_EQ(c["predicted"], v[1]) << classes[k];
      EXPECT_EQ(c["correct"], v[2]) << classes[k];
      if (v[1]) {
        EXPECT_DOUBLE_EQ(c["precision"].get<double>(), double(v[2]) / v[1]);
      } else {
        EXPECT_TRUE(c["precision"].is_null());
      }
      EXPECT_DOUBLE_EQ(c["recall"].get<double>(), double(v[2]) / v[0]);
    }
    size_t cells = 0;
    for (const auto& cell : j["confusion"]) {
      const std::pair<std::string, std::string> key{classes[cell[0].get<size_t>()], classes[cell[1].get<size_t>()]};
      ASSERT_TRUE(def.confusion.count(key)) << key.first << " -> " << key.second;
      EXPECT_EQ(cell[2].get<size_t>(), def.confusion.at(key));
      ++cells;
    }
    EXPECT_EQ(cells, def.confusion.size());
  }
}

TEST(Eval, MultiLabelAveragePrecisionFromTheEnginesCosines) {
  const std::string m = "clip-tiny-gelu-f16";
  Scratch s;
  // Several labels per row make the data set multi-label.
  const std::vector<std::pair<std::string, std::vector<std::string>>> rows = {
      {"astronaut.png", {"person", "flag"}},
      {"chelsea.png", {"cat"}},
      {"coffee.png", {"cup", "table"}},
      {"horse.png", {"animal"}},
      {"camera.png", {"person"}},
      {"motorcycle_left.png", {"vehicle"}},
      {"rocket.jpg", {"vehicle", "sky"}},
      {"coins.png", {"table"}},
      {"progressive.jpg", {"cat", "animal"}},
  };
  std::string csv;
  for (const auto& [f, ls] : rows) {
    csv += image_path(f);
    for (const auto& l : ls) csv += "," + l;
    csv += "\n";
  }
  const CliResult r =
      s.run(eval_args(model_arg(m), s.write("ml.csv", csv), {"--label-cache", "none", "-f", "json", "-q"}));
  ASSERT_EQ(r.code, 0) << r.err;
  const io::Json j = io::parse_json(r.out, "stdout");
  EXPECT_TRUE(j["multi_label"].get<bool>());
  ASSERT_TRUE(j["metrics"].contains("mean_average_precision"));

  std::set<std::string> uniq;
  for (const auto& [f, ls] : rows) uniq.insert(ls.begin(), ls.end());
  const std::vector<std::string> labels(uniq.begin(), uniq.end());
  auto model = Model::load(clip_dir(m));
  ZeroShotClassifier clf(*model, labels, {}, ClassifierOptions{"none"});
  std::vector<std::vector<float>> cos;
  for (const auto& [f, ls] : rows) cos.push_back(clf.cosines(model->embed_image_files({image_path(f)}).row(0)));
  double sum = 0;
  for (size_t k = 0; k < labels.size(); ++k) {
    // AP: for each positive, precision among the images scored at least as high (no ties with random weights).
    double ap = 0, npos = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (!std::count(rows[i].second.begin(), rows[i].second.end(), labels[k])) continue;
      npos += 1;
      double above = 0, pos_above = 0;
      for (size_t q = 0; q < rows.size(); ++q)
        if (cos[q][k] >= cos[i][k]) {
          above += 1;
          pos_above += std::count(rows[q].second.begin(), rows[q].second.end(), labels[k]) > 0;
        }
      ap += pos_above / above;
    }
    ap /= npos;
    sum += ap;
    EXPECT_EQ(j["per_class"][k]["class"], labels[k]);
    EXPECT_NEAR(j["per_class"][k]["average_precision"].get<double>(), ap, 1e-9) << labels[k];
  }
  EXPECT_NEAR(j["metrics"]["mean_average_precision"].get<double>(), sum / labels.size(), 1e-9);
}

TEST(Eval, ThreeImageLayoutsGiveTheSameResult) {
  const std::string m = "clip-tiny-quickgelu";
  Scratch s;
  // The same images and labels as a CSV, as class sub-folders, and as <n>_<class> file names.
  // File-name prefixes: 100 x (the class's place in sorted order) + a count, so both list classes in one order.
  const auto classes = hand_classes();
  std::map<std::string, int> count;
  for (const auto& [f, c] : hand_labels()) {
    std::string cls = c;
    std::replace(cls.begin(), cls.end(), ' ', '_');
    s.link(image_path(f), "folder/" + cls + "/" + f);
    const int k = static_cast<int>(std::find(classes.begin(), classes.end(), c) - classes.begin());
    char n[16];
    std::snprintf(n, sizeof n, "%03d", 100 * k + count[c]++);
    s.link(image_path(f), "names/" + std::string(n) + "_" + cls + fs::path(f).extension().string());
  }
  const std::string csv = s.write("labels.csv", hand_csv());
  std::vector<io::Json> got;
  for (const std::string& data : std::vector<std::string>{csv, s.path("folder"), s.path("names")}) {
    const CliResult r = s.run(eval_args(model_arg(m), data, {"--label-cache", "none", "-f", "json", "-q"}));
    ASSERT_EQ(r.code, 0) << data << ": " << r.err;
    got.push_back(io::parse_json(r.out, "stdout"));
  }
  EXPECT_EQ(got[0]["layout"], "csv");
  EXPECT_EQ(got[1]["layout"], "folder");
  EXPECT_EQ(got[2]["layout"], "filename");
  for (const auto& g : got) {
    EXPECT_EQ(g["evaluated"], hand_labels().size());
    EXPECT_EQ(g["classes"], hand_classes().size());
    EXPECT_EQ(g["metrics"], got[0]["metrics"]);
    // Class names come back with spaces from folder and file names ("cup_of_coffee" -> "cup of coffee").
    EXPECT_EQ(g["per_class"][2]["class"], hand_classes()[2]);
  }
}

TEST(Eval, ImageEmbeddingCacheAndReport) {
  const std::string m = "clip-tiny-quickgelu";
  Scratch s;
  const std::string csv = s.write("labels.csv", hand_csv());
  const Args base = eval_args(model_arg(m), csv, {"-f", "json", "-q", "--cache"});
  const CliResult first = s.run(base + Args{"--report", s.path("r.html")});
  ASSERT_EQ(first.code, 0) << first.err;
  const io::Json a = io::parse_json(first.out, "stdout");
  // The cache indexes the folders that hold the files: here every decodable image of fixtures/images (21).
  EXPECT_GE(a["embedded"].get<size_t>(), hand_labels().size());
  EXPECT_EQ(a["from_cache"], 0);
  ASSERT_TRUE(a.contains("cache"));
  EXPECT_NE(a["cache"].get<std::string>().find(s.path("data")), std::string::npos) << a["cache"];

  // Again, and with other labels: nothing embedded, same metrics as a run without the cache.
  const CliResult second = s.run(base);
  ASSERT_EQ(second.code, 0) << second.err;
  const io::Json b = io::parse_json(second.out, "stdout");
  EXPECT_EQ(b["embedded"], 0);
  EXPECT_EQ(b["from_cache"], hand_labels().size());
  EXPECT_EQ(b["metrics"], a["metrics"]);
  const CliResult plain = s.run(eval_args(model_arg(m), csv, {"-f", "json", "-q", "--label-cache", "none"}));
  ASSERT_EQ(plain.code, 0) << plain.err;
  const io::Json c = io::parse_json(plain.out, "stdout");
  EXPECT_NEAR(c["metrics"]["acc1"].get<double>(), a["metrics"]["acc1"].get<double>(), 1e-12);
  EXPECT_NEAR(c["metrics"]["acc5"].get<double>(), a["metrics"]["acc5"].get<double>(), 1e-12);

  const std::string html = read_file(s.path("r.html"));
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("Worst-confused pairs"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("data:image/jpeg;base64,"), std::string::npos);
  EXPECT_NE(html.find("cup of coffee"), std::string::npos);
}

TEST(Eval, BadDataIsReportedClearly) {
  const Args m = model_arg("clip-tiny-quickgelu");
  Scratch s;
  // An empty class folder: one line naming it, before any model work.
  s.link(image_path("chelsea.png"), "folder/cat/chelsea.png");
  fs::create_directories(s.path("folder/dog"));
  CliResult r = s.run(eval_args(m, s.path("folder")));
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(s.path("folder/dog") + ": class folder has no image files"), std::string::npos) << r.err;

  // An unknown label in a CSV with given labels: the row is named.
  const std::string csv = s.write("l.csv", image_path("chelsea.png") + ",cat\n" + image_path("horse.png") + ",zebra\n");
  r = s.run(eval_args(m, csv, {"--labels", "cat,horse"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(csv + ":2: unknown label \"zebra\""), std::string::npos) << r.err;

  // A CSV naming a file that does not exist.
  const std::string missing = s.write("m.csv", s.path("nope.jpg") + ",cat\n");
  r = s.run(eval_args(m, missing));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("nope.jpg: no such file"), std::string::npos) << r.err;

  // Unreadable images: each named, left out of the metrics, exit code 1, results still written.
  const std::string bad = s.write("bad.csv", image_path("chelsea.png") + ",cat\n" + image_path("horse.png") +
                                                 ",horse\n" + image_path("bad_truncated.jpg") + ",cat\n" +
                                                 image_path("bad_not_an_image.jpg") + ",horse\n");
  r = s.run(eval_args(m, bad, {"-f", "json", "-q", "--label-cache", "none"}));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("bad_truncated.jpg"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bad_not_an_image.jpg"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2 of 4 files could not be read"), std::string::npos) << r.err;
  const io::Json j = io::parse_json(r.out, "stdout");
  EXPECT_EQ(j["evaluated"], 2);
  ASSERT_EQ(j["failures"].size(), 2u);
  EXPECT_EQ(j["failures"][0]["path"], image_path("bad_truncated.jpg"));
  EXPECT_EQ(j["per_class"][0]["support"].get<int>() + j["per_class"][1]["support"].get<int>(), 2);

  // Nothing readable at all.
  const std::string none = s.write("none.csv", image_path("bad_empty.png") + ",cat\n");
  r = s.run(eval_args(m, none, {"-q", "--label-cache", "none"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("none of the 1 files could be read"), std::string::npos) << r.err;

  // Unknown template set, layout; a fold outside ESC-50.
  r = s.run(eval_args(m, csv, {"--templates", "nope"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--templates nope"), std::string::npos) << r.err;
  r = s.run(eval_args(m, csv, {"--fold", "2"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("only defined for the ESC-50 layout"), std::string::npos) << r.err;
}

// ESC-50 through an image model: refused clearly (the audio evaluation itself: eval_audio_test.cpp).
TEST(Eval, Esc50WithAnImageModelIsRefused) {
  Scratch s;
  s.write("esc/meta/esc50.csv", "filename,fold,target,category,esc10,src_file,take\n1-1-A-0.wav,1,0,dog,True,1,A\n");
  s.write("esc/audio/1-1-A-0.wav", "RIFF");
  const CliResult r = s.run(eval_args(model_arg("clip-tiny-quickgelu"), s.path("esc"), {"--fold", "1"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("layout holds audio clips, and"), std::string::npos) << r.err;
}
