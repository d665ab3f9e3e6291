// Checks every tokenizer test runs the same way, for any tokenizer with `encode(const std::string&)` returning
// std::vector<int32_t> (its default length rule): the fixture texts against the reference's ids, and encoding
// from many threads at once (the tokenizers cache words behind a lock) against encoding from one.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "io/json.h"

namespace zeroshot::testing {

// Every text of MODEL_DIR/expected.json's "texts" must encode to the same row of its "input_ids" (at least 20
// texts, so a truncated fixture cannot pass unnoticed).
template <class Tokenizer>
void expect_fixture_ids(const Tokenizer& tok, const std::string& model_dir) {
  const io::Json expected = io::load_json(model_dir + "/expected.json");
  const auto& texts = expected.at("texts");
  const auto& ids = expected.at("input_ids");
  ASSERT_EQ(texts.size(), ids.size());
  ASSERT_GE(texts.size(), 20u);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    EXPECT_EQ(tok.encode(text), ids[i].get<std::vector<int32_t>>()) << model_dir << " text #" << i << ": " << text;
  }
}

// `fresh` (a tokenizer nothing has used: an empty cache) encodes `texts` from 8 threads, 3 rounds each, every thread
// starting at a different text; every result must equal what `single` (another fresh one, one thread) gives.
template <class Tokenizer>
void expect_concurrent_encode_deterministic(const Tokenizer& fresh, const Tokenizer& single,
                                            const std::vector<std::string>& texts) {
  std::vector<std::vector<std::vector<int32_t>>> results(8);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      results[t].resize(texts.size());
      for (int round = 0; round < 3; ++round)
        for (size_t i = 0; i < texts.size(); ++i) {
          const size_t k = (i + t * 13) % texts.size();
          results[t][k] = fresh.encode(texts[k]);
        }
    });
  }
  for (auto& th : threads) th.join();
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto expected = single.encode(texts[i]);
    for (const auto& r : results) ASSERT_EQ(r[i], expected) << texts[i];
  }
}

}  // namespace zeroshot::testing
