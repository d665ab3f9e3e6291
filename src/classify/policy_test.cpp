#include "classify/policy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "support/errors.h"
#include "zeroshot/error.h"

using namespace zeroshot::classify;

namespace {

// The message of parsing `toml` as the policy file `source` (support/errors.h: "(no error)" when it parses).
std::string error_of(const std::string& toml, const std::string& source = "p.toml") {
  return zeroshot::testing::error_of([&] { parse_policy(toml, source); });
}

}  // namespace

TEST(Policy, ParsesCategoriesWithDefaults) {
  const Policy p = parse_policy(R"(
description = "test"
templates = ["a photo of {}.", "art of {}."]
threshold = 0.6

[[category]]
name = "weapons"
prompts = ["a gun", "a knife"]
negative_prompts = ["a toy"]

[[category]]
name = "gore"
prompts = ["blood"]
threshold = 1

[[category]]
name = "text"
prompts = ["a screenshot"]
templates = ["{}"]
on = "cosine"
threshold = -0.25
)",
                                "p.toml");
  EXPECT_EQ(p.source, "p.toml");
  EXPECT_EQ(p.description, "test");
  ASSERT_EQ(p.categories.size(), 3u);
  const auto& w = p.categories[0];
  EXPECT_EQ(w.name, "weapons");
  EXPECT_EQ(w.prompts, (std::vector<std::string>{"a gun", "a knife"}));
  EXPECT_EQ(w.templates, (std::vector<std::string>{"a photo of {}.", "art of {}."}));
  EXPECT_EQ(w.negative_prompts, (std::vector<std::string>{"a toy"}));
  EXPECT_EQ(w.on, ScoreOn::Probability);
  EXPECT_FLOAT_EQ(w.threshold, 0.6f);
  EXPECT_EQ(w.line, 6u);
  const auto& g = p.categories[1];
  EXPECT_EQ(g.negative_prompts, neutral_names());  // through the templates, like the prompts
  EXPECT_FLOAT_EQ(g.threshold, 1.f);
  const auto& t = p.categories[2];
  EXPECT_EQ(t.on, ScoreOn::Cosine);
  EXPECT_EQ(t.templates, (std::vector<std::string>{"{}"}));
  EXPECT_TRUE(t.negative_prompts.empty());
  EXPECT_FLOAT_EQ(t.threshold, -0.25f);
}

TEST(Policy, VerbatimPromptsGetFullNeutralSentences) {
  const Policy p = parse_policy("[[category]]\nname = \"x\"\nprompts = [\"a photo of a gun\"]\n", "p.toml");
  ASSERT_EQ(p.categories.size(), 1u);
  EXPECT_EQ(p.categories[0].templates, (std::vector<std::string>{"{}"}));
  EXPECT_EQ(p.categories[0].negative_prompts,
            (std::vector<std::string>{"a photo of something.", "a photo of an object."}));
  EXPECT_FLOAT_EQ(p.categories[0].threshold, 0.5f);
}

TEST(Policy, EveryMistakeIsOneLineNamingFileAndLine) {
  const std::string ok_cat = "[[category]]\nname = \"x\"\nprompts = [\"a\"]\n";
  // TOML syntax.
  EXPECT_EQ(error_of("[[category]]\nname = \"x\nprompts = [\"a\"]\n").rfind("p.toml:2: invalid TOML: ", 0), 0u)
      << error_of("[[category]]\nname = \"x\nprompts = [\"a\"]\n");
  // Unknown keys, top level and in a category; the first in file order is named.
  EXPECT_EQ(error_of("treshold = 0.5\n" + ok_cat),
            "p.toml:1: unknown key \"treshold\" in the policy (known keys: description, templates, negative_prompts, "
            "on, threshold, category)");
  EXPECT_EQ(error_of("[[category]]\nname = \"x\"\nzprompt = [\"a\"]\npromts = [\"a\"]\n"),
            "p.toml:3: unknown key \"zprompt\" in [[category]] (known keys: name, description, prompts, "
            "negative_prompts, templates, on, threshold)");
  // Missing or empty prompts, names.
  EXPECT_EQ(error_of("[[category]]\nname = \"x\"\n"), "p.toml:1: category \"x\" has no prompts");
  EXPECT_EQ(error_of("[[category]]\nname = \"x\"\nprompts = []\n"), "p.toml:3: prompts is empty");
  EXPECT_EQ(error_of("[[category]]\nname = \"x\"\nprompts = [\"a\", \" \"]\n"),
            "p.toml:3: prompts holds an empty string");
  EXPECT_EQ(error_of("[[category]]\nprompts = [\"a\"]\n"), "p.toml:1: category without a name");
  EXPECT_EQ(error_of("[[category]]\nname = \"\"\nprompts = [\"a\"]\n"), "p.toml:2: empty category name");
  EXPECT_EQ(error_of(ok_cat + ok_cat), "p.toml:5: category \"x\" is defined twice (first at line 1)");
  // Wrong types.
  EXPECT_EQ(error_of("[[category]]\nname = \"x\"\nprompts = \"a gun\"\n"),
            "p.toml:3: prompts must be an array of strings, not a string");
  EXPECT_EQ(error_of("[[category]]\nname = \"x\"\nprompts = [\"a\", 3]\n"),
            "p.toml:3: prompts must be an array of strings, but holds an integer");
  EXPECT_EQ(error_of("[[category]]\nname = 7\nprompts = [\"a\"]\n"), "p.toml:2: name must be a string, not an integer");
  EXPECT_EQ(error_of(ok_cat + "threshold = \"high\"\n"), "p.toml:4: threshold must be a number, not a string");
  EXPECT_EQ(error_of(ok_cat + "on = \"sigmoid\"\n"),
            "p.toml:4: on must be \"probability\" or \"cosine\", not \"sigmoid\"");
  EXPECT_EQ(error_of("[category]\nname = \"x\"\nprompts = [\"a\"]\n"),
            "p.toml:1: category must be an array of tables: write each as [[category]]");
  // Thresholds out of range, per score.
  EXPECT_EQ(error_of(ok_cat + "threshold = 1.5\n"),
            "p.toml:4: threshold must be between 0 and 1 for a probability score");
  EXPECT_EQ(error_of(ok_cat + "threshold = -0.1\n"),
            "p.toml:4: threshold must be between 0 and 1 for a probability score");
  EXPECT_EQ(error_of(ok_cat + "threshold = nan\n"),
            "p.toml:4: threshold must be between 0 and 1 for a probability score");
  EXPECT_EQ(error_of(ok_cat + "on = \"cosine\"\nthreshold = -2\n"),
            "p.toml:5: threshold must be between -1 and 1 for a cosine score");
  EXPECT_EQ(error_of("threshold = 3\n" + ok_cat),
            "p.toml:1: threshold must be between 0 and 1 for a probability score");
  EXPECT_EQ(error_of(ok_cat + "on = \"cosine\"\n"),
            "p.toml:1: category \"x\" scores on cosine and needs a threshold (cosines must be calibrated per model)");
  EXPECT_EQ(error_of(ok_cat + "on = \"cosine\"\nthreshold = 0.3\nnegative_prompts = [\"b\"]\n"),
            "p.toml:6: negative_prompts only apply to on = \"probability\" (category \"x\")");
  // Templates need "{}".
  EXPECT_EQ(error_of(ok_cat + "templates = [\"a photo\"]\n"),
            "p.toml:4: template \"a photo\": has no \"{}\" where the label goes");
  // No categories at all.
  EXPECT_EQ(error_of(""), "p.toml: no categories: add one or more [[category]] tables");
  EXPECT_EQ(error_of("description = \"x\"\n"), "p.toml: no categories: add one or more [[category]] tables");
  // Control characters in names are escaped: the message stays on one line.
  const std::string e = error_of("[[category]]\nname = \"a\\nb\"\n");
  EXPECT_EQ(e, "p.toml:1: category \"a\\nb\" has no prompts");
  EXPECT_EQ(e.find('\n'), std::string::npos);
  // Not UTF-8.
  EXPECT_EQ(error_of("description = \"\xff\"\n" + ok_cat).rfind("p.toml:1: invalid TOML: ", 0), 0u);
}

TEST(Policy, FilesAndLimits) {
  EXPECT_THROW(load_policy_file("/nonexistent/policy.toml"), zeroshot::Error);
  EXPECT_THROW(load_policy_file("/tmp"), zeroshot::Error);
  const std::string big = "description = \"" + std::string(kMaxPolicyBytes, 'x') + "\"\n";
  EXPECT_EQ(error_of(big), "p.toml: policy file larger than 1 MiB");
  const auto path = std::filesystem::temp_directory_path() / "zs_policy_test_big.toml";
  std::ofstream(path) << big;
  try {
    load_policy_file(path.string());
    ADD_FAILURE();
  } catch (const zeroshot::Error& e) {
    EXPECT_EQ(std::string(e.what()), path.string() + ": policy file larger than 1 MiB");
  }
  std::filesystem::remove(path);
}

TEST(Policy, ShippedExampleParses) {
  const Policy p = load_policy_file(std::string(ZEROSHOT_SOURCE_DIR) + "/examples/moderation-policy.toml");
  ASSERT_GE(p.categories.size(), 5u);
  EXPECT_EQ(p.categories[0].name, "weapons");
  for (const auto& c : p.categories) {
    EXPECT_FALSE(c.prompts.empty());
    EXPECT_FALSE(c.templates.empty());
    EXPECT_EQ(c.negative_prompts.empty(), c.on == ScoreOn::Cosine) << c.name;
  }
}

TEST(Policy, CategoryScoreIsBestPromptAgainstNegative) {
  PolicyCategory c;
  c.name = "x";
  const float cos[] = {0.21f, 0.27f, 0.18f};
  // Probability: best prompt 0.27 against negative 0.24 with scale 100: 1 / (1 + e^-3) = 0.9525741268.
  EXPECT_NEAR(category_score(c, cos, 3, 0.24f, 100.f), 0.9525741268, 1e-6);
  // Against a closer negative 0.30: 1 / (1 + e^3) = 0.0474258732.
  EXPECT_NEAR(category_score(c, cos, 3, 0.30f, 100.f), 0.0474258732, 1e-6);
  c.on = ScoreOn::Cosine;
  EXPECT_FLOAT_EQ(category_score(c, cos, 3, 0.99f, 100.f), 0.27f);
  EXPECT_THROW(category_score(c, cos, 0, 0.f, 100.f), zeroshot::Error);
}

TEST(Policy, DamagedFilesAreErrorsNeverCrashes) {
  std::ifstream in(std::string(ZEROSHOT_SOURCE_DIR) + "/examples/moderation-policy.toml", std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(text.size(), 500u);
  size_t ok = 0, errors = 0;
  auto attempt = [&](const std::string& t) {
    try {
      parse_policy(t, "p.toml");
      ++ok;
    } catch (const zeroshot::Error& e) {  // anything else escaping fails the test
      ++errors;
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("p.toml", 0), 0u) << e.what();
    }
  };
  for (size_t n = 0; n <= text.size(); n += 3) attempt(text.substr(0, n));
  uint32_t seed = 12345;
  for (int i = 0; i < 400; ++i) {
    std::string t = text;
    for (int k = 0; k < 3; ++k) {
      seed = seed * 1664525u + 1013904223u;
      t[(seed >> 8) % t.size()] = static_cast<char>(seed >> 24);
    }
    attempt(t);
  }
  EXPECT_GT(ok, 0u);
  EXPECT_GT(errors, 0u);
}
