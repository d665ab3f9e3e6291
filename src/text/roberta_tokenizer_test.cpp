// Tests of the RoBERTa tokenizer against Hugging Face's ids (fixtures/clap/*/expected.json), plus the semantics of
// the slow RobertaTokenizer that the fixtures do not pin down (special tokens, white space, invalid UTF-8), checked
// as relations between encodings or against ids of the fixtures.
#include "text/roberta_tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "support/errors.h"
#include "support/temp_dir.h"
#include "support/tokenizer_checks.h"
#include "zeroshot/error.h"

namespace zeroshot::text {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;

const std::string kFixtures = ZEROSHOT_FIXTURES;
const std::vector<std::string> kModels = {"clap-tiny-unfused", "clap-tiny-fused"};

std::string model_dir(const std::string& model) { return kFixtures + "/clap/" + model; }

using io::load_json;
using zeroshot::testing::expect_concurrent_encode_deterministic;

// str.format with one "{}".
std::string format(std::string templ, const std::string& label) {
  const auto at = templ.find("{}");
  if (at != std::string::npos) templ.replace(at, 2, label);
  return templ;
}

void expect_fixture_ids(const RobertaTokenizer& tok, const std::string& model) {
  zeroshot::testing::expect_fixture_ids(tok, model_dir(model));
}

TEST(RobertaTokenizer, FixtureIdsFromVocabAndMerges) {
  for (const auto& model : kModels) {
    const auto tok = RobertaTokenizer::from_files(model_dir(model) + "/vocab.json", model_dir(model) + "/merges.txt");
    EXPECT_EQ(tok.vocab_size(), 50265u);
    EXPECT_EQ(tok.bos_id(), 0);
    EXPECT_EQ(tok.pad_id(), 1);
    EXPECT_EQ(tok.eos_id(), 2);
    EXPECT_EQ(tok.unk_id(), 3);
    EXPECT_EQ(tok.mask_id(), 50264);
    expect_fixture_ids(tok, model);
  }
}

TEST(RobertaTokenizer, FromDir) {
  for (const auto& model : kModels) expect_fixture_ids(RobertaTokenizer::from_dir(model_dir(model)), model);
}

// HF with truncation=True, max_length=77 (what LAION's code does).
TEST(RobertaTokenizer, Truncation77) {
  for (const auto& model : kModels) {
    const auto expected = load_json(model_dir(model) + "/expected.json");
    const auto tok = RobertaTokenizer::from_dir(model_dir(model));
    const auto& cases = expected.at("input_ids_truncation_77");
    ASSERT_FALSE(cases.empty());
    for (auto it = cases.begin(); it != cases.end(); ++it) {
      const auto ids = it.value().get<Ids>();
      EXPECT_EQ(ids.size(), 77u);
      EXPECT_EQ(tok.encode(it.key(), 77), ids) << it.key();
      EXPECT_GT(tok.encode(it.key()).size(), 77u);  // the case really is truncated
    }
  }
}

TEST(RobertaTokenizer, TooLongTextIsNotTruncatedByDefault) {
  for (const auto& model : kModels) {
    const auto expected = load_json(model_dir(model) + "/expected.json");
    const auto tok = RobertaTokenizer::from_dir(model_dir(model));
    const auto& t = expected.at("too_long_text");
    const auto ids = t.at("input_ids").get<Ids>();
    ASSERT_EQ(ids.size(), t.at("n_tokens").get<size_t>());
    EXPECT_EQ(tok.encode(t.at("text").get<std::string>()), ids);
    // Truncated to the model's 512 positions: the first 511 and </s>.
    const auto cut = tok.encode(t.at("text").get<std::string>(), 512);
    ASSERT_EQ(cut.size(), 512u);
    EXPECT_TRUE(std::equal(cut.begin(), cut.end() - 1, ids.begin()));
    EXPECT_EQ(cut.back(), 2);
  }
}

// The zero-shot pipeline's label batches: hypothesis_template.format(label) for every label.
TEST(RobertaTokenizer, ZeroShotLabelBatches) {
  for (const auto& model : kModels) {
    const auto expected = load_json(model_dir(model) + "/expected.json");
    const auto tok = RobertaTokenizer::from_dir(model_dir(model));
    const auto& batches = expected.at("zero_shot_input_ids");
    ASSERT_EQ(batches.size(), 2u);
    size_t checked = 0;
    for (const auto& c : expected.at("zero_shot")) {
      const std::string templ = c.at("hypothesis_template");
      const auto& labels = c.at("candidate_labels");
      const auto& ids = batches.at(templ);
      ASSERT_EQ(labels.size(), ids.size()) << templ;
      for (size_t k = 0; k < labels.size(); ++k) {
        const std::string text = format(templ, labels[k].get<std::string>());
        EXPECT_EQ(tok.encode(text), ids[k].get<Ids>()) << model << ": " << text;
        ++checked;
      }
    }
    EXPECT_GE(checked, 58u);
  }
}

class Roberta : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tok_ = new RobertaTokenizer(RobertaTokenizer::from_dir(model_dir(kModels[0]))); }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  // The ids between <s> and </s>.
  static Ids inner(std::string_view text) {
    auto ids = tok_->encode(text);
    return Ids(ids.begin() + 1, ids.end() - 1);
  }
  static Ids cat(std::initializer_list<Ids> parts) {
    Ids out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  }
  static RobertaTokenizer* tok_;
};
RobertaTokenizer* Roberta::tok_ = nullptr;

// Literal special tokens become their ids; only <mask> eats the white space on its left (str.isspace(), so also
// U+3000 and U+001C, which GPT-2's pattern does not treat as white space); nothing eats the space on the right.
TEST_F(Roberta, SpecialTokensInText) {
  const int32_t bos = 0, pad = 1, eos = 2, unk = 3, mask = 50264;
  EXPECT_EQ(inner("<s></s><pad><unk><mask>"), (Ids{bos, eos, pad, unk, mask}));
  EXPECT_EQ(inner("dog<mask>"), cat({inner("dog"), {mask}}));
  EXPECT_EQ(inner("dog \t <mask>"), cat({inner("dog"), {mask}}));
  EXPECT_EQ(inner("dog\xe3\x80\x80<mask>"), cat({inner("dog"), {mask}}));  // U+3000
  EXPECT_EQ(inner("dog\x1c<mask>"), cat({inner("dog"), {mask}}));
  EXPECT_NE(inner("dog\x1c"), inner("dog"));
  EXPECT_EQ(inner("   <mask>"), (Ids{mask}));
  EXPECT_EQ(inner("<mask>  dog"), cat({{mask}, inner("  dog")}));
  EXPECT_EQ(inner("dog </s> cat"), cat({inner("dog "), {eos}, inner(" cat")}));
  EXPECT_EQ(inner("dog <s>"), cat({inner("dog "), {bos}}));
  EXPECT_EQ(inner("<pad> <mask>"), (Ids{pad, mask}));
  // Not special: partial, spaced or differently cased tokens; '<' runs that end in one.
  for (const char* text : {"<S>", "<MASK>", "<s >", "< s>", "<mas k>", "</ s>", "<s", "mask>"}) {
    const auto ids = inner(text);
    for (int32_t special : {bos, pad, eos, unk, mask})
      EXPECT_EQ(std::count(ids.begin(), ids.end(), special), 0) << text;
  }
  EXPECT_EQ(inner("<<s>>"), cat({inner("<"), {bos}, inner(">")}));
  EXPECT_EQ(inner("<s<s>"), cat({inner("<s"), {bos}}));
  EXPECT_EQ(inner("<mask<mask>"), cat({inner("<mask"), {mask}}));
  EXPECT_EQ(inner("a<</s>"), cat({inner("a<"), {eos}}));
  // The pieces between special tokens are tokenized separately: no word spans a special token.
  EXPECT_EQ(inner("dog<s>cat"), cat({inner("dog"), {bos}, inner("cat")}));
}

// GPT-2's pattern: a single space joins the next word; a longer run of white space keeps its last character for the
// next word, all of it at the end; other white space is never joined. 1437 = "Ġ" (fixtures: "   " -> 1437 x 3).
TEST_F(Roberta, WhiteSpace) {
  const int32_t space = 1437;
  EXPECT_EQ(inner("   "), (Ids{space, space, space}));
  EXPECT_EQ(inner("a  b"), cat({inner("a"), {space}, inner(" b")}));
  EXPECT_EQ(inner("a   b"), cat({inner("a"), {space, space}, inner(" b")}));
  EXPECT_EQ(inner("a "), cat({inner("a"), {space}}));
  EXPECT_NE(inner(" a"), inner("a"));
  EXPECT_EQ(inner("a\tb"), cat({inner("a"), inner("\t"), inner("b")}));
  EXPECT_EQ(inner("a \tb"), cat({inner("a"), inner(" "), inner("\t"), inner("b")}));
  // Numbers, letters and other characters do not join each other; a space joins any of them.
  EXPECT_EQ(inner("ab12!?"), cat({inner("ab"), inner("12"), inner("!?")}));
  EXPECT_EQ(inner(" 12 !?"), cat({inner(" 12"), inner(" !?")}));
  // Contractions are case-sensitive.
  EXPECT_EQ(inner("it's"), cat({inner("it"), inner("'s")}));
  EXPECT_EQ(inner("IT'S"), cat({inner("IT"), inner("'"), inner("S")}));
}

TEST_F(Roberta, Truncation) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "word" + std::to_string(i) + " ";
  const auto full = tok_->encode(text);
  ASSERT_GT(full.size(), 100u);
  EXPECT_EQ(full.front(), 0);
  EXPECT_EQ(full.back(), 2);
  for (size_t max_length : {3u, 4u, 10u, 77u}) {
    const auto ids = tok_->encode(text, max_length);
    ASSERT_EQ(ids.size(), max_length);
    EXPECT_EQ(ids.back(), 2);
    EXPECT_TRUE(std::equal(ids.begin(), ids.end() - 1, full.begin()));
  }
  EXPECT_EQ(tok_->encode(text, full.size()), full);
  EXPECT_EQ(tok_->encode(text, full.size() + 1), full);
  EXPECT_EQ(tok_->encode("", 3), (Ids{0, 2}));
  // Truncation counts ids, not words; special tokens in the text count too.
  EXPECT_EQ(tok_->encode("<mask><mask><mask>", 4), (Ids{0, 50264, 50264, 2}));
  EXPECT_THROW(tok_->encode("dog", 1), Error);
  EXPECT_THROW(tok_->encode("", 2), Error);
}

// Python would have received a str: bytes.decode("utf-8", "replace") gives one U+FFFD per maximal invalid sequence.
TEST_F(Roberta, InvalidUtf8IsReplacedLikePython) {
  const std::string fffd = "\xef\xbf\xbd";
  EXPECT_EQ(tok_->encode("caf\xc3 dog"), tok_->encode("caf" + fffd + " dog"));
  EXPECT_EQ(tok_->encode("\xff\xfe"), tok_->encode(fffd + fffd));
  EXPECT_EQ(tok_->encode("a\xe2\x82"
                         "b"),
            tok_->encode("a" + fffd + "b"));
  EXPECT_EQ(tok_->encode("\xed\xa0\x80"), tok_->encode(fffd + fffd + fffd));  // a surrogate: 3 invalid bytes
  EXPECT_EQ(tok_->encode(std::string("a\0b", 3)).size(), 5u);                 // NUL is an ordinary character
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>((i * 7919) & 0xFF));
  EXPECT_GT(tok_->encode(junk).size(), 1000u);
  EXPECT_EQ(tok_->encode(junk, 77).size(), 77u);
}

TEST_F(Roberta, HugeInputFinishes) {
  const std::string word(1 << 20, 'x');  // one 1 MiB word: BPE must not be quadratic
  const auto ids = tok_->encode(word);
  EXPECT_GT(ids.size(), 1000u);
  EXPECT_LT(ids.size(), (1u << 20) / 2);
  EXPECT_EQ(tok_->encode(word + " dog", 77).size(), 77u);
  std::string many;
  for (int i = 0; i < 100000; ++i) many += "a <mask> </s> ";
  EXPECT_EQ(tok_->encode(many, 77).size(), 77u);
  // "a" <mask> " " </s>, then " a" <mask> " " </s> ..., and the last " ".
  EXPECT_EQ(tok_->encode(many).size(), 2u + 100000u * 4u + 1u);
}

TEST_F(Roberta, ConcurrentEncodeIsDeterministic) {
  std::vector<std::string> texts;
  for (const auto& model : kModels) {
    const auto expected = load_json(model_dir(model) + "/expected.json");
    for (const auto& t : expected.at("texts")) texts.push_back(t);
    for (const auto& c : expected.at("zero_shot"))
      for (const auto& l : c.at("candidate_labels")) texts.push_back(format(c.at("hypothesis_template"), l));
  }
  for (int i = 0; i < 300; ++i)
    texts.push_back("a sound of thing number " + std::to_string(i * 37) + ", zürich <mask>");
  const auto fresh = RobertaTokenizer::from_dir(model_dir("clap-tiny-fused"));  // empty cache
  const auto single = RobertaTokenizer::from_dir(model_dir("clap-tiny-fused"));
  expect_concurrent_encode_deterministic(fresh, single, texts);
}

// ---- loading and errors ------------------------------------------------------------------------------------------

using zeroshot::testing::error_of;
using zeroshot::testing::expect_one_line_error;
using zeroshot::testing::TempDir;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A tokenizer.json as `tokenizers` writes it for RoBERTa, from the fixture's vocab.json and merges.txt.
nlohmann::json tokenizer_json_of(const std::string& model, bool mask_only_in_added_tokens) {
  nlohmann::json vocab = load_json(model_dir(model) + "/vocab.json");
  nlohmann::json merges = nlohmann::json::array();
  const std::string text = read_text(model_dir(model) + "/merges.txt");
  size_t pos = text.find('\n') + 1;  // after "#version"
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    merges.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  nlohmann::json added = nlohmann::json::array();
  for (const char* t : {"<s>", "<pad>", "</s>", "<unk>", "<mask>"})
    added.push_back({{"id", vocab.at(t)}, {"content", t}, {"lstrip", std::string(t) == "<mask>"}, {"special", true}});
  if (mask_only_in_added_tokens) vocab.erase("<mask>");
  return {
      {"version", "1.0"}, {"added_tokens", added}, {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

TEST(RobertaTokenizerLoading, TokenizerJson) {
  TempDir dir;
  dir.file("tokenizer.json", tokenizer_json_of("clap-tiny-unfused", false).dump());
  expect_fixture_ids(RobertaTokenizer::from_dir(dir.str()), "clap-tiny-unfused");  // no vocab.json: tokenizer.json
  const auto path = dir.file("t2.json", tokenizer_json_of("clap-tiny-unfused", true).dump());
  const auto tok = RobertaTokenizer::from_tokenizer_json(path);
  EXPECT_EQ(tok.mask_id(), 50264);
  EXPECT_EQ(tok.vocab_size(), 50264u);
  expect_fixture_ids(tok, "clap-tiny-unfused");
}

// The refusals shared with CLIP's tokenizer are in bpe_tokenizer_errors_test.cpp; these are RoBERTa's own.
TEST(RobertaTokenizerErrors, VocabWithoutMask) {
  TempDir dir;
  const std::string merges = model_dir("clap-tiny-unfused") + "/merges.txt";
  // The fixture's vocabulary without <mask>.
  auto vocab = load_json(model_dir("clap-tiny-unfused") + "/vocab.json");
  vocab.erase("<mask>");
  const auto no_mask = dir.file("v7.json", vocab.dump());
  expect_one_line_error(error_of([&] { RobertaTokenizer::from_files(no_mask, merges); }), no_mask, "<mask>");
}

TEST(RobertaTokenizerErrors, ShortMergesLoad) {
  TempDir dir;
  const std::string vocab = model_dir("clap-tiny-unfused") + "/vocab.json";
  // A short but well-formed merges file loads; words just stay split more.
  const auto short_ok = dir.file("m5.txt", "#version: 0.2\nd o\ndo g\n");
  const auto tok = RobertaTokenizer::from_files(vocab, short_ok);
  const auto full = RobertaTokenizer::from_files(vocab, model_dir("clap-tiny-unfused") + "/merges.txt");
  EXPECT_EQ(tok.encode("dog"), full.encode("dog"));  // "dog" is one token with either
  EXPECT_EQ(tok.encode("cat").size(), 5u);           // c, a, t
}

// Tokens per second over the ESC-50 prompts ("This is a sound of {}." x 50 labels), warm cache (printed).
TEST(RobertaTokenizerBench, Esc50Prompts) {
  const auto expected = load_json(model_dir("clap-tiny-unfused") + "/expected.json");
  std::vector<std::string> prompts;
  for (const auto& c : expected.at("zero_shot")) {
    if (c.at("hypothesis_template") != "This is a sound of {}.") continue;
    for (const auto& l : c.at("candidate_labels")) prompts.push_back(format(c.at("hypothesis_template"), l));
    break;
  }
  ASSERT_EQ(prompts.size(), 50u);
  const auto tok = RobertaTokenizer::from_dir(model_dir("clap-tiny-unfused"));
  for (const auto& p : prompts) tok.encode(p);  // warm the cache
  const int rounds = 2000;
  size_t tokens = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < rounds; ++r)
    for (const auto& p : prompts) tokens += tok.encode(p).size();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[bench] %zu prompts, %zu tokens in %.3f s: %.0f tokens/s, %.0f prompts/s\n", prompts.size() * rounds,
              tokens, s, double(tokens) / s, double(prompts.size() * rounds) / s);
}

}  // namespace
}  // namespace zeroshot::text
