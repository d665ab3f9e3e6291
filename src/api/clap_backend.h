// The CLAP family (model_type "clap", the Hugging Face ClapModel layout) behind the Backend seam.
// Semantics are the Hugging Face zero-shot-audio-classification pipeline's (fixtures/clap/README.md): decode like
// ffmpeg to mono 48 kHz, ClapFeatureExtractor for one clip (batch of one: short clips of fused models get
// is_longer = true), RoBERTa tokenization without truncation, exp(logit_scale_a) as the score scale.
#pragma once

#include <memory>
#include <string>

#include "api/backend.h"

namespace zeroshot::api {

// `dir` holds config.json (model_type "clap"), the weights, preprocessor_config.json (HF defaults when absent)
// and the RoBERTa tokenizer files (checked now, parsed on first use). Throws zeroshot::Error naming the file.
std::unique_ptr<Backend> make_clap_backend(const std::string& dir, const ModelOptions& options,
                                           const Int8Capture* capture = nullptr);

}  // namespace zeroshot::api
