// Affine warp + bilinear + normalisation into NHWC float32, CUDA device code: one thread
// per output pixel (all channels). Arithmetic: kernels/common/warp_affine.h.
// Reference: identitydp_fast/reference/warp_affine.py. Launcher: csrc/cuda/geometry_launchers.cu.
#pragma once
#include "../common/warp_affine.h"

template <typename T>
__device__ void idp_warp_affine_body(const T* images, const double* matrices, const double* mean,
                                     IdpWarpShape s, float* out) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= s.n * s.out_h * s.out_w) return;
  const long long c = i % s.out_w;
  const long long r = (i / s.out_w) % s.out_h;
  const long long n = i / (s.out_w * s.out_h);
  idp_warp_pixel(images + n * s.in_h * s.in_w * s.c, matrices + 6 * n, mean, s, r, c,
                 out + i * s.c);
}

extern "C" __global__ void idp_warp_affine_u8_kernel(const uint8_t* images, const double* matrices,
                                                     const double* mean, IdpWarpShape s, float* out) {
  idp_warp_affine_body(images, matrices, mean, s, out);
}

extern "C" __global__ void idp_warp_affine_f32_kernel(const float* images, const double* matrices,
                                                      const double* mean, IdpWarpShape s, float* out) {
  idp_warp_affine_body(images, matrices, mean, s, out);
}
