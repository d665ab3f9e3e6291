// CLIPScore and RefCLIPScore (Hessel et al. 2021, "CLIPScore: A Reference-free Evaluation Metric for Image
// Captioning", eq. 1 and 2), on cosines the caller computes from L2-normalized embeddings.
//
//   CLIP-S(c, v)       = w * max(cos(c, v), 0)                        w = 2.5 in the paper; torchmetrics uses 100
//   RefCLIP-S(c, R, v) = H-Mean(CLIP-S(c, v), max(max_r cos(c, r), 0))
//
// Pure arithmetic: no allocation, no errors, thread-safe.
#pragma once

#include <cstddef>

namespace zeroshot::classify {

// The paper's w: it stretches the cosines CLIP typically gives (about 0 to 0.4) over roughly [0, 1].
inline constexpr float kClipScoreWeight = 2.5f;

// Dot product of two rows of `dim` floats (the cosine when both are L2-normalized), accumulated in double.
float dot(const float* a, const float* b, size_t dim);

// w * max(cosine, 0).
float clip_score(float cosine, float w);

// The harmonic mean of `clip_s` (a CLIP-S, already scaled by w) and max(ref_cosine, 0), where ref_cosine is the
// largest cosine of the candidate caption to any reference caption; 0 when both are 0.
float ref_clip_score(float clip_s, float ref_cosine);

}  // namespace zeroshot::classify
