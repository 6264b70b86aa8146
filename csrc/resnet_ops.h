// Raw-pointer entry points of the identity-encoder (dlib ResNet) engine ops. Callers
// (csrc/bind_resnet.cpp) have checked shapes, dtypes, strides and devices.
#pragma once
#include <cstdint>

#include "common/residual_add.h"

namespace idp {

void cpu_residual_add_relu(const float* main, const float* shortcut, const IdpResidualShape& s,
                           float* out);
#ifdef IDP_WITH_CUDA
void cuda_residual_add_relu(const float* main, const float* shortcut, const IdpResidualShape& s,
                            float* out, void* cuda_stream);
#endif

}  // namespace idp
