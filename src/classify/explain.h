// Explanation maps: how much each image patch supports each label, from patch tokens projected into the joint space
// (models::ClipModel::encode_image_tokens) and L2-normalized label embeddings.
//
//   Cosine   cos(patch token, label): the plain patch-text similarity.
//   Surgery  CLIP Surgery's feature surgery (Li et al. 2023, arXiv:2304.05653, clip_feature_surgery of its reference
//            code): with the patch tokens F_n and the image embedding F_0 L2-normalized, w_k = K * softmax_k(2 cos(F_0,
//            T_k)) and map_k(n) = w_k cos(F_n, T_k) - mean_j w_j cos(F_n, T_j): what every label shares (the
//            "redundant features" that light up the same background patches for any text) is removed. With one
//            label that difference is 0, so, as its code does when given redundant features, the map is
//            cos(F_n, T - R) with R the normalized embedding of the empty label through the same templates.
// Pure functions; no state.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace zeroshot::classify {

enum class MapMethod { Cosine, Surgery };

// "cosine" | "surgery" -> *out; false for another name.
bool parse_map_method(const std::string& name, MapMethod* out);
const char* map_method_name(MapMethod m);

// tokens: (1 + n) x dim (row 0 the image embedding, rows 1.. the n patches; any norm). labels: k x dim,
// L2-normalized. empty_label: dim floats, L2-normalized, read only for Surgery with k == 1 (then required).
// Returns k x n, label-major. Computed in double, returned as float.
std::vector<float> patch_label_maps(const float* tokens, size_t n, size_t dim, const float* labels, size_t k,
                                    MapMethod method, const float* empty_label = nullptr);

}  // namespace zeroshot::classify
