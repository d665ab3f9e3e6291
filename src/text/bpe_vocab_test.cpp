// vocab.json loading: the fast flat-object scanner (bpe.cpp) must give exactly what nlohmann::json gives, and hand
// everything it does not handle to nlohmann (same errors as before).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/temp_dir.h"
#include "text/bpe.h"
#include "zeroshot/error.h"

namespace fs = std::filesystem;
using namespace zeroshot::text;

namespace {

using zeroshot::testing::TempDir;

// The reference: nlohmann's DOM, as the loader used before the fast path.
bpe::Vocab reference(const std::string& json_text) {
  bpe::Vocab v;
  const nlohmann::json j = nlohmann::json::parse(json_text);
  for (const auto& [k, id] : j.items()) v[k] = id.get<int32_t>();
  return v;
}

bpe::Vocab load(const TempDir& dir, const std::string& json_text) {
  const auto vocab = dir.file("vocab.json", json_text);
  const auto merges = dir.file("merges.txt", "#version: 0.2\na b\n");
  return bpe::load_vocab_and_merges(vocab, merges, 100).vocab;
}

std::string error_of(const TempDir& dir, const std::string& json_text) {
  try {
    load(dir, json_text);
  } catch (const zeroshot::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(BpeVocab, SameAsNlohmann) {
  TempDir dir;
  const std::vector<std::string> cases = {
      R"({"a": 0, "b": 1, "ab": 2})",
      " \n\t{ \"a\" :0 ,\r\n\"b\":\t1 }\n ",
      R"({"\"": 1, "\\": 2, "\/": 3, "\b\f\n\r\t": 4, "x\u00e9y": 5, "\u65E5\u672c": 6})",
      R"({"\ud83d\ude00": 7, "\u0000nul": 8, "\u007f": 9})",
      "{\"\xc3\xa9\": 10, \"\xe6\x97\xa5\xe6\x9c\xac\": 11, \"\xf0\x9f\x98\x80\": 12, \"\xc4\xa0the\": 13}",
      R"({"dup": 1, "dup": 2147483647})",  // last wins
      R"({"a": 0, "long token well past the small string buffer</w>": 123456})",
      "\xEF\xBB\xBF{\"bom\": 1}",           // BOM: nlohmann's path
      R"({"neg": 0, "nested": {"x": 1}})",  // not flat: nlohmann's path, then "non-integer id"
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c);
    bool ref_ok = true;
    bpe::Vocab expected;
    try {
      expected = reference(c);
    } catch (const std::exception&) {
      ref_ok = false;
    }
    if (ref_ok) {
      EXPECT_EQ(load(dir, c), expected);
    } else {
      EXPECT_NE(error_of(dir, c), "");
    }
  }
}

TEST(BpeVocab, ErrorsComeFromTheFullParser) {
  TempDir dir;
  auto expect_error = [&](const std::string& text, const std::string& contains) {
    const std::string e = error_of(dir, text);
    EXPECT_NE(e.find("vocab.json"), std::string::npos) << text << " -> " << e;
    EXPECT_NE(e.find(contains), std::string::npos) << text << " -> " << e;
  };
  expect_error(R"({"a": 1,)", "not valid JSON");
  expect_error(R"({"a": 1} x)", "not valid JSON");
  expect_error(R"({"a": 01})", "not valid JSON");
  expect_error(R"({"a": 1.5})", "non-integer id");
  expect_error(R"({"a": 1e3})", "non-integer id");
  expect_error(R"({"a": -1})", "out-of-range id -1");
  expect_error(R"({"a": 2147483648})", "out-of-range id");
  expect_error(R"({"a": "x"})", "non-integer id");
  expect_error(R"({})", "empty vocabulary");
  expect_error(R"([1, 2])", "not a JSON object");
  expect_error(R"({"\ud83d": 1})", "not valid JSON");        // lone surrogate
  expect_error(R"({"\ude00\ud83d": 1})", "not valid JSON");  // reversed pair
  expect_error("{\"\xc3\": 1}", "not valid JSON");           // cut UTF-8
  expect_error("{\"\xc0\xaf\": 1}", "not valid JSON");       // overlong
  expect_error("{\"\xed\xa0\x80\": 1}", "not valid JSON");   // UTF-8 surrogate
  expect_error("{\"a\tb\": 1}", "not valid JSON");           // raw control character
  expect_error(R"({"\x": 1})", "not valid JSON");            // unknown escape
}
