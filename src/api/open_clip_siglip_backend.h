// OpenCLIP-format SigLIP (open_clip_config.json with a sigmoid head: the timm/ViT-*-SigLIP* hub repos) behind the
// Backend seam, with open_clip's semantics: the config and weights mapped onto SiglipModel (models/open_clip_siglip.h);
// texts cleaned as HFTokenizer(clean="canonicalize") does (text/open_clip_clean.h), then tokenized by the folder's
// spiece.model as SiglipTokenizer (tokenizer_config.json's class SiglipTokenizer, or T5Tokenizer as in the timm hub
// repos: the same ids on cleaned text), truncated and padded to context_length with the pad id and run without an
// attention mask; open_clip's eval transform from preprocess_cfg (image/open_clip_transform.h); scores
// sigmoid(exp(logit_scale) * cos + logit_bias).
#pragma once

#include <memory>
#include <string>

#include "api/backend.h"

namespace zeroshot::api {

// Throws zeroshot::Error naming the file at fault: the config (an unknown timm trunk, ...), a missing tokenizer
// (spiece.model) or weights file, a tokenizer_class other than SiglipTokenizer / T5Tokenizer(Fast).
std::unique_ptr<Backend> make_open_clip_siglip_backend(const std::string& dir, const ModelOptions& options,
                                                       const Int8Capture* capture = nullptr);

}  // namespace zeroshot::api
