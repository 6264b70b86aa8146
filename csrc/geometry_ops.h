// Raw-pointer entry points of the face-geometry ops (csrc/bind_geometry.cpp checks first).
#pragma once
#include <cstdint>

#include "common/warp_affine.h"

namespace idp {

// images (N, H, W, C) uint8 or float32; matrices (N, 2, 3) float64; mean (C,) float64;
// out (N, out_h, out_w, C) float32. All on one device, contiguous.
void cpu_warp_affine(const void* images, const double* matrices, const double* mean,
                     const IdpWarpShape& s, float* out);
#ifdef IDP_WITH_CUDA
void cuda_warp_affine(const void* images, const double* matrices, const double* mean,
                      const IdpWarpShape& s, float* out, void* cuda_stream);
#endif

}  // namespace idp
