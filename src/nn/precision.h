// The precision of a linear layer's weights and activations (nn/linear.h says what each does): the one precision
// enum of the layers under the public API, from the GEMM kernels (nn/kernels.h) up to the model configs.
// zeroshot::Precision (include/zeroshot/zeroshot.h) is the public spelling, mapped to this one in api/backend.h.
#pragma once

namespace zeroshot::nn {

// Int4: weight-only, group-wise 4-bit weights dequantized to f32 inside the GEMM (nn/int4_gemm.h).
enum class Precision { F32, BF16, Int8, Int4 };
const char* precision_name(Precision p);  // "f32", "bf16", "int8", "int4"

}  // namespace zeroshot::nn
