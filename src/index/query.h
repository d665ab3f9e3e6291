// Search queries in rclip's syntax: terms joined by "+" and "-", each with an optional weight.
//
//   zeroshot search "2:golden retriever" + ./pool.jpg - fruit
//
// - The command line's words between operators form one term, joined by spaces (`red car` needs no quotes).
// - "W:term" weights a term (W a non-negative decimal: "2:dog", "0.5:./cat.jpg", ".5:x"); default 1. "-" negates.
// - A term is an image when it names an existing file, or starts with "/", "./", "../", "~/" or "file://" (then it
//   must exist); otherwise it is text. An image word inside a run of words is a term of its own (added).
// The query vector is sum_i sign_i * weight_i * normalize(embedding_i), normalized: the score of an image is the
// cosine between it and that vector (rclip ranks by the same sum un-normalized: the same order).
#pragma once

#include <string>
#include <vector>

#include "zeroshot/zeroshot.h"

namespace zeroshot::index {

struct QueryTerm {
  float weight = 1;  // signed
  bool image = false;
  std::string value;  // text, or the image's path
};

// `words`: the command line's query words; `images`: --image values (added, weights allowed).
// Throws zeroshot::Error("query", ...) for an empty query, a dangling or doubled operator, a bad weight.
std::vector<QueryTerm> parse_query(const std::vector<std::string>& words, const std::vector<std::string>& images = {});

// The normalized query vector from each term's (un-normalized) embedding, in term order. Throws when the weighted
// sum is zero ("cat - cat").
std::vector<float> combine_terms(const std::vector<QueryTerm>& terms, const std::vector<const float*>& embeddings,
                                 size_t dim);

// Embeds the terms with `model` (texts in one batch, images decoded like indexed images) and combines them.
std::vector<float> query_vector(const Model& model, const std::vector<QueryTerm>& terms);

// "2:dog" -> (2, "dog"); no weight prefix -> (1, s). False (and *weight untouched) when there is none.
bool split_weight(const std::string& s, float* weight, std::string* rest);

}  // namespace zeroshot::index
