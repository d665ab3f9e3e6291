// The refusals both byte-level BPE tokenizers (CLIP's and RoBERTa's) share: they load vocab.json, merges.txt and
// tokenizer.json through the same vocabulary and merges readers (bpe.h), so every malformed file must give the
// same one-line error naming it, whichever tokenizer reads it. The refusals of one tokenizer alone (RoBERTa's
// <mask>, CLIP's short merges) stay in that tokenizer's own test file.
#include <gtest/gtest.h>

#include <string>

#include "support/errors.h"
#include "support/temp_dir.h"
#include "text/clip_tokenizer.h"
#include "text/roberta_tokenizer.h"

namespace zeroshot::text {
namespace {

using zeroshot::testing::error_of;
using zeroshot::testing::expect_one_line_error;
using zeroshot::testing::TempDir;

const std::string kFixtures = ZEROSHOT_FIXTURES;

// What differs between the two: the fixture tokenizer whose files are borrowed, and a merge its vocabulary holds.
template <typename Tokenizer>
struct Bpe;
template <>
struct Bpe<ClipTokenizer> {
  static std::string model_dir() { return kFixtures + "/clip/clip-tiny-quickgelu"; }
  static constexpr const char* kValidMerge = "i n";
};
template <>
struct Bpe<RobertaTokenizer> {
  static std::string model_dir() { return kFixtures + "/clap/clap-tiny-unfused"; }
  static constexpr const char* kValidMerge = "\xc4\xa0 t";  // "Ġ t"
};

template <typename Tokenizer>
class BpeTokenizerErrors : public ::testing::Test {};
using Tokenizers = ::testing::Types<ClipTokenizer, RobertaTokenizer>;
TYPED_TEST_SUITE(BpeTokenizerErrors, Tokenizers);

TYPED_TEST(BpeTokenizerErrors, MissingFiles) {
  using T = TypeParam;
  TempDir dir;
  expect_one_line_error(error_of([&] { T::from_dir(dir.str()); }), dir.str(), "missing vocab.json and merges.txt");
  expect_one_line_error(error_of([&] { T::from_dir(dir.str() + "/nowhere"); }), dir.str() + "/nowhere",
                        "missing vocab.json and merges.txt");
  dir.file("vocab.json", "{}");
  expect_one_line_error(error_of([&] { T::from_dir(dir.str()); }), dir.str(), "missing merges.txt");
  expect_one_line_error(error_of([&] { T::from_files(dir.str() + "/nope.json", dir.str() + "/m.txt"); }),
                        dir.str() + "/nope.json", "cannot open");
  const std::string vocab = Bpe<T>::model_dir() + "/vocab.json";
  expect_one_line_error(error_of([&] { T::from_files(vocab, dir.str() + "/m.txt"); }), dir.str() + "/m.txt",
                        "cannot open");
  expect_one_line_error(error_of([&] { T::from_tokenizer_json(dir.str() + "/tokenizer.json"); }),
                        dir.str() + "/tokenizer.json", "cannot open");
}

TYPED_TEST(BpeTokenizerErrors, MalformedVocab) {
  using T = TypeParam;
  TempDir dir;
  const std::string merges = Bpe<T>::model_dir() + "/merges.txt";
  const auto bad_json = dir.file("vocab.json", "{\"a\": 1,");
  expect_one_line_error(error_of([&] { T::from_files(bad_json, merges); }), bad_json, "not valid JSON");
  const auto not_object = dir.file("v2.json", "[1, 2]");
  expect_one_line_error(error_of([&] { T::from_files(not_object, merges); }), not_object, "not a JSON object");
  const auto bad_id = dir.file("v3.json", "{\"a\": \"x\"}");
  expect_one_line_error(error_of([&] { T::from_files(bad_id, merges); }), bad_id, "non-integer id");
  const auto negative = dir.file("v4.json", "{\"a\": -1}");
  expect_one_line_error(error_of([&] { T::from_files(negative, merges); }), negative, "out-of-range");
  const auto empty = dir.file("v5.json", "{}");
  expect_one_line_error(error_of([&] { T::from_files(empty, merges); }), empty, "empty vocabulary");
  const auto small = dir.file("v6.json", "{\"a\": 0}");
  expect_one_line_error(error_of([&] { T::from_files(small, merges); }), small, "byte symbol");
  const auto bad_tok = dir.file("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": 3}}");
  expect_one_line_error(error_of([&] { T::from_tokenizer_json(bad_tok); }), bad_tok, "merges");
  const auto wordpiece = dir.file("t2.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
  expect_one_line_error(error_of([&] { T::from_tokenizer_json(wordpiece); }), wordpiece, "not BPE");
}

TYPED_TEST(BpeTokenizerErrors, MalformedMerges) {
  using T = TypeParam;
  TempDir dir;
  const std::string vocab = Bpe<T>::model_dir() + "/vocab.json";
  const std::string first = std::string("#version: 0.2\n") + Bpe<T>::kValidMerge + "\n";
  const auto three = dir.file("merges.txt", first + "t h e\n");
  expect_one_line_error(error_of([&] { T::from_files(vocab, three); }), three, "line 3");
  const auto unknown = dir.file("m2.txt", first + "qqqqqqqqqqqq zzzzzzzzzzzzzzzzz\n");
  expect_one_line_error(error_of([&] { T::from_files(vocab, unknown); }), unknown, "line 3");
  const auto blank = dir.file("m3.txt", first + "\n" + Bpe<T>::kValidMerge + "\n");
  expect_one_line_error(error_of([&] { T::from_files(vocab, blank); }), blank, "line 3: empty line");
  const auto empty = dir.file("m4.txt", "#version: 0.2\n");
  expect_one_line_error(error_of([&] { T::from_files(vocab, empty); }), empty, "no merges");
}

}  // namespace
}  // namespace zeroshot::text
