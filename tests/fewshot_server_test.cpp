// `zeroshot serve --head`: /v1/classify with "head": NAME scores with a few-shot head (the scores of
// classify::head_scores on the engine's embedding), refuses a head with labels, an unknown head, and a head for
// another model at start-up.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "classify/few_shot.h"
#include "classify/zero_shot.h"
#include "eval/thumbnail.h"
#include "server/server.h"
#include "support/model.h"
#include "support/server.h"
#include "support/temp_dir.h"
#include "util/mapped_file.h"
#include "zeroshot/error.h"
#include "zeroshot/zeroshot.h"

using nlohmann::json;
namespace zs = zeroshot::server;
using namespace zeroshot;

namespace {

const std::string kModelDir = std::string(ZEROSHOT_FIXTURES) + "/clip/clip-tiny-quickgelu";
const std::string kImage = std::string(ZEROSHOT_FIXTURES) + "/images/coffee.png";

const Model& model() { return zeroshot::testing::shared_model(kModelDir, 2); }

// A linear head over three photos of the fixture images, written with this model's fingerprint (or another).
std::string write_head(const zeroshot::testing::TempDir& dir, const std::string& fingerprint) {
  const std::vector<std::string> files = {"coffee.png", "chelsea.png", "coins.png"};
  std::vector<std::string> paths;
  for (const auto& f : files) paths.push_back(std::string(ZEROSHOT_FIXTURES) + "/images/" + f);
  const Embeddings e = model().embed_image_files(paths);
  classify::LabeledEmbeddings d;
  d.n = 3;
  d.dim = e.dim;
  d.num_classes = 3;
  d.x = e.data;
  d.y = {0, 1, 2};
  const classify::Head h = classify::fit_head(d, {});
  const std::string path = dir / "head.safetensors";
  classify::save_head(path, h, {"coffee", "cat", "coins"}, fingerprint);
  return path;
}

struct Running : zeroshot::testing::RunningServer {
  explicit Running(zs::ServerOptions opt) : RunningServer(model(), std::move(opt)) {}
};

std::string image_b64() {
  const std::string s = util::read_file(kImage);
  return eval::base64(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace

TEST(FewShotServer, ClassifyWithAHead) {
  zeroshot::testing::TempDir dir("fewshot_server");
  const std::string head = write_head(dir, model().fingerprint());
  zs::ServerOptions opt;
  opt.heads = {{"pets", head}};
  Running r(opt);
  httplib::Client c("127.0.0.1", r.port);
  auto res = c.Post("/v1/classify", json{{"image", image_b64()}, {"head", "pets"}}.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const auto loaded = classify::load_head(head);
  const auto want =
      classify::rank(loaded.labels, classify::head_scores(loaded.head, model().embed_image_files({kImage}).row(0)));
  const json got = json::parse(res->body)["result"];
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i]["label"], want[i].label);
    EXPECT_NEAR(got[i]["score"].get<double>(), want[i].score, 1e-6);
  }
  res = c.Post("/v1/classify", json{{"image", image_b64()}, {"head", "nope"}}.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(res->body.find("no head \\\"nope\\\""), std::string::npos) << res->body;
  res = c.Post("/v1/classify", json{{"image", image_b64()}, {"head", "pets"}, {"candidate_labels", {"a"}}}.dump(),
               "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(res->body.find("give a head or labels"), std::string::npos) << res->body;
}

TEST(FewShotServer, HeadForAnotherModelIsRefusedAtStartUp) {
  zeroshot::testing::TempDir dir("fewshot_server");
  zs::ServerOptions opt;
  opt.heads = {{"pets", write_head(dir, "0123456789abcdef0123456789abcdef")}};
  opt.label_cache_dir = "none";
  try {
    zs::Server s(model(), opt);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fitted for another model"), std::string::npos) << e.what();
  }
}
