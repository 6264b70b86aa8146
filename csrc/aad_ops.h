// Raw-pointer entry points of the AAD-layer engine ops (instance norm, blend + ReLU,
// bilinear x2 + residual). Callers (csrc/bind_aad.cpp) have checked shapes, dtypes,
// strides and devices. All tensors float32, NHWC contiguous; shapes in IdpAadShape are
// those of the input activation (n, h, w, c).
#pragma once
#include <cstdint>

#include "common/aad.h"

namespace idp {

// h, out: (N, H, W, C).
void cpu_instance_norm(const float* h, const IdpAadShape& s, float eps, float* out);
// h, ga, ba, out: (N, H, W, C); gi, bi: (N, C); logits: (N, H, W).
void cpu_aad_blend(const float* h, const float* ga, const float* ba, const float* gi,
                   const float* bi, const float* logits, const IdpAadShape& s, int relu,
                   float* out);
// x: (N, H, W, C); residual (nullable), out: (N, 2H, 2W, C).
void cpu_upsample2x(const float* x, const float* residual, const IdpAadShape& s, float* out);
#ifdef IDP_WITH_CUDA
void cuda_instance_norm(const float* h, const IdpAadShape& s, float eps, float* out,
                        void* cuda_stream);
void cuda_aad_blend(const float* h, const float* ga, const float* ba, const float* gi,
                    const float* bi, const float* logits, const IdpAadShape& s, int relu,
                    float* out, void* cuda_stream);
void cuda_upsample2x(const float* x, const float* residual, const IdpAadShape& s, float* out,
                     void* cuda_stream);
#endif

}  // namespace idp
