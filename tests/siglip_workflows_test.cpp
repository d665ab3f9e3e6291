// SigLIP through the rest of the engine (issue 12, item 4), on transformers' random-weight fixtures
// (tests/reference/make_siglip.py, make_siglip2.py): `eval --multi-label` reports the mean average precision of the
// reference's own logits_per_image; the server's Hugging Face request form answers with the zero-shot pipeline's
// sigmoid scores. (`--precision bf16|int8` against f32: siglip_parity_test.cpp.)
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <thread>

#include "eval/thumbnail.h"
#include "server/server.h"
#include "support/cli.h"
#include "support/compare.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "zeroshot/zeroshot.h"

using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

const std::string kFixtures = std::string(ZEROSHOT_BINARY_DIR) + "/reference-fixtures/siglip/";
const std::string kSiglip = kFixtures + "siglip-tiny";
const std::string kSiglip2 = kFixtures + "siglip2-tiny";

struct Expected {
  explicit Expected(const std::string& dir)
      : json(io::load_json(dir + "/expected.json")), tensors(dir + "/expected.safetensors") {}
  io::Json json;
  io::SafeTensorsFile tensors;
  std::vector<float> get(const std::string& name) const { return io::to_f32(tensors.tensors().at(name)); }
};

ModelOptions opts() {
  ModelOptions o;
  o.offline = true;
  o.progress = false;
  return o;
}

// Each class's average precision over the rows, ranking by the reference's logits (descending; no ties with random
// weights): for each positive, the share of positives among the rows scored at least as high.
double average_precision(const std::vector<double>& score, const std::vector<bool>& positive) {
  double ap = 0, npos = 0;
  for (size_t i = 0; i < score.size(); ++i) {
    if (!positive[i]) continue;
    npos += 1;
    double above = 0, pos_above = 0;
    for (size_t q = 0; q < score.size(); ++q)
      if (score[q] >= score[i]) {
        above += 1;
        pos_above += positive[q] ? 1 : 0;
      }
    ap += pos_above / above;
  }
  return npos > 0 ? ap / npos : 0;
}

// The classes are fixture texts, run with the template "{}", so each class's logit for each image is
// transformers' logits_per_image entry: the expected AP comes from the reference, not from the engine.
TEST(SiglipWorkflows, EvalMultiLabelReportsTheMeanAveragePrecisionOfTheReferenceLogits) {
  for (const std::string& dir : {kSiglip, kSiglip2}) {
    const Expected e(dir);
    const auto texts = e.json["texts"].get<std::vector<std::string>>();
    const auto images = e.json["images"].get<std::vector<std::string>>();
    const std::vector<std::string> classes = {"a photo of a cat.", "a photo of a dog.", "a rocket on the launch pad",
                                              "a cup of coffee", "A PHOTO OF A MOTORCYCLE"};
    const std::vector<std::pair<std::string, std::vector<size_t>>> rows = {
        {"astronaut.png", {2, 3}},   {"chelsea.png", {0}}, {"coffee.png", {3, 1}},          {"horse.png", {1}},
        {"camera.png", {4}},         {"rocket.jpg", {2}},  {"motorcycle_left.png", {4, 0}}, {"coins.png", {3}},
        {"progressive.jpg", {0, 1}}, {"page.png", {2, 4}},
    };
    std::string csv;
    for (const auto& [f, ls] : rows) {
      csv += image_path(f);
      for (size_t k : ls) csv += "," + classes[k];
      csv += "\n";
    }
    const TempDir tmp("siglip_eval");
    const std::string data = tmp.file("ml.csv", csv);
    const CliResult r = run_cli(
        {"eval", "-m", dir, "--data", data, "-t", "{}", "--multi-label", "--label-cache", "none", "-f", "json", "-q"});
    ASSERT_EQ(r.code, 0) << r.err;
    const io::Json j = io::parse_json(r.out, "stdout");
    EXPECT_TRUE(j["multi_label"].get<bool>());

    const std::vector<float> logits = e.get("logits_per_image");  // [n_images, n_texts]
    double sum = 0;
    for (size_t k = 0; k < classes.size(); ++k) {
      const size_t t = static_cast<size_t>(std::find(texts.begin(), texts.end(), classes[k]) - texts.begin());
      ASSERT_LT(t, texts.size()) << classes[k];
      std::vector<double> score;
      std::vector<bool> positive;
      for (const auto& [f, ls] : rows) {
        const size_t i = static_cast<size_t>(std::find(images.begin(), images.end(), f) - images.begin());
        ASSERT_LT(i, images.size()) << f;
        score.push_back(logits[i * texts.size() + t]);
        positive.push_back(std::count(ls.begin(), ls.end(), k) > 0);
      }
      const double ap = average_precision(score, positive);
      sum += ap;
      bool found = false;
      for (const auto& c : j["per_class"])
        if (c["class"] == classes[k]) {
          found = true;
          EXPECT_NEAR(c["average_precision"].get<double>(), ap, 1e-9) << dir << " " << classes[k];
        }
      EXPECT_TRUE(found) << classes[k] << " " << j["per_class"].dump();
    }
    ASSERT_TRUE(j["metrics"].contains("mean_average_precision")) << r.out;
    EXPECT_NEAR(j["metrics"]["mean_average_precision"].get<double>(), sum / static_cast<double>(classes.size()), 1e-9)
        << dir;
  }
}

std::string b64_file(const std::string& p) {
  const std::string s = read_file(p);
  return eval::base64(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// {"inputs": <base64>, "parameters": {"candidate_labels", "hypothesis_template"}}: the answer is the pipeline's own
// output for the same image, labels and template (a bare sorted list of sigmoid scores).
TEST(SiglipWorkflows, ServerHuggingFaceFormAnswersThePipelinesSigmoidScores) {
  for (const std::string& dir : {kSiglip, kSiglip2}) {
    const Expected e(dir);
    const auto model = Model::load(dir, opts());
    server::ServerOptions so;
    so.port = 0;
    so.label_cache_dir = "none";
    server::Server srv(*model, so);
    const int port = srv.bind();
    std::thread th([&] { srv.run(); });
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    for (const auto& cs : e.json["zero_shot"]) {
      const io::Json req = {
          {"inputs", b64_file(image_path(cs["image"].get<std::string>()))},
          {"parameters", {{"candidate_labels", cs["labels"]}, {"hypothesis_template", cs["template"]}}}};
      const auto r = c.Post("/v1/classify", req.dump(), "application/json");
      ASSERT_TRUE(r) << httplib::to_string(r.error());
      ASSERT_EQ(r->status, 200) << r->body;
      const io::Json got = io::parse_json(r->body, "response");
      const io::Json& want = cs["result"];
      ASSERT_TRUE(got.is_array()) << r->body;
      ASSERT_EQ(got.size(), want.size()) << r->body;
      for (size_t k = 0; k < want.size(); ++k) {
        EXPECT_EQ(got[k]["label"], want[k]["label"]) << dir << " " << r->body;
        EXPECT_NEAR(got[k]["score"].get<double>(), want[k]["score"].get<double>(), 1e-4)
            << dir << " " << want[k]["label"];
      }
    }
    srv.stop();
    th.join();
  }
}

}  // namespace
