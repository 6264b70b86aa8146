// The prior engine's fused ops, CUDA device code, NHWC float32: one thread per output
// element (consecutive threads = consecutive channels: coalesced loads and stores).
// Arithmetic: kernels/common/prior.h. Reference: identitydp_fast/reference/prior_ops.py.
// Launchers: csrc/cuda/prior_launchers.cu.
#pragma once
#include "../common/prior.h"

extern "C" __global__ void idp_prior_dwconv3x3_kernel(const float* __restrict__ in,
                                                      const float* __restrict__ wmod,
                                                      IdpPriorShape s, float* __restrict__ out) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= s.n * s.h * s.w * s.c) return;
  const long long c = i % s.c, x = (i / s.c) % s.w, y = (i / (s.c * s.w)) % s.h;
  const long long n = i / (s.c * s.w * s.h);
  out[i] = idp_prior_dwconv3x3_at(in, wmod, s, n, y, x, c);
}

extern "C" __global__ void idp_prior_haar_kernel(const float* __restrict__ in,
                                                 const float* __restrict__ style, IdpPriorShape s,
                                                 float* __restrict__ out) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long ow = 2 * s.w, oh = 2 * s.h;
  if (i >= s.n * oh * ow * s.c) return;
  const long long c = i % s.c, x = (i / s.c) % ow, y = (i / (s.c * ow)) % oh;
  const long long n = i / (s.c * ow * oh);
  out[i] = idp_prior_haar_at(in, style, s, n, y, x, c);
}

extern "C" __global__ void idp_prior_epilogue_kernel(const float* __restrict__ y,
                                                     const float* __restrict__ bias,
                                                     const float* __restrict__ noise,
                                                     IdpPriorShape s, float* __restrict__ out) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= s.n * s.h * s.w * s.c) return;
  const long long c = i % s.c, pixel = i / s.c;
  out[i] = idp_prior_epilogue(y[i], noise ? noise[pixel % (s.h * s.w)] : 0.f, bias[c]);
}
