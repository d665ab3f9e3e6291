// `zeroshot fit`, `classify --head`, `eval --head` and `eval --shots` end to end with the fixture models: the CLI's
// head scores against the head file applied here to the engine's own embeddings (classify::head_scores), and the
// bad inputs (a head for another model, labels that are not the head's, a corrupt head file, a class without
// samples, --shots over what a class has) each answered with one line.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "classify/few_shot.h"
#include "classify/zero_shot.h"
#include "io/json.h"
#include "support/cli.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "zeroshot/zeroshot.h"

using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

const std::vector<std::pair<std::string, std::string>> kLabels = {
    {"astronaut.png", "person"}, {"camera.png", "person"}, {"gray.jpg", "person"},     {"lossy.webp", "person"},
    {"chelsea.png", "cat"},      {"cmyk.jpg", "cat"},      {"progressive.jpg", "cat"}, {"exif_orientation6.jpg", "cat"},
    {"coins.png", "coins"},      {"block.png", "coins"},   {"page.png", "text"},       {"wide.png", "text"},
};

class Scratch {
 public:
  std::string path(const std::string& rel) const { return dir_ / rel; }
  std::string write(const std::string& rel, const std::string& text) const { return dir_.file(rel, text); }
  CliResult run(const Args& args) const { return run_cli_in(dir_.str(), args); }
  std::string csv() const {
    std::string c = "path,label\n";
    for (const auto& [f, l] : kLabels) c += image_path(f) + "," + l + "\n";
    return write("data.csv", c);
  }

 private:
  TempDir dir_{"fewshot"};
};

Args model_arg(const std::string& m) { return {"-m", clip_dir(m)}; }

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t e; (e = s.find('\n', b)) != std::string::npos; b = e + 1) out.push_back(s.substr(b, e - b));
  return out;
}

}  // namespace

TEST(FewShotCli, ClassifyWithAHeadScoresAsTheHeadFileSays) {
  for (const std::string method : {"linear", "zero-init", "tip-adapter"}) {
    SCOPED_TRACE(method);
    Scratch s;
    const std::string m = "clip-tiny-quickgelu", head = s.path("head.safetensors");
    CliResult r = s.run(Args{"fit"} + model_arg(m) +
                        Args{"--data", s.csv(), "-o", head, "--method", method, "--seed", "3", "-q"});
    ASSERT_EQ(r.code, 0) << r.err;
    const std::vector<std::string> images = {image_path("horse.png"), image_path("chelsea.png")};
    r = s.run(Args{"classify"} + model_arg(m) + Args{"--head", head, "-f", "json", "-q"} + images);
    ASSERT_EQ(r.code, 0) << r.err;
    const auto model = Model::load(clip_dir(m));
    const auto loaded = classify::load_head(head, model->fingerprint());
    EXPECT_EQ(loaded.labels, (std::vector<std::string>{"cat", "coins", "person", "text"}));
    EXPECT_EQ(loaded.metadata.at("method"), method);
    const Embeddings e = model->embed_image_files(images);
    const auto out = lines(r.out);
    ASSERT_EQ(out.size(), images.size());
    for (size_t i = 0; i < images.size(); ++i) {
      const auto want = classify::rank(loaded.labels, classify::head_scores(loaded.head, e.row(i)));
      const auto j = nlohmann::json::parse(out[i]);
      ASSERT_EQ(j["result"].size(), want.size());
      for (size_t k = 0; k < want.size(); ++k) {
        EXPECT_EQ(j["result"][k]["label"], want[k].label);
        EXPECT_NEAR(j["result"][k]["score"].get<double>(), want[k].score, 1e-6);
      }
    }
    // Deterministic with a seed: the same command writes the same head.
    const std::string again = s.path("again.safetensors");
    ASSERT_EQ(s.run(Args{"fit"} + model_arg(m) +
                    Args{"--data", s.csv(), "-o", again, "--method", method, "--seed", "3", "-q"})
                  .code,
              0);
    EXPECT_EQ(read_file(again), read_file(head));
  }
}

TEST(FewShotCli, EvalWithAHeadAndTheShotCurve) {
  Scratch s;
  const std::string m = "clip-tiny-quickgelu", head = s.path("head.safetensors");
  ASSERT_EQ(s.run(Args{"fit"} + model_arg(m) + Args{"--data", s.csv(), "-o", head, "-q"}).code, 0);
  CliResult r = s.run(Args{"eval"} + model_arg(m) + Args{"--data", s.csv(), "--head", head, "-f", "json", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["head"], head);
  EXPECT_EQ(j["templates"][0]["name"], "head: linear");
  // acc1 as the head file, applied here to the engine's embeddings, gives it.
  const auto model = Model::load(clip_dir(m));
  const auto loaded = classify::load_head(head, model->fingerprint());
  std::vector<std::string> paths;
  for (const auto& [f, l] : kLabels) paths.push_back(image_path(f));
  const Embeddings e = model->embed_image_files(paths);
  size_t correct = 0;
  for (size_t i = 0; i < paths.size(); ++i)
    correct +=
        classify::rank(loaded.labels, classify::head_scores(loaded.head, e.row(i)))[0].label == kLabels[i].second;
  EXPECT_DOUBLE_EQ(j["metrics"]["acc1"].get<double>(),
                   static_cast<double>(correct) / static_cast<double>(paths.size()));

  const std::string report = s.path("report.html");
  r = s.run(Args{"eval"} + model_arg(m) +
            Args{"--data", s.csv(), "--shots", "1,2", "-f", "json", "-q", "--report", report});
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["few_shot"]["curve"].size(), 2u);
  EXPECT_EQ(j["few_shot"]["curve"][0]["shots"], 1);
  EXPECT_EQ(j["few_shot"]["curve"][0]["train"], 4);  // one per class
  EXPECT_EQ(j["few_shot"]["curve"][1]["train"], 8);
  EXPECT_EQ(j["few_shot"]["test"], 4);  // 12 photos - 2 x 4 classes
  EXPECT_NE(read_file(report).find("k-shot curve"), std::string::npos);
  r = s.run(Args{"eval"} + model_arg(m) + Args{"--data", s.csv(), "--shots", "1,2", "-f", "table", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("k-shot curve (linear head, acc1 over 4 held-out samples"), std::string::npos) << r.out;
}

TEST(FewShotCli, BadInput) {
  Scratch s;
  const std::string m = "clip-tiny-quickgelu", head = s.path("head.safetensors");
  ASSERT_EQ(s.run(Args{"fit"} + model_arg(m) + Args{"--data", s.csv(), "-o", head, "-q"}).code, 0);
  const Args img = {image_path("horse.png")};
  auto one_line_error = [](const CliResult& r, const std::string& what) {
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(lines(r.err).size(), 1u) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  };
  // A head for another model.
  one_line_error(s.run(Args{"classify"} + model_arg("clip-tiny-gelu-f16") + Args{"--head", head, "-q"} + img),
                 head + ": fitted for another model");
  one_line_error(s.run(Args{"eval"} + model_arg("clip-tiny-gelu-f16") + Args{"--data", s.csv(), "--head", head}),
                 "fitted for another model");
  // Labels that are not the head's.
  one_line_error(s.run(Args{"classify"} + model_arg(m) + Args{"--head", head, "--labels", "cat,dog", "-q"} + img),
                 "the head has 4 labels, 2 were given");
  one_line_error(
      s.run(Args{"classify"} + model_arg(m) + Args{"--head", head, "--labels", "coins,cat,person,text", "-q"} + img),
      "label 1 is \"cat\" in the head, \"coins\" was given");
  // A corrupt head file: garbage, and a truncated head.
  one_line_error(
      s.run(Args{"classify"} + model_arg(m) + Args{"--head", s.write("bad.safetensors", "junk"), "-q"} + img),
      "bad.safetensors");
  const std::string bytes = read_file(head);
  one_line_error(s.run(Args{"classify"} + model_arg(m) +
                       Args{"--head", s.write("cut.safetensors", bytes.substr(0, bytes.size() - 100)), "-q"} + img),
                 "cut.safetensors");
  // A class without samples (a distractor name among the data's classes): a linear probe could never predict it.
  one_line_error(
      s.run(Args{"fit"} + model_arg(m) +
            Args{"--data", s.csv(), "-o", s.path("h2.safetensors"), "--labels", "cat,coins,person,text,dog"}),
      "class \"dog\" has no readable samples");
  // ... zero-init keeps its zero-shot weights.
  EXPECT_EQ(s.run(Args{"fit"} + model_arg(m) +
                  Args{"--data", s.csv(), "-o", s.path("h3.safetensors"), "--labels", "cat,coins,person,text,dog",
                       "--method", "zero-init", "-q"})
                .code,
            0);
  // --shots over what a class has: the class uses all it has, and a warning says so.
  const CliResult r =
      s.run(Args{"fit"} + model_arg(m) + Args{"--data", s.csv(), "-o", s.path("h4.safetensors"), "--shots", "3", "-q"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("class \"coins\" has 2 of the 3 shots asked for; it uses them all"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("class \"text\" has 2 of the 3 shots"), std::string::npos) << r.err;
}
