// Raw-pointer entry points of the prior engine's fused ops (kernels/common/prior.h).
// Callers (csrc/bind_prior.cpp) have checked shapes, dtypes, strides and devices.
#pragma once
#include <cstdint>

#include "common/prior.h"

namespace idp {

// in, out: (n, h, w, c); wmod: (n, 9, c) = weight[c, k] * style[n, c]
void cpu_prior_dwconv3x3(const float* in, const float* wmod, const IdpPriorShape& s, float* out);
// in: (n, h, w, 4c), style: (n, 4c), out: (n, 2h, 2w, c)
void cpu_prior_haar(const float* in, const float* style, const IdpPriorShape& s, float* out);
// y, out: (n, h, w, c) (may alias); bias: (c,); noise: (h, w) or null
void cpu_prior_epilogue(const float* y, const float* bias, const float* noise, const IdpPriorShape& s,
                        float* out);
#ifdef IDP_WITH_CUDA
void cuda_prior_dwconv3x3(const float* in, const float* wmod, const IdpPriorShape& s, float* out,
                          void* cuda_stream);
void cuda_prior_haar(const float* in, const float* style, const IdpPriorShape& s, float* out,
                     void* cuda_stream);
void cuda_prior_epilogue(const float* y, const float* bias, const float* noise, const IdpPriorShape& s,
                         float* out, void* cuda_stream);
#endif

}  // namespace idp
