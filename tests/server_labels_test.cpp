// Large label sets in the server (issue 18: imagenet x imagenet7, 8,000 prompts, took 55 s on first use, near the
// request timeout): `--preload-labels` encodes them before serving, and a request for a large set not loaded yet
// starts its encoding in the background and is answered 503 + Retry-After at once, then 200 from the cache. The
// scores are the C++ API's for the same set and templates.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "classify/label_sets.h"
#include "eval/thumbnail.h"
#include "server/server.h"
#include "support/model.h"
#include "support/server.h"
#include "util/mapped_file.h"
#include "zeroshot/error.h"
#include "zeroshot/zeroshot.h"

using nlohmann::json;
namespace zs = zeroshot::server;

namespace {

const std::string kModelDir = std::string(ZEROSHOT_FIXTURES) + "/clip/clip-tiny-quickgelu";
const std::string kImage = std::string(ZEROSHOT_FIXTURES) + "/images/coffee.png";

const zeroshot::Model& model() { return zeroshot::testing::shared_model(kModelDir, 2); }

std::string image_b64() {
  const std::string s = zeroshot::util::read_file(kImage);
  return zeroshot::eval::base64(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

struct Running : zeroshot::testing::RunningServer {
  explicit Running(zs::ServerOptions opt, const std::vector<std::string>& preload = {})
      : RunningServer(model(), std::move(opt), preload) {}
};

// The API's answer for the same set and templates, computed here.
std::vector<zeroshot::LabelScore> expected(const std::string& set, const std::string& templates) {
  std::vector<std::string> t;
  EXPECT_TRUE(zeroshot::classify::find_template_set(templates, &t));
  zeroshot::ClassifierOptions co;
  co.cache_dir = "none";
  const zeroshot::ZeroShotClassifier clf(model(), zeroshot::classify::find_label_set(set)->classes, t, co);
  return clf.classify(model().embed_image_files({kImage}).row(0), 3);
}

void expect_scores(const json& got, const std::vector<zeroshot::LabelScore>& want) {
  ASSERT_EQ(got.size(), want.size()) << got.dump();
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i]["label"], want[i].label);
    EXPECT_NEAR(got[i]["score"].get<double>(), want[i].score, 2e-5);
  }
}

}  // namespace

TEST(ServerLabels, PreloadedSetIsAnsweredFromTheCache) {
  zs::ServerOptions opt;
  opt.inline_prompts = 10;  // cifar10 x imagenet7 = 70 prompts: without the preload, a 503
  Running s(opt, {"cifar10:imagenet7"});
  httplib::Client c("127.0.0.1", s.port);
  const json body = {{"image", image_b64()}, {"label_set", "cifar10"}, {"templates", "imagenet7"}, {"top_k", 3}};
  auto r = c.Post("/v1/classify", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  expect_scores(json::parse(r->body)["result"], expected("cifar10", "imagenet7"));
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("zeroshot_label_cache_hits_total 1\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("zeroshot_label_cache_misses_total 0\n"), std::string::npos) << m->body;
}

TEST(ServerLabels, PreloadRefusesUnknownNames) {
  zs::Server s(model(), zs::ServerOptions{});
  for (const char* bad : {"imagnet", "cifar10:imagenet8", "esc50", ""}) {
    try {
      s.preload_labels(bad);
      ADD_FAILURE() << bad << " accepted";
    } catch (const zeroshot::Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("--preload-labels"), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
  std::vector<std::string> notes;
  s.preload_labels("cifar10", [&](const std::string& line) { notes.push_back(line); });
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_EQ(notes[0], "encoding label set cifar10: 10 classes, 10 prompts");
  EXPECT_EQ(notes[1].rfind("label set cifar10 ready in ", 0), 0u) << notes[1];
}

TEST(ServerLabels, LargeSetIsEncodedInTheBackground) {
  zs::ServerOptions opt;
  opt.inline_prompts = 10;
  Running s(opt);
  httplib::Client c("127.0.0.1", s.port);
  c.set_read_timeout(60, 0);
  const json body = {{"image", image_b64()}, {"label_set", "cifar10"}, {"templates", "imagenet80"}, {"top_k", 3}};
  auto first = c.Post("/v1/classify", body.dump(), "application/json");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 503) << first->body;
  EXPECT_EQ(first->get_header_value("Retry-After"), "2");
  EXPECT_NE(first->body.find("encoding the prompts of label set cifar10 (800 prompts)"), std::string::npos)
      << first->body;
  // Small requests are served meanwhile (inline: under the threshold).
  auto small = c.Post("/v1/classify", json{{"image", image_b64()}, {"candidate_labels", {"coffee", "a cat"}}}.dump(),
                      "application/json");
  ASSERT_TRUE(small);
  EXPECT_EQ(small->status, 200) << small->body;
  int status = 0;
  std::string answer;
  for (int i = 0; i < 600; ++i) {  // retry, as a client told Retry-After would
    auto r = c.Post("/v1/classify", body.dump(), "application/json");
    ASSERT_TRUE(r);
    status = r->status;
    answer = r->body;
    if (status != 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(status, 200) << answer;
  expect_scores(json::parse(answer)["result"], expected("cifar10", "imagenet80"));
}
