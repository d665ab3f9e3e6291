// Internal to src/models: the checks every text encoder (CLIP, SigLIP, CLAP) makes on one sequence of token ids
// before running it, with the same one-line messages: "input_ids[<i>]: empty token sequence", "... <n> tokens, more
// than <limit name> <limit>", "... token id <id> is outside the vocabulary (size <v>)". Throws zeroshot::Error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "zeroshot/error.h"

namespace zeroshot::models {

// Sequence `i` of a batch: 1..max_len ids (`limit` names max_len in the message: "max_position_embeddings", "the
// padded length"), each in [0, vocab_size).
inline void check_token_ids(const std::vector<int32_t>& ids, size_t i, int max_len, const std::string& limit,
                            int vocab_size) {
  const std::string where = "input_ids[" + std::to_string(i) + "]";
  if (ids.empty()) throw Error(where, "empty token sequence");
  if (ids.size() > static_cast<size_t>(max_len))
    throw Error(where, std::to_string(ids.size()) + " tokens, more than " + limit + " " + std::to_string(max_len));
  for (int32_t id : ids)
    if (id < 0 || id >= vocab_size)
      throw Error(where, "token id " + std::to_string(id) + " is outside the vocabulary (size " +
                             std::to_string(vocab_size) + ")");
}

}  // namespace zeroshot::models
