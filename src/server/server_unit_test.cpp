// The server's pieces without a model: base64, key comparison, request parsing and limits, the LRU, metrics text.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include "image/image.h"
#include "image/probe.h"
#include "server/admission.h"
#include "server/classifier_cache.h"
#include "server/codec.h"
#include "server/metrics.h"
#include "server/request.h"
#include "support/memory.h"
#include "util/mapped_file.h"
#include "zeroshot/error.h"

namespace zs = zeroshot::server;

namespace {

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

int status_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const zs::HttpError& e) {
    return e.status;
  }
  return 0;
}

zs::Body json_body(const std::string& text) {
  static thread_local std::string keep;
  keep = text;
  zs::Body b;
  b.json = &keep;
  return b;
}

}  // namespace

TEST(Base64, DecodesRfc4648Vectors) {
  // RFC 4648 section 10 test vectors.
  EXPECT_EQ(zs::base64_decode("", "x"), bytes(""));
  EXPECT_EQ(zs::base64_decode("Zg==", "x"), bytes("f"));
  EXPECT_EQ(zs::base64_decode("Zm8=", "x"), bytes("fo"));
  EXPECT_EQ(zs::base64_decode("Zm9v", "x"), bytes("foo"));
  EXPECT_EQ(zs::base64_decode("Zm9vYg==", "x"), bytes("foob"));
  EXPECT_EQ(zs::base64_decode("Zm9vYmE=", "x"), bytes("fooba"));
  EXPECT_EQ(zs::base64_decode("Zm9vYmFy", "x"), bytes("foobar"));
  EXPECT_EQ(zs::base64_decode("Zm9vYmE", "x"), bytes("fooba"));  // padding optional
  EXPECT_EQ(zs::base64_decode("data:image/png;base64,Zm9v", "x"), bytes("foo"));
  EXPECT_EQ(zs::base64_decode("Zm9v\nYmFy", "x"), bytes("foobar"));
}

TEST(Base64, RefusesGarbage) {
  EXPECT_THROW(zs::base64_decode("Zm9v!", "x"), zeroshot::Error);
  EXPECT_THROW(zs::base64_decode("Z", "x"), zeroshot::Error);
  EXPECT_THROW(zs::base64_decode("Zg==Zg==", "x"), zeroshot::Error);
  EXPECT_THROW(zs::base64_decode("Zg=", "x"), zeroshot::Error);
  EXPECT_THROW(zs::base64_decode("data:text/plain,hello", "x"), zeroshot::Error);
}

TEST(ConstantTimeEqual, ComparesWholeStrings) {
  EXPECT_TRUE(zs::constant_time_equal("secret", "secret"));
  EXPECT_FALSE(zs::constant_time_equal("secret", "secreT"));
  EXPECT_FALSE(zs::constant_time_equal("secret", "secret2"));
  EXPECT_FALSE(zs::constant_time_equal("", "x"));
  EXPECT_TRUE(zs::constant_time_equal("", ""));
}

TEST(ParseClassify, NativeAndHuggingFaceForms) {
  zs::Limits l;
  auto r = zs::parse_classify(json_body(R"({"image": "Zm9v", "candidate_labels": ["cat", "dog"], "top_k": 1,
                                            "hypothesis_template": "a photo of {}."})"),
                              l);
  EXPECT_FALSE(r.hf);
  EXPECT_EQ(r.image.bytes, bytes("foo"));
  ASSERT_EQ(r.classes.size(), 2u);
  EXPECT_EQ(r.classes[1][0], "dog");
  EXPECT_EQ(r.top_k, 1u);
  EXPECT_EQ(r.templates, std::vector<std::string>{"a photo of {}."});

  auto h =
      zs::parse_classify(json_body(R"({"inputs": "Zm9v", "parameters": {"candidate_labels": "cat, dog,bird"}})"), l);
  EXPECT_TRUE(h.hf);
  ASSERT_EQ(h.classes.size(), 3u);
  EXPECT_EQ(h.classes[2][0], "bird");

  auto s = zs::parse_classify(json_body(R"({"image": "Zm9v", "label_set": "cifar10", "templates": "imagenet7"})"), l);
  EXPECT_EQ(s.classes.size(), 10u);
  EXPECT_EQ(s.label_set, "cifar10");
  EXPECT_EQ(s.templates.size(), 7u);
}

TEST(ParseClassify, ErrorsAre400) {
  zs::Limits l;
  l.max_labels = 3;
  EXPECT_EQ(status_of([&] { zs::parse_classify(json_body("{not json"), l); }), 400);
  EXPECT_EQ(status_of([&] { zs::parse_classify(json_body("[1,2]"), l); }), 400);
  EXPECT_EQ(status_of([&] { zs::parse_classify(json_body(R"({"image": "Zm9v"})"), l); }), 400);
  EXPECT_EQ(status_of([&] { zs::parse_classify(json_body(R"({"image": "Zm9v", "candidate_labels": "a,b,c,d"})"), l); }),
            400);
  EXPECT_EQ(status_of([&] { zs::parse_classify(json_body(R"({"image": "Zm9v", "candidate_labels": "a,a"})"), l); }),
            400);
  EXPECT_EQ(status_of([&] { zs::parse_classify(json_body(R"({"image": 5, "candidate_labels": "a"})"), l); }), 400);
  EXPECT_EQ(
      status_of([&] { zs::parse_classify(json_body(R"({"image": "https://x/y.png", "candidate_labels": "a"})"), l); }),
      400);
  EXPECT_EQ(status_of([&] {
              zs::parse_classify(json_body(R"({"image": "Zm9v", "candidate_labels": "a", "top_k": -1})"), l);
            }),
            400);
  EXPECT_EQ(status_of([&] {
              zs::parse_classify(
                  json_body(R"({"image": "Zm9v", "candidate_labels": "a", "hypothesis_template": "no braces"})"), l);
            }),
            400);
  EXPECT_EQ(status_of([&] { zs::parse_classify(json_body(R"({"image": "Zm9v", "label_set": "imagenet"})"), l); }), 400);
  EXPECT_EQ(status_of([&] { zs::parse_classify(json_body(R"({"image": "Zm9v", "label_set": "esc50"})"), l); }), 400);
}

TEST(ParseClassify, Multipart) {
  zs::Body b;
  b.multipart = true;
  b.parts = {{"image", "cat.png", "image/png", "xyz"},
             {"candidate_labels", "", "", "cat,dog"},
             {"candidate_labels", "", "", "bird"},
             {"multi_label", "", "", "true"}};
  auto r = zs::parse_classify(b, zs::Limits{});
  EXPECT_EQ(r.image.name, "cat.png");
  EXPECT_EQ(r.classes.size(), 3u);
  EXPECT_TRUE(r.multi_label);
  b.parts.erase(b.parts.begin());
  EXPECT_EQ(status_of([&] { zs::parse_classify(b, zs::Limits{}); }), 400);
}

TEST(ParseSearch, QueryTermsAreTextWithWeights) {
  auto r =
      zs::parse_search(json_body(R"({"query": "2:golden retriever + ./pool.jpg - fruit", "top_k": 3})"), zs::Limits{});
  ASSERT_EQ(r.terms.size(), 3u);
  EXPECT_EQ(r.terms[0].text, "golden retriever");
  EXPECT_FLOAT_EQ(r.terms[0].weight, 2.f);
  EXPECT_FALSE(r.terms[1].image);  // never a path on the server
  EXPECT_EQ(r.terms[1].text, "./pool.jpg");
  EXPECT_FLOAT_EQ(r.terms[2].weight, -1.f);
  EXPECT_EQ(r.top_k, 3u);
  EXPECT_EQ(status_of([] { zs::parse_search(json_body(R"({"query": "cat +"})"), zs::Limits{}); }), 400);
  EXPECT_EQ(status_of([] { zs::parse_search(json_body(R"({"query": "- cat"})"), zs::Limits{}); }), 400);
  EXPECT_EQ(status_of([] { zs::parse_search(json_body(R"({})"), zs::Limits{}); }), 400);
}

TEST(LruCache, EvictsLeastRecentlyUsed) {
  zs::LruCache<int> c(2);
  int built = 0;
  bool hit = false;
  auto make = [&](int v) {
    return [&built, v] {
      ++built;
      return std::make_shared<const int>(v);
    };
  };
  EXPECT_EQ(*c.get("a", make(1), &hit), 1);
  EXPECT_FALSE(hit);
  c.get("b", make(2), &hit);
  EXPECT_EQ(*c.get("a", make(9), &hit), 1);
  EXPECT_TRUE(hit);
  c.get("c", make(3), &hit);  // evicts b
  c.get("b", make(4), &hit);
  EXPECT_FALSE(hit);
  EXPECT_EQ(built, 4);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_NE(zs::cache_key("k", {{"a,b"}}), zs::cache_key("k", {{"a", "b"}}));
}

TEST(Metrics, PrometheusText) {
  zs::Metrics m;
  m.observe_request("/v1/classify", 200, 0.02);
  m.observe_request("/v1/classify", 400, 0.001);
  m.observe_batch(3);
  m.observe_cache(true);
  const std::string t = m.render(zs::Gauges{2, 1, 0});
  EXPECT_NE(t.find("zeroshot_http_requests_total{route=\"/v1/classify\",code=\"200\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("zeroshot_http_request_duration_seconds_bucket{route=\"/v1/classify\",le=\"0.025\"} 2\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("zeroshot_batch_size_sum 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("zeroshot_queue_depth 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("zeroshot_label_cache_hits_total 1\n"), std::string::npos) << t;
}

TEST(LruCache, ConcurrentMissesBuildOnce) {
  zs::LruCache<int> c(4);
  std::atomic<int> built{0};
  std::atomic<int> misses{0};
  std::vector<std::thread> ts;
  ts.reserve(8);
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&] {
      bool hit = true;
      auto v = c.get(
          "k",
          [&] {
            ++built;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            return std::make_shared<const int>(7);
          },
          &hit);
      EXPECT_EQ(*v, 7);
      if (!hit) ++misses;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(built.load(), 1);
  EXPECT_EQ(misses.load(), 1);
  // A failed build is reported to its waiters and not cached.
  bool hit = false;
  EXPECT_THROW(c.get(
                   "bad", []() -> std::shared_ptr<const int> { throw std::runtime_error("no"); }, &hit),
               std::runtime_error);
  EXPECT_EQ(*c.get(
                "bad", [] { return std::make_shared<const int>(1); }, &hit),
            1);
  EXPECT_FALSE(hit);
}

namespace {

using zeroshot::testing::kSanitized;
using zeroshot::testing::peak_rss;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const zs::HttpError& e) {
    return std::to_string(e.status) + " " + e.what();
  }
  return "";
}

// "{"<key>": [<item>,<item>,...]}" of about `bytes` bytes.
std::string repeated(const std::string& key, const std::string& item, size_t bytes) {
  std::string s = "{\"" + key + "\": [";
  s.reserve(bytes + item.size() + 8);
  while (s.size() < bytes) s += item + ",";
  s += item + "]}";
  return s;
}

}  // namespace

// Issue 19: a 31 MiB {"labels":[{},{},...]} grew the process by 1.2 GB as a JSON DOM. Parsed by the SAX schema, it
// is refused at the first "{" naming the field; other amplifying shapes stop at their caps; nothing is built for
// keys the API does not know. Peak RSS (getrusage: the high-water mark, so a transient spike counts) grows by far
// less than the body.
TEST(ParseJson, AmplifyingBodiesTakeBoundedMemory) {
  const size_t mib31 = 31u << 20;
  const std::string objects = repeated("labels", "{}", mib31);
  const std::string strings = repeated("labels", "\"\"", mib31);
  const std::string unknown = repeated("whatever", "[{},{\"a\":[1,2,{}]}]", mib31);
  std::string list(mib31, ',');  // "a,a,a,...": 15 million labels if split without a cap
  for (size_t i = 0; i < list.size(); i += 2) list[i] = 'a';
  const std::string commas = "{\"image\": \"Zm9v\", \"labels\": \"" + list + "\"}";
  std::string dup = "{";
  while (dup.size() < mib31) dup += "\"texts\": [\"a\",\"b\",\"c\"], ";
  dup += "\"image\": \"Zm9v\"}";
  auto in = [](const std::string& text) {  // no copy of the body
    zs::Body body;
    body.json = &text;
    return body;
  };
  const uint64_t before = peak_rss();
  const zs::Limits l;
  EXPECT_EQ(error_of([&] { zs::parse_classify(in(objects), l); }), "400 labels: expected an array of strings");
  EXPECT_EQ(error_of([&] { zs::parse_classify(in(strings), l); }),
            "400 too many labels: more than 1000 (the limit is 1000)");
  EXPECT_EQ(error_of([&] { zs::parse_classify(in(unknown), l); }),
            "400 image: missing (base64 bytes of the image)");  // parsed to the end, nothing kept
  EXPECT_NE(error_of([&] { zs::parse_embed(in(dup), l); }).find("400 request body: more than"), std::string::npos);
  // Nothing is kept. A DOM took 1.2 GB for the first body alone.
  const uint64_t grown = peak_rss() - before;
  if (!kSanitized) {
    EXPECT_LT(grown, 16u << 20) << grown / (1 << 20) << " MiB";
  }
  // One 31 MiB string: the parser's buffer grows by doubling (a transient 1.5x), then the request holds it once.
  EXPECT_EQ(error_of([&] { zs::parse_classify(in(commas), l); }),
            "400 too many labels: more than 1000 (the limit is 1000)");
  const uint64_t grown_string = peak_rss() - before;
  if (!kSanitized) {
    EXPECT_LT(grown_string, 2 * mib31 + (16u << 20)) << grown_string / (1 << 20) << " MiB";
  }
}

TEST(ParseJson, WrongTypesAreNamedWhileParsing) {
  const zs::Limits l;
  EXPECT_EQ(error_of([&] { zs::parse_classify(json_body(R"({"image": "Zm9v", "templates": [1]})"), l); }),
            "400 templates: expected an array of strings");
  EXPECT_EQ(error_of([&] { zs::parse_classify(json_body(R"({"image": {}, "labels": "a"})"), l); }),
            "400 image: expected a string");
  EXPECT_EQ(error_of([&] {
              zs::parse_classify(json_body(R"({"inputs": "Zm9v", "parameters": {"multi_label": "yes"}})"), l);
            }),
            "400 parameters.multi_label: expected true or false");
  EXPECT_EQ(error_of([&] { zs::parse_classify(json_body(R"({"inputs": "Zm9v", "parameters": []})"), l); }),
            "400 parameters: expected an object with candidate_labels");
  EXPECT_NE(error_of([&] {
              zs::parse_search(json_body(R"({"terms": [{"text": "a"}, 5]})"), l);
            }).find("400 terms[1]: expected"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { zs::parse_search(json_body(R"({"terms": [{"text": "a", "weight": "2"}]})"), l); }),
            "400 terms[0].weight: expected a number");
  EXPECT_EQ(error_of([&] { zs::parse_classify(json_body(std::string(100, '[')), l); }),
            "400 request body: expected a JSON object");
  EXPECT_EQ(error_of([&] {
              zs::parse_classify(json_body("{\"x\": " + std::string(100, '[') + std::string(100, ']') + "}"), l);
            }),
            "400 request body: nested deeper than 32 levels");
  EXPECT_EQ(error_of([&] { zs::parse_classify(json_body(R"({"image": "Zm9v", "labels": ["a"]} x)"), l); }),
            "400 request body: malformed JSON (send a JSON object, or multipart/form-data)");
  // Unknown keys of any shape are ignored, as before; a repeated key keeps its last value.
  auto r = zs::parse_classify(
      json_body(
          R"({"extra": {"deep": [[{}], null, 1.5]}, "image": "Zm9v", "labels": ["x"], "labels": ["cat", "dog"]})"),
      l);
  ASSERT_EQ(r.classes.size(), 2u);
  EXPECT_EQ(r.classes[1][0], "dog");
}

TEST(Budget, AdmitsWhatFitsAndALoneRequest) {
  zs::Budget b(100);
  {
    auto big = b.try_acquire(500);  // alone: admitted although over the budget
    ASSERT_TRUE(big);
    EXPECT_FALSE(b.try_acquire(1));
  }
  EXPECT_EQ(b.in_use(), 0u);
  auto t1 = b.try_acquire(60);
  ASSERT_TRUE(t1);
  EXPECT_FALSE(b.try_acquire(41));
  auto t2 = b.try_acquire(40);
  ASSERT_TRUE(t2);
  EXPECT_EQ(b.in_use(), 100u);
  t1.reset();
  EXPECT_TRUE(b.try_acquire(60));
  EXPECT_EQ(b.peak(), 500u);
}

// The header probe that the pixel budget trusts: for every fixture image, the pixels it reads are the pixels the
// decoder produces (EXIF rotation swaps the sides, not the count); truncated headers and other bytes say nothing.
TEST(ProbeDimensions, AgreesWithTheDecoder) {
  const std::string dir = std::string(ZEROSHOT_FIXTURES) + "/images/";
  int probed = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("bad_", 0) == 0 || !zeroshot::image::has_image_extension(name)) continue;
    const std::string data = zeroshot::util::read_file(e.path().string());
    const auto* p = reinterpret_cast<const uint8_t*>(data.data());
    const auto dims = zeroshot::image::probe_dimensions(p, data.size());
    ASSERT_TRUE(dims) << name;
    const auto img = zeroshot::image::decode_memory(p, data.size(), name);
    EXPECT_EQ(uint64_t{dims->width} * dims->height, uint64_t(img.width) * img.height) << name;
    for (size_t n :
         {size_t{0}, size_t{5}, size_t{12}, size_t{20}})  // truncated: nothing or the same, never a read past
      if (auto t = zeroshot::image::probe_dimensions(p, n)) {
        EXPECT_EQ(t->width, dims->width) << name << " " << n;
      }
    ++probed;
  }
  EXPECT_GE(probed, 15);
  const std::string bomb = zeroshot::util::read_file(dir + "bad_bomb_60000x60000.png");
  const auto b = zeroshot::image::probe_dimensions(reinterpret_cast<const uint8_t*>(bomb.data()), bomb.size());
  ASSERT_TRUE(b);
  EXPECT_EQ(b->width, 60000u);
  EXPECT_EQ(zs::pixels_to_admit(reinterpret_cast<const uint8_t*>(bomb.data()), bomb.size(), 100'000'000), 100'000'000u);
  // A BMP header (BITMAPINFOHEADER, top-down) and bytes of no known format.
  std::string bmp(54, '\0');
  bmp[0] = 'B', bmp[1] = 'M', bmp[14] = 40, bmp[18] = 7;  // width 7
  const int32_t h = -9;
  std::memcpy(&bmp[22], &h, 4);
  const auto d = zeroshot::image::probe_dimensions(reinterpret_cast<const uint8_t*>(bmp.data()), bmp.size());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->width, 7u);
  EXPECT_EQ(d->height, 9u);
  const std::string text = "just some text, not an image";
  EXPECT_FALSE(zeroshot::image::probe_dimensions(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  EXPECT_EQ(zs::pixels_to_admit(reinterpret_cast<const uint8_t*>(text.data()), text.size(), 1234), 1234u);
}
