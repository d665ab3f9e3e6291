// Multi-label tagging (classify --multi-label) and moderation (moderate --policy), run as a user runs them, checked
// against scores this test computes itself from `zeroshot embed` embeddings: its own normalization, prompt
// ensembling, cosines and two-way softmax, in double precision.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "support/cli.h"
#include "support/compare.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "zeroshot/tagging.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

const char* kModel = "clip-tiny-quickgelu";

// Files the tests write, in one folder for the whole run (removed at exit).
const TempDir& scratch() {
  static const TempDir d("tagging");
  return d;
}

std::string temp_path(const std::string& name) { return scratch() / name; }

std::string write_temp(const std::string& name, const std::string& text) { return scratch().file(name, text); }

// The built binary with `args`, stdin closed, HF cache isolated and offline; the label cache ($XDG_CACHE_HOME) in
// `cache_home`, or a fresh folder removed afterwards.
CliResult zeroshot_cli(const Args& args, const std::string& cache_home = "") {
  CliOptions o;
  if (!cache_home.empty()) o.env = {{"XDG_CACHE_HOME", cache_home}};
  return run_cli(args, o);
}

size_t count_lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

using Vec = std::vector<double>;

Vec normalized(Vec v) {
  double n = 0;
  for (double x : v) n += x * x;
  n = std::max(std::sqrt(n), 1e-12);
  for (double& x : v) x /= n;
  return v;
}

double cosine(const Vec& a, const Vec& b) { return zeroshot::testing::cosine(a.data(), b.data(), a.size()); }

double two_way(double cp, double cn, double s) { return std::exp(s * cp) / (std::exp(s * cp) + std::exp(s * cn)); }

std::string fill(const std::string& tmpl, const std::string& name) {
  const auto at = tmpl.find("{}");
  return tmpl.substr(0, at) + name + tmpl.substr(at + 2);
}

// The model's own embeddings through `zeroshot embed`, and exp(logit_scale) from its weights.
struct Reference {
  std::map<std::string, Vec> text, image;
  double scale = 0;

  Reference(const std::vector<std::string>& texts, const std::vector<std::string>& images) {
    io::SafeTensorsFile w(clip_dir(kModel) + "/model.safetensors");
    scale = std::exp(static_cast<double>(io::to_f32(w.tensors().at("logit_scale"))[0]));
    std::string tf_text;
    for (const auto& t : texts) tf_text += t + "\n";
    const std::string tf = write_temp("texts.txt", tf_text);
    Args args = {"embed", "-m", clip_dir(kModel), "-f", "json", "--text-file", tf};
    for (const auto& i : images) args = args + Args{"--image", i};
    CliResult r = zeroshot_cli(args);
    fs::remove(tf);
    EXPECT_EQ(r.code, 0) << r.err;
    for (const auto& l : json_lines(r.out)) {
      auto& dst = l["kind"] == "text" ? text : image;
      dst[l["input"].get<std::string>()] = l["embedding"].get<Vec>();
    }
    EXPECT_EQ(image.size(), images.size());
  }

  // Normalize each prompt, average, normalize: CLIP's prompt ensembling.
  Vec ensemble(const std::vector<std::string>& prompts) const {
    Vec sum;
    for (const auto& p : prompts) {
      const Vec e = normalized(text.at(p));
      if (sum.empty()) sum.assign(e.size(), 0.0);
      for (size_t i = 0; i < e.size(); ++i) sum[i] += e[i];
    }
    for (double& x : sum) x /= static_cast<double>(prompts.size());
    return normalized(sum);
  }
};

std::vector<std::string> filled(const std::vector<std::string>& names, const std::vector<std::string>& templates) {
  std::vector<std::string> out;
  for (const auto& n : names)
    for (const auto& t : templates) out.push_back(fill(t, n));
  return out;
}

// A threshold between two neighbouring scores near the middle, at least `gap` from every score (so float noise
// cannot flip a flag), or NaN if the scores are too close together.
double split_threshold(std::vector<double> s, double gap) {
  std::sort(s.begin(), s.end());
  const size_t mid = s.size() / 2;
  for (size_t d = 0; d < s.size(); ++d) {
    for (size_t i : {mid + d, mid - d}) {
      if (i == 0 || i >= s.size()) continue;
      if (s[i] - s[i - 1] > 2 * gap) return 0.5 * (s[i] + s[i - 1]);
    }
  }
  return NAN;
}

// The decodable images of the fixtures plus every 50th photo of imagenet-samples.
std::vector<std::string> test_images() {
  std::vector<std::string> imgs;
  for (const auto& e : fs::directory_iterator(fixtures() + "/images")) {
    const std::string name = e.path().filename().string();
    if (name.rfind("bad_", 0) != 0) imgs.push_back(e.path().string());
  }
  std::vector<std::string> photos;
  const std::string dir = std::string(ZEROSHOT_SHARED) + "/datasets/imagenet-samples";
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir)) photos.push_back(e.path().string());
  std::sort(photos.begin(), photos.end());
  for (size_t i = 0; i < photos.size(); i += 50) imgs.push_back(photos[i]);
  std::sort(imgs.begin(), imgs.end());
  return imgs;
}

void expect_one_line_error(const CliResult& r, int code, const std::string& must_name, const std::string& what = "") {
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(must_name), std::string::npos) << r.err;
  if (!what.empty()) {
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  }
  EXPECT_TRUE(r.out.empty()) << r.out;
}

}  // namespace

TEST(Tagging, MultiLabelProbabilitiesMatchAnIndependentComputation) {
  const std::vector<std::string> labels = {"cat", "dog", "a red car"};
  const std::vector<std::string> templates = {"a photo of {}.", "art of {}."};
  const std::vector<std::string> neutral = {"something", "an object"};  // the documented default negatives
  const auto images = test_images();
  ASSERT_GE(images.size(), 30u);
  std::vector<std::string> texts = filled(labels, templates);
  for (const auto& t : filled(neutral, templates)) texts.push_back(t);
  for (const auto& t : filled({"a toy"}, templates)) texts.push_back(t);
  const Reference ref(texts, images);

  // Expected scores: label ensembles against the neutral ensemble; "dog" against its own negative "a toy".
  const Vec neg = ref.ensemble(filled(neutral, templates));
  const Vec toy = ref.ensemble(filled({"a toy"}, templates));
  std::map<std::string, std::map<std::string, double>> want;
  std::map<std::string, std::vector<double>> per_label;
  for (const auto& img : images) {
    const Vec& x = ref.image.at(img);
    for (const auto& l : labels) {
      const double p =
          two_way(cosine(x, ref.ensemble(filled({l}, templates))), cosine(x, l == "dog" ? toy : neg), ref.scale);
      want[img][l] = p;
      per_label[l].push_back(p);
    }
  }
  // Thresholds that split the images: one global (cat, dog) and one per label (a red car, from the command line).
  const double t_cat = split_threshold(per_label["cat"], 1e-4);
  const double t_car = split_threshold(per_label["a red car"], 1e-4);
  const double t_dog = split_threshold(per_label["dog"], 1e-4);
  ASSERT_FALSE(std::isnan(t_cat) || std::isnan(t_car) || std::isnan(t_dog));

  // dog's threshold and negative come from a labels file; cat and "a red car" from --labels.
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", t_dog);
  const std::string lf = write_temp("labels.txt", "# tags\ndog\t" + std::string(buf) + "\ta toy\n");
  Args args = {"classify", "--multi-label", "-m", clip_dir(kModel), "-l", "cat,a red car"};
  args = args + Args{"--labels-file", lf, "-f", "json"};
  for (const auto& t : templates) args = args + Args{"-t", t};
  std::snprintf(buf, sizeof buf, "%.9g", t_cat);
  args = args + Args{"--threshold", buf};
  std::snprintf(buf, sizeof buf, "%.9g", t_car);
  args = args + Args{"--threshold", "a red car=" + std::string(buf)};
  CliResult r = zeroshot_cli(args + images);
  fs::remove(lf);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), images.size());
  const std::map<std::string, double> thr = {{"cat", t_cat}, {"dog", t_dog}, {"a red car", t_car}};
  std::map<std::string, size_t> flagged;
  for (size_t i = 0; i < images.size(); ++i) {
    EXPECT_EQ(lines[i]["image"], images[i]);
    const auto& res = lines[i]["result"];
    ASSERT_EQ(res.size(), 3u);
    for (size_t k = 0; k < res.size(); ++k) {
      const std::string l = res[k]["label"];
      const double s = res[k]["score"];
      EXPECT_NEAR(s, want[images[i]][l], 2e-5) << images[i] << " " << l;
      if (k) {
        EXPECT_LE(s, res[k - 1]["score"].get<double>());  // independent scores, sorted
      }
      EXPECT_NEAR(res[k]["threshold"].get<double>(), thr.at(l), 1e-6);
      EXPECT_EQ(res[k]["flagged"].get<bool>(), want[images[i]][l] >= thr.at(l)) << images[i] << " " << l;
      flagged[l] += res[k]["flagged"].get<bool>();
    }
  }
  for (const auto& l : labels) {  // the thresholds split the set: the flags were really tested both ways
    EXPECT_GT(flagged[l], 0u) << l;
    EXPECT_LT(flagged[l], images.size()) << l;
  }
}

TEST(Tagging, CosineModeAndDefaults) {
  const auto images = test_images();
  const std::string tmpl = "This is a photo of {}.";  // the default template
  const Reference ref({fill(tmpl, "cat"), fill(tmpl, "dog"), fill(tmpl, "something"), fill(tmpl, "an object")}, images);
  std::vector<double> cat_cos;
  for (const auto& img : images) cat_cos.push_back(cosine(ref.image.at(img), ref.ensemble({fill(tmpl, "cat")})));
  const double t = split_threshold(cat_cos, 1e-4);
  ASSERT_FALSE(std::isnan(t));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", t);
  CliResult r = zeroshot_cli(Args{"classify", "--multi-label", "--multi-label-mode", "cosine", "-m", clip_dir(kModel),
                                  "-l", "cat,dog", "--threshold", buf, "-f", "json"} +
                             images);
  ASSERT_EQ(r.code, 0) << r.err;
  auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), images.size());
  size_t flagged = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    for (const auto& e : lines[i]["result"]) {
      if (e["label"] != "cat") continue;
      EXPECT_NEAR(e["score"].get<double>(), cat_cos[i], 1e-5);
      EXPECT_EQ(e["flagged"].get<bool>(), cat_cos[i] >= t);
      flagged += e["flagged"].get<bool>();
    }
  }
  EXPECT_GT(flagged, 0u);
  EXPECT_LT(flagged, images.size());

  // Defaults: default template, neutral negatives, threshold 0.5; --top-k keeps the best.
  r = zeroshot_cli(
      {"classify", "--multi-label", "-m", clip_dir(kModel), "-l", "cat,dog", "-k", "1", "-f", "json", images[0]});
  ASSERT_EQ(r.code, 0) << r.err;
  lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 1u);
  ASSERT_EQ(lines[0]["result"].size(), 1u);
  const Vec& x = ref.image.at(images[0]);
  const Vec neg = ref.ensemble({fill(tmpl, "something"), fill(tmpl, "an object")});
  const double pc = two_way(cosine(x, ref.ensemble({fill(tmpl, "cat")})), cosine(x, neg), ref.scale);
  const double pd = two_way(cosine(x, ref.ensemble({fill(tmpl, "dog")})), cosine(x, neg), ref.scale);
  EXPECT_EQ(lines[0]["result"][0]["label"], pc >= pd ? "cat" : "dog");
  EXPECT_NEAR(lines[0]["result"][0]["score"].get<double>(), std::max(pc, pd), 2e-5);
  EXPECT_EQ(lines[0]["result"][0]["threshold"].get<double>(), 0.5);
  EXPECT_EQ(lines[0]["result"][0]["flagged"].get<bool>(), std::max(pc, pd) >= 0.5);

  // Table output on request.
  r = zeroshot_cli({"classify", "--multi-label", "-m", clip_dir(kModel), "-l", "cat,dog", "-f", "table", images[0]});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(images[0]), std::string::npos);
  EXPECT_NE(r.out.find("  cat"), std::string::npos);
}

TEST(Tagging, BadMultiLabelInputsAreOneLineErrors) {
  const Args base = {"classify", "--multi-label", "-m", clip_dir(kModel), image_path("chelsea.png")};
  expect_one_line_error(zeroshot_cli(base + Args{"-l", "cat,dog", "--threshold", "1.5"}), 2, "--threshold \"1.5\"",
                        "between 0 and 1");
  expect_one_line_error(zeroshot_cli(base + Args{"-l", "cat,dog", "--threshold", "bird=0.5"}), 2, "bird=0.5",
                        "no label \"bird\"");
  expect_one_line_error(zeroshot_cli(base + Args{"-l", "cat,dog", "--threshold", "high"}), 2, "--threshold \"high\"");
  expect_one_line_error(zeroshot_cli(base + Args{"-l", "cat,dog", "--multi-label-mode", "cosine"}), 2, "label \"cat\"",
                        "threshold");
  expect_one_line_error(
      zeroshot_cli(base + Args{"-l", "cat", "--multi-label-mode", "cosine", "--threshold", "0.2", "--negative", "x"}),
      2, "--negative");
  const std::string lf = write_temp("bad_labels.txt", "cat\ndog\t0.5x\n");
  expect_one_line_error(zeroshot_cli(base + Args{"--labels-file", lf}), 2, lf + ":2", "not a number");
  std::ofstream(lf) << "cat\t0.7\ncat\n";
  expect_one_line_error(zeroshot_cli(base + Args{"--labels-file", lf}), 2, lf + ":2", "twice");
  fs::remove(lf);
  // The tagging options need --multi-label (a usage error, not an exit code 0).
  CliResult r =
      zeroshot_cli({"classify", "-m", clip_dir(kModel), "-l", "cat", "--threshold", "0.5", image_path("chelsea.png")});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("multi-label"), std::string::npos) << r.err;
}

TEST(Moderation, FlagsMatchAnIndependentComputation) {
  const auto images = test_images();
  const std::vector<std::string> tmpl = {"a photo of {}.", "a drawing of {}."};
  // "pets": verbatim prompts, default negatives ("a photo of something.", "a photo of an object.").
  const std::vector<std::string> pets = {"a photo of a cat", "a photo of a tiger"};
  const std::vector<std::string> pets_neg = {"a photo of something.", "a photo of an object."};
  // "weapons": templated prompts, its own negatives through the same templates.
  const std::vector<std::string> weapons = {"a gun", "a knife"};
  const std::vector<std::string> weapons_neg = {"a toy", "a tool"};
  // "space": raw cosine.
  const std::vector<std::string> space = {"a rocket in the sky"};
  std::vector<std::string> texts = pets;
  for (const auto& v : {pets_neg, filled(weapons, tmpl), filled(weapons_neg, tmpl), space})
    texts.insert(texts.end(), v.begin(), v.end());
  const Reference ref(texts, images);

  std::map<std::string, std::map<std::string, double>> want;
  std::map<std::string, std::vector<double>> all;
  const Vec pn = ref.ensemble(pets_neg), wn = ref.ensemble(filled(weapons_neg, tmpl));
  for (const auto& img : images) {
    const Vec& x = ref.image.at(img);
    double best = -2;
    for (const auto& p : pets) best = std::max(best, cosine(x, ref.ensemble({p})));
    want[img]["pets"] = two_way(best, cosine(x, pn), ref.scale);
    best = -2;
    for (const auto& w : weapons) best = std::max(best, cosine(x, ref.ensemble(filled({w}, tmpl))));
    want[img]["weapons"] = two_way(best, cosine(x, wn), ref.scale);
    want[img]["space"] = cosine(x, ref.ensemble(space));
    for (const auto& [c, s] : want[img]) all[c].push_back(s);
  }
  std::map<std::string, double> thr;
  for (const auto& [c, s] : all) {
    thr[c] = split_threshold(s, 1e-4);
    ASSERT_FALSE(std::isnan(thr[c])) << c;
  }
  auto num = [](double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.9g", v);
    return std::string(b);
  };
  auto policy_text = [&](const std::map<std::string, double>& t) {
    return "description = \"test policy\"\n"
           "[[category]]\nname = \"pets\"\nprompts = [\"a photo of a cat\", \"a photo of a tiger\"]\nthreshold = " +
           num(t.at("pets")) +
           "\n\n[[category]]\nname = \"weapons\"\nprompts = [\"a gun\", \"a knife\"]\n"
           "negative_prompts = [\"a toy\", \"a tool\"]\ntemplates = [\"a photo of {}.\", \"a drawing of {}.\"]\n"
           "threshold = " +
           num(t.at("weapons")) + "\n\n[[category]]\nname = \"space\"\nprompts = [\"a rocket in the sky\"]\n" +
           "on = \"cosine\"\nthreshold = " + num(t.at("space")) + "\n";
  };
  const std::string pf = write_temp("policy.toml", policy_text(thr));
  CliResult r = zeroshot_cli(Args{"moderate", "-m", clip_dir(kModel), "--policy", pf, "-f", "json"} + images);
  EXPECT_EQ(r.code, 1) << r.err;  // something flagged
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), images.size());
  std::map<std::string, size_t> count;
  const std::vector<std::string> order = {"pets", "weapons", "space"};
  for (size_t i = 0; i < images.size(); ++i) {
    EXPECT_EQ(lines[i]["image"], images[i]);
    const auto& scores = lines[i]["scores"];
    ASSERT_EQ(scores.size(), 3u);
    std::vector<std::string> expect_flagged;
    for (const auto& c : order) {
      const double w = want[images[i]][c];
      EXPECT_NEAR(scores[c].get<double>(), w, c == "space" ? 1e-5 : 2e-5) << images[i] << " " << c;
      if (w >= thr[c]) expect_flagged.push_back(c);
    }
    std::vector<std::string> got_flagged;
    for (const auto& f : lines[i]["flagged"]) {
      got_flagged.push_back(f["category"]);
      EXPECT_NEAR(f["threshold"].get<double>(), thr[f["category"].get<std::string>()], 1e-6);
      EXPECT_EQ(f["score"], scores[f["category"].get<std::string>()]);
      ++count[f["category"]];
    }
    EXPECT_EQ(got_flagged, expect_flagged) << images[i];  // in policy order
  }
  for (const auto& c : order) {
    EXPECT_GT(count[c], 0u) << c;
    EXPECT_LT(count[c], images.size()) << c;
  }

  // Thresholds above every score: nothing flagged, exit code 0; the table names each image "ok".
  std::map<std::string, double> high;
  for (const auto& [c, s] : all) high[c] = std::min(1.0, *std::max_element(s.begin(), s.end()) + 1e-3);
  std::ofstream(pf) << policy_text(high);
  r = zeroshot_cli(Args{"moderate", "-m", clip_dir(kModel), "--policy", pf, "-f", "json"} + images);
  EXPECT_EQ(r.code, 0) << r.err;
  for (const auto& l : json_lines(r.out)) EXPECT_TRUE(l["flagged"].empty()) << l.dump();
  r = zeroshot_cli({"moderate", "-m", clip_dir(kModel), "--policy", pf, "-f", "table", images[0]});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(images[0] + ": ok"), std::string::npos) << r.out;

  // The prompt embeddings go through the label cache: a second run reads them and prints the same.
  const std::string cache = temp_path("xdg");
  const Args cached_run = {"moderate", "-m", clip_dir(kModel), "--policy", pf, "-f", "json", images[0]};
  const CliResult first = zeroshot_cli(cached_run, cache);
  EXPECT_EQ(first.code, 0) << first.err;
  EXPECT_TRUE(fs::is_directory(cache) && !fs::is_empty(cache));
  const CliResult second = zeroshot_cli(cached_run, cache);
  EXPECT_EQ(second.code, 0) << second.err;
  EXPECT_EQ(second.out, first.out);
  fs::remove_all(cache);
  EXPECT_EQ(zeroshot_cli(cached_run + Args{"--no-cache"}, cache).out, first.out);
  EXPECT_FALSE(fs::exists(cache));

  // A folder with unreadable files: every readable image is still reported, and the exit code is 2.
  r = zeroshot_cli({"moderate", "-m", clip_dir(kModel), "--policy", pf, "-f", "json", fixtures() + "/images"});
  EXPECT_EQ(r.code, 2);
  size_t ok = 0, bad = 0;
  for (const auto& l : json_lines(r.out)) (l.contains("error") ? bad : ok)++;
  EXPECT_EQ(ok, 21u);
  EXPECT_EQ(bad, 4u);
  fs::remove(pf);
}

TEST(Moderation, ShippedExamplePolicyRuns) {
  CliResult r = zeroshot_cli({"moderate", "-m", clip_dir(kModel), "--policy",
                              std::string(ZEROSHOT_SOURCE_DIR) + "/examples/moderation-policy.toml", "-f", "json",
                              image_path("chelsea.png")});
  EXPECT_TRUE(r.code == 0 || r.code == 1) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_GE(lines[0]["scores"].size(), 5u);
  EXPECT_EQ(r.code == 1, !lines[0]["flagged"].empty());
}

TEST(Moderation, MalformedPoliciesAreOneLineErrorsWithExitCode2) {
  const Args run = {"moderate", "-m", clip_dir(kModel), "-f", "json", image_path("chelsea.png"), "--policy"};
  const std::string cat = "[[category]]\nname = \"x\"\nprompts = [\"a cat\"]\n";
  struct Case {
    std::string text, where, what;
  };
  const std::vector<Case> cases = {
      {"[[category]\nname = \"x\"\n", ":1", "invalid TOML"},
      {cat + "treshold = 0.5\n", ":4", "unknown key \"treshold\""},
      {"[[category]]\nname = \"x\"\n", ":1", "has no prompts"},
      {"[[category]]\nname = \"x\"\nprompts = []\n", ":3", "prompts is empty"},
      {cat + "threshold = 1.5\n", ":4", "between 0 and 1"},
      {cat + "on = \"cosine\"\n", ":1", "needs a threshold"},
      {"[[category]]\nname = \"x\"\nprompts = \"a cat\"\n", ":3", "must be an array of strings"},
      {cat + "threshold = \"high\"\n", ":4", "must be a number"},
      {cat + "templates = [\"no field\"]\n", ":4", "no field"},
      {cat + cat, ":5", "defined twice"},
      {"description = \"nothing\"\n", "", "no categories"},
  };
  const std::string pf = temp_path("bad_policy.toml");
  for (const auto& c : cases) {
    std::ofstream(pf, std::ios::binary | std::ios::trunc) << c.text;
    SCOPED_TRACE(c.text);
    expect_one_line_error(zeroshot_cli(run + Args{pf}), 2, pf + c.where + ":", c.what);
  }
  fs::remove(pf);
  expect_one_line_error(zeroshot_cli(run + Args{temp_path("missing.toml")}), 2, temp_path("missing.toml"),
                        "cannot open");
  // A bad policy is reported before a missing model is looked for.
  std::ofstream(pf) << cat + "on = 3\n";
  expect_one_line_error(
      zeroshot_cli({"moderate", "-m", "/no/such/model", "-f", "json", "--policy", pf, image_path("chelsea.png")}), 2,
      pf + ":4:", "on must be a string");
  fs::remove(pf);
  // Other trouble is 2 as well: a missing image, a missing model.
  const std::string good = write_temp("good_policy.toml", cat);
  expect_one_line_error(zeroshot_cli({"moderate", "-m", clip_dir(kModel), "--policy", good, "/no/such.jpg"}), 2,
                        "/no/such.jpg");
  expect_one_line_error(zeroshot_cli({"moderate", "-m", "/no/such/model", "--policy", good, image_path("chelsea.png")}),
                        2, "/no/such/model");
  fs::remove(good);
  // No --policy: a usage error, never 0 or 1.
  CliResult r = zeroshot_cli({"moderate", "-m", clip_dir(kModel), image_path("chelsea.png")});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.code, 1);
  EXPECT_NE(r.err.find("--policy"), std::string::npos) << r.err;
}

// The C++ API (zeroshot/tagging.h): option checks, and the two classes agreeing on the same question.
TEST(TaggingApi, OptionsAndAgreement) {
  auto model = Model::load(clip_dir(kModel));
  const std::vector<std::string> tmpl = {"a photo of {}.", "art of {}."};
  MultiLabelOptions bad;
  bad.thresholds = {0.5f};  // two labels
  EXPECT_THROW(MultiLabelClassifier(*model, {{"cat"}, {"dog"}}, tmpl, bad), Error);
  bad = {};
  bad.on = ScoreOn::Cosine;  // no default threshold for cosines
  EXPECT_THROW(MultiLabelClassifier(*model, {{"cat"}, {"dog"}}, tmpl, bad), Error);
  bad.threshold = 1.5f;
  EXPECT_THROW(MultiLabelClassifier(*model, {{"cat"}}, tmpl, bad), Error);
  try {
    Moderator::parse(*model, "[[category]]\nname = \"x\"\n", "inline.toml");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "inline.toml:1: category \"x\" has no prompts");
  }

  // A category with one prompt and the default baseline asks what the tagger asks of one label.
  ClassifierOptions no_cache;
  no_cache.cache_dir = "none";
  MultiLabelOptions opt;
  opt.classifier = no_cache;
  opt.thresholds = {0.3f, std::nullopt};
  const MultiLabelClassifier tagger(*model, {{"cat"}, {"a red car"}}, tmpl, opt);
  EXPECT_EQ(tagger.thresholds(), (std::vector<float>{0.3f, 0.5f}));
  const Moderator mod = Moderator::parse(
      *model,
      "templates = [\"a photo of {}.\", \"art of {}.\"]\n[[category]]\nname = \"c\"\nprompts = [\"cat\"]\n"
      "[[category]]\nname = \"r\"\nprompts = [\"a red car\"]\nthreshold = 0.4\n",
      "inline.toml", no_cache);
  EXPECT_EQ(mod.categories(), (std::vector<std::string>{"c", "r"}));
  const Embeddings e = model->embed_image_files({image_path("chelsea.png"), image_path("rocket.jpg")});
  for (size_t i = 0; i < e.rows; ++i) {
    const auto s = tagger.scores(e.row(i));
    const auto m = mod.moderate(e.row(i));
    ASSERT_EQ(m.size(), 2u);
    EXPECT_NEAR(m[0].score, s[0], 1e-6);
    EXPECT_NEAR(m[1].score, s[1], 1e-6);
    EXPECT_EQ(m[1].flagged, m[1].score >= 0.4f);
    const auto t = tagger.tag(e.row(i), 1);
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].score, std::max(s[0], s[1]));
  }
}
