// Tests of the CLIP tokenizer against the reference's ids (fixtures/clip/*/expected.json), plus the clean-up steps
// (html.unescape, ftfy) against values documented by Python / ftfy themselves.
#include "text/clip_tokenizer.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "support/temp_dir.h"
#include "support/tokenizer_checks.h"
#include "text/ftfy.h"
#include "text/text_normalize.h"
#include "zeroshot/error.h"

namespace zeroshot::text {
namespace {

namespace fs = std::filesystem;

const std::string kFixtures = ZEROSHOT_FIXTURES;
const std::vector<std::string> kModels = {"clip-tiny-quickgelu", "clip-tiny-gelu-f16"};

using io::load_json;
using zeroshot::testing::expect_concurrent_encode_deterministic;

std::string model_dir(const std::string& model) { return kFixtures + "/clip/" + model; }

std::string u8(std::u32string_view s) { return encode_utf8(s); }

// All fixture texts must tokenize to the reference's ids.
void expect_fixture_ids(const ClipTokenizer& tok, const std::string& model) {
  zeroshot::testing::expect_fixture_ids(tok, model_dir(model));
}

TEST(ClipTokenizer, FixtureIdsFromVocabAndMerges) {
  for (const auto& model : kModels) {
    const auto tok = ClipTokenizer::from_files(model_dir(model) + "/vocab.json", model_dir(model) + "/merges.txt");
    EXPECT_EQ(tok.vocab_size(), 49408u);
    EXPECT_EQ(tok.bos_id(), 49406);
    EXPECT_EQ(tok.eos_id(), 49407);
    expect_fixture_ids(tok, model);
  }
}

TEST(ClipTokenizer, FixtureIdsFromTokenizerJson) {
  const auto tok = ClipTokenizer::from_tokenizer_json(model_dir("clip-tiny-gelu-f16") + "/tokenizer.json");
  EXPECT_EQ(tok.vocab_size(), 49408u);
  expect_fixture_ids(tok, "clip-tiny-gelu-f16");
}

TEST(ClipTokenizer, FromDir) {
  for (const auto& model : kModels) expect_fixture_ids(ClipTokenizer::from_dir(model_dir(model)), model);
}

// The texts that need ftfy's repairs (mojibake, full-width forms) are in `texts` too; checked here by name so that
// a regression in the ftfy port is reported as such.
TEST(ClipTokenizer, FtfySensitiveTexts) {
  for (const auto& model : kModels) {
    const auto expected = load_json(model_dir(model) + "/expected.json");
    const auto tok = ClipTokenizer::from_dir(model_dir(model));
    const auto& texts = expected.at("texts");
    size_t checked = 0;
    for (const auto& sensitive : expected.at("ftfy_sensitive_texts")) {
      for (size_t i = 0; i < texts.size(); ++i) {
        if (texts[i] != sensitive) continue;
        EXPECT_EQ(tok.encode(sensitive.get<std::string>()), expected.at("input_ids")[i].get<std::vector<int32_t>>())
            << sensitive;
        ++checked;
      }
    }
    EXPECT_EQ(checked, expected.at("ftfy_sensitive_texts").size());
  }
}

class TokenizerFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tok_ = new ClipTokenizer(ClipTokenizer::from_dir(model_dir("clip-tiny-quickgelu"))); }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  static ClipTokenizer* tok_;
};
ClipTokenizer* TokenizerFixture::tok_ = nullptr;

TEST_F(TokenizerFixture, Truncation) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "word" + std::to_string(i) + " ";
  const auto full = tok_->encode(text, 0);  // 0: no limit
  ASSERT_GT(full.size(), 100u);
  EXPECT_EQ(full.front(), 49406);
  EXPECT_EQ(full.back(), 49407);
  for (size_t max_length : {2u, 3u, 10u, 77u}) {
    const auto ids = tok_->encode(text, max_length);
    ASSERT_EQ(ids.size(), max_length);
    EXPECT_EQ(ids.back(), 49407);
    EXPECT_TRUE(std::equal(ids.begin(), ids.end() - 1, full.begin()));
  }
  // Exactly max_length tokens: nothing is cut.
  EXPECT_EQ(tok_->encode("", 10), (std::vector<int32_t>{49406, 49407}));
  EXPECT_EQ(tok_->encode(text, full.size()), full);
}

TEST_F(TokenizerFixture, InvalidUtf8IsReplacedLikePython) {
  // bytes.decode("utf-8", "replace"): one U+FFFD per maximal invalid subsequence (values from CPython).
  EXPECT_EQ(decode_utf8_lossy("a\xe2\x82"
                              "b"),
            U"a\uFFFDb");
  EXPECT_EQ(decode_utf8_lossy("\xf0\x80"), U"\uFFFD\uFFFD");
  EXPECT_EQ(decode_utf8_lossy("\xed\xa0\x80"), U"\uFFFD\uFFFD\uFFFD");
  EXPECT_EQ(decode_utf8_lossy("\xc0\xaf"
                              "x\xff"),
            U"\uFFFD\uFFFDx\uFFFD");
  EXPECT_EQ(decode_utf8_lossy("\xf4\x8f\xbf\xbf\xf4\x90"), U"\U0010FFFF\uFFFD\uFFFD");
  // The tokenizer sees the replaced text.
  EXPECT_EQ(tok_->encode("caf\xc3 \xff\xfe dog"), tok_->encode("caf\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd dog"));
  EXPECT_EQ(tok_->encode(std::string("\0\x80\xbf", 3)), tok_->encode("\xef\xbf\xbd\xef\xbf\xbd"));
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>((i * 7919) & 0xFF));
  EXPECT_EQ(tok_->encode(junk).size(), 77u);
}

TEST_F(TokenizerFixture, SpecialTokensAndContractions) {
  // Special tokens inside the text map to their ids; a punctuation run swallows a following '<|'.
  const auto a = tok_->encode("<|startoftext|> inner <|endoftext|>");
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a[1], 49406);
  EXPECT_EQ(a[3], 49407);
  EXPECT_NE(tok_->encode("!<|endoftext|>")[2], 49407);
  // Lower-casing happens before the split: "<|ENDOFTEXT|>" is the special token too.
  EXPECT_EQ(tok_->encode("<|ENDOFTEXT|>")[1], 49407);
  EXPECT_EQ(tok_->encode("IT'S"), tok_->encode("it's"));
}

// Python's str.lower(): 'İ'.lower() == 'i\u0307', 'ẞ'.lower() == 'ß', final sigma; 'ſ' matches the "'s" of the
// pattern under IGNORECASE; U+0345 matches no alternative of the pattern (the `regex` module's case folding).
TEST_F(TokenizerFixture, PythonCaseSemantics) {
  EXPECT_EQ(tok_->encode("\xc4\xb0stanbul"), tok_->encode("i\xcc\x87stanbul"));
  EXPECT_NE(tok_->encode("\xc4\xb0stanbul"), tok_->encode("istanbul"));
  EXPECT_EQ(tok_->encode("STRA\xe1\xba\x9e"
                         "E"),
            tok_->encode("stra\xc3\x9f"
                         "e"));
  EXPECT_EQ(tok_->encode("\xce\x9f\xce\x94\xce\x9f\xce\xa3"), tok_->encode("\xce\xbf\xce\xb4\xce\xbf\xcf\x82"));
  EXPECT_EQ(tok_->encode("\xce\xa3\xce\x91"), tok_->encode("\xcf\x83\xce\xb1"));
  // Ids from the reference pipeline (Python + regex module; ftfy leaves these texts unchanged).
  EXPECT_EQ(tok_->encode("it'\xc5\xbf"), (std::vector<int32_t>{49406, 585, 6, 129, 379, 49407}));  // "it", "'ſ"
  EXPECT_EQ(tok_->encode("\xc4\xb0stanbul"), (std::vector<int32_t>{49406, 328, 16384, 11231, 49407}));
  EXPECT_EQ(tok_->encode("a\xcd\x85"
                         "b"),
            (std::vector<int32_t>{49406, 320, 321, 49407}));
  EXPECT_EQ(tok_->encode("a\xcd\x85"
                         "b"),
            tok_->encode("a b"));
}

TEST_F(TokenizerFixture, HugeInputFinishes) {
  std::string big;
  for (int i = 0; i < 20000; ++i) big += "caf\xc3\x83\xc2\xa9 &amp;amp; \xef\xbc\xa1 ";
  big += std::string(1 << 20, 'x');  // one 1 MiB word
  const auto ids = tok_->encode(big);
  EXPECT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids[1], tok_->encode("caf\xc3\xa9")[1]);  // the mojibake was repaired
  EXPECT_GT(tok_->encode(std::string(1 << 20, 'x'), 0).size(), 1000u);
}

TEST_F(TokenizerFixture, ConcurrentEncodeIsDeterministic) {
  std::vector<std::string> texts;
  for (const auto& model : kModels) {
    const auto expected = load_json(model_dir(model) + "/expected.json");
    for (const auto& t : expected.at("texts")) texts.push_back(t);
  }
  const auto prompts = load_json(std::string(ZEROSHOT_SHARED) + "/data/zero_shot_prompts.json");
  for (const auto& c : prompts.at("datasets").at("imagenet").at("classes"))
    texts.push_back("a photo of a " + c.get<std::string>());
  for (int i = 0; i < 300; ++i) texts.push_back("a photo of thing number " + std::to_string(i * 37) + ", zürich");
  const auto fresh = ClipTokenizer::from_dir(model_dir("clip-tiny-gelu-f16"));  // empty cache
  const auto single = ClipTokenizer::from_dir(model_dir("clip-tiny-gelu-f16"));
  expect_concurrent_encode_deterministic(fresh, single, texts);
}

// ---- errors (the refusals shared with RoBERTa's tokenizer: bpe_tokenizer_errors_test.cpp) ---------------------

using zeroshot::testing::TempDir;

TEST(ClipTokenizerErrors, ShortMergesLoad) {
  TempDir dir;
  const std::string vocab = model_dir("clip-tiny-quickgelu") + "/vocab.json";
  // A short but well-formed merges file loads (words just stay split more): "inx" -> "in" "x</w>".
  const auto short_ok = dir.file("m4.txt", "#version: 0.2\ni n\nt h\n");
  EXPECT_EQ(ClipTokenizer::from_files(vocab, short_ok).encode("inx").size(), 4u);
  EXPECT_EQ(ClipTokenizer::from_files(vocab, short_ok).encode("xin").size(), 5u);
}

// ---- html.unescape (expected values from CPython 3.11's html.unescape) -------------------------------------------

TEST(HtmlUnescape, MatchesPython) {
  EXPECT_EQ(html_unescape(U"Tom &amp; Jerry &lt;3"), U"Tom & Jerry <3");
  EXPECT_EQ(html_unescape(U"&amp"), U"&");
  EXPECT_EQ(html_unescape(U"&ampxyz;"), U"&xyz;");
  EXPECT_EQ(html_unescape(U"&notit;"), U"\u00ACit;");
  EXPECT_EQ(html_unescape(U"&notin;"), U"\u2209");
  EXPECT_EQ(html_unescape(U"&#65;&#x42;&#X43&#0;&#128;&#x110000;&#xD800;&#1;&#11;"), U"ABC\uFFFD\u20AC\uFFFD\uFFFD");
  EXPECT_EQ(html_unescape(U"&#99999999999999999999;"), U"\uFFFD");
  EXPECT_EQ(html_unescape(U"&#;&#x;&;& amp;&bogus;"), U"&#;&#x;&;& amp;&bogus;");
  EXPECT_EQ(html_unescape(U"&amp;amp;"), U"&amp;");
  EXPECT_EQ(html_unescape(U"&caf\u00e9;"), U"&caf\u00e9;");
  EXPECT_EQ(html_unescape(U"&NotNestedGreaterGreater;&acE;"), U"\u2AA2\u0338\u223E\u0333");
}

// ---- ftfy (expected values from ftfy's own documentation and doctests) -------------------------------------------

std::string fix(const std::string& s) { return u8(ftfy_fix_text(decode_utf8_lossy(s))); }

TEST(Ftfy, DocumentedExamples) {
  EXPECT_EQ(fix("\xc3\xa2\xc5\x93\xe2\x80\x9d No problems"), "\xe2\x9c\x94 No problems");  // âœ” -> ✔
  EXPECT_EQ(fix("&macr;\\_(\xc3\xa3\xc2\x83\xc2\x84)_/&macr;"), "\xc2\xaf\\_(\xe3\x83\x84)_/\xc2\xaf");
  EXPECT_EQ(fix("\xef\xbc\xac\xef\xbc\xaf\xef\xbc\xb5\xef\xbc\xa4\xe3\x80\x80\xef\xbc\xae\xef\xbc\xaf\xef\xbc\xa9"
                "\xef\xbc\xb3\xef\xbc\xa5\xef\xbc\xb3"),
            "LOUD NOISES");
  EXPECT_EQ(fix("\xef\xbc\xb5\xef\xbe\x80\xef\xbd\xb0\xef\xbe\x9d"),
            "U\xe3\x82\xbf\xe3\x83\xbc\xe3\x83\xb3");  // Uターン
  EXPECT_EQ(fix("\xef\xbb\xbfParty like\nit&rsquo;s 1999!"), "Party like\nit's 1999!");
  EXPECT_EQ(fix("<em>HTML entities &lt;3</em>"), "<em>HTML entities &lt;3</em>");
  EXPECT_EQ(fix("HTML entities &lt;3"), "HTML entities <3");
  EXPECT_EQ(fix("\xef\xac\x82u\xef\xac\x83"
                "e\xef\xac\x86"),
            "fluffiest");
  EXPECT_EQ(fix("\x1b[36;44mI'm blue, da ba dee da ba doo...\x1b[0m"), "I'm blue, da ba dee da ba doo...");
  EXPECT_EQ(fix("\xe2\x80\x9chere\xe2\x80\x99s a test\xe2\x80\x9d"), "\"here's a test\"");
  EXPECT_EQ(fix("Content-type: text/plain\r\n\r\nHi."), "Content-type: text/plain\n\nHi.");
  EXPECT_EQ(fix("u\xcc\x88nicode"), "\xc3\xbcnicode");  // NFC
  EXPECT_EQ(fix("&Jscr;ohn &HilbertSpace;ancock"),
            "\xf0\x9d\x92\xa5ohn \xe2\x84\x8b"
            "ancock");
  EXPECT_EQ(fix("P&EACUTE;REZ"), "P\xc3\x89REZ");
  EXPECT_EQ(fix("BUNDESSTRA&SZLIG;E"), "BUNDESSTRASSE");
  EXPECT_EQ(fix("&ntilde; &Ntilde; &NTILDE; &nTILDE;"), "\xc3\xb1 \xc3\x91 \xc3\x91 &nTILDE;");
  EXPECT_EQ(fix("&checkmark;"), "\xe2\x9c\x93");
}

std::string fix_enc(const std::string& s) { return u8(ftfy_fix_encoding(decode_utf8_lossy(s))); }

TEST(Ftfy, DocumentedEncodingFixes) {
  EXPECT_EQ(fix_enc("s\xc3\x83\xc2\xb3"), "s\xc3\xb3");                              // sÃ³ -> só
  EXPECT_EQ(fix_enc("\xc3\x83\xc2\xb3"), "\xc3\xb3");                                // Ã³ -> ó
  EXPECT_EQ(fix_enc("voil\xc3\x83\xc2\xa0 le travail"), "voil\xc3\xa0 le travail");  // restore_byte_a0
  EXPECT_EQ(fix_enc("voil\xc3\x83 le travail"), "voil\xc3\xa0 le travail");
  EXPECT_EQ(fix_enc("&ATILDE;&SUP3;"), "&ATILDE;&SUP3;");
  EXPECT_EQ(fix_enc("sch\xc3\x83\xc2\xb6n"), "sch\xc3\xb6n");
  EXPECT_EQ(fix_enc("This text is fine already :\xc3\xbe"), "This text is fine already :\xc3\xbe");
  EXPECT_EQ(fix_enc("This \xc3\xa2\xe2\x82\xac\xe2\x80\x9d should be an em dash"),
            "This \xe2\x80\x94 should be an em dash");
  EXPECT_EQ(fix_enc("not such a fan of Charlotte Bront\xc3\xab\xe2\x80\xa6\xe2\x80\x9d"),
            "not such a fan of Charlotte Bront\xc3\xab\xe2\x80\xa6\xe2\x80\x9d");
  EXPECT_EQ(
      fix_enc("\xc3\x83\xc2\xa0\xc3\x82\xc2\xb2\xc3\x82\xc2\xa0_\xc3\x83\xc2\xa0\xc3\x82\xc2\xb2\xc3\x82\xc2\xa0"),
      "\xe0\xb2\xa0_\xe0\xb2\xa0");  // ಠ_ಠ, two levels
  EXPECT_EQ(fix_enc("This text was never UTF-8 at all\xc2\x85"), "This text was never UTF-8 at all\xe2\x80\xa6");
  EXPECT_TRUE(ftfy_is_bad(U"doesn\u00c3\u00a2\u00e2\u201a\u00ac\u00e2\u201e\u00a2t"));
  EXPECT_FALSE(ftfy_is_bad(U"caf\u00e9 cr\u00e8me br\u00fbl\u00e9e"));
}

// Tokens per second over the 1000 ImageNet class names x 80 templates (printed, not asserted).
TEST(ClipTokenizerBench, ImagenetPrompts) {
  const auto prompts = load_json(std::string(ZEROSHOT_SHARED) + "/data/zero_shot_prompts.json");
  std::vector<std::string> classes, templates;
  for (const auto& c : prompts.at("datasets").at("imagenet").at("classes")) classes.push_back(c);
  for (const auto& t : prompts.at("datasets").at("imagenet").at("templates")) templates.push_back(t);
  ASSERT_FALSE(classes.empty());
  ASSERT_FALSE(templates.empty());
  const auto tok = ClipTokenizer::from_dir(model_dir("clip-tiny-quickgelu"));
  size_t tokens = 0, texts = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const auto& c : classes)
    for (auto t : templates) {
      const auto at = t.find("{}");
      if (at != std::string::npos) t.replace(at, 2, c);
      tokens += tok.encode(t).size();
      ++texts;
    }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[bench] %zu prompts, %zu tokens in %.3f s: %.0f tokens/s, %.0f prompts/s\n", texts, tokens, s,
              double(tokens) / s, double(texts) / s);
}

}  // namespace
}  // namespace zeroshot::text
