// The fused epsilon-IdentityDP op, CUDA device code: one thread block per row, one
// launch for the whole batch. Threads stride over the row's coordinates; the three
// row reductions (||x||_2, ||r||_1, ||y||_2), in float64, go through warp shuffles and
// shared memory.
// Math and order of operations: identitydp_fast/reference/identity_dp.py.
// Launcher: csrc/cuda/launchers.cu.
#pragma once
#include "../common/discrete_laplace.h"
#include "chacha20.cuh"

#define IDP_DP_THREADS 128

// Row sums in float64 over float32 terms: the clip's bound ||r||_1 <= C must survive the
// summation error (why and the bound: identitydp_fast/reference/identity_dp.py).
__device__ __forceinline__ double idp_block_sum(double value, double* shared) {
  for (int off = 16; off > 0; off >>= 1) value += __shfl_xor_sync(0xffffffffu, value, off);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // shared may still be read by a previous reduction
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < (int)(blockDim.x >> 5); ++w) total += shared[w];
  return total;
}

// x, out, v: (rows, dim) float32; center: (dim,) or null; table: (n_bits + 1, words) uint32.
// Requires blockDim.x == IDP_DP_THREADS (a multiple of 32).
extern "C" __global__ void idp_identity_dp_kernel(
    const float* __restrict__ x, const float* __restrict__ center, long long rows, long long dim,
    IdpKey key, unsigned long long stream, const uint32_t* __restrict__ table, int n_bits,
    int words_per_row, int log2_granularity, float clip, float output_norm,
    float* __restrict__ out, float* __restrict__ v) {
  __shared__ double shared[IDP_DP_THREADS / 32];
  const long long row = blockIdx.x;
  if (row >= rows) return;
  const float* xr = x + row * dim;
  float* outr = out + row * dim;
  float* vr = v + row * dim;

  double sq = 0.0;
  for (long long c = threadIdx.x; c < dim; c += blockDim.x)
    sq = __fma_rn((double)xr[c], (double)xr[c], sq);  // exact product: fma == mul + add
  const float norm = __double2float_rn(__dsqrt_rn(idp_block_sum(sq, shared)));

  double l1 = 0.0;
  for (long long c = threadIdx.x; c < dim; c += blockDim.x) {
    const float u = norm > 0.f ? __fdiv_rn(xr[c], norm) : 0.f;
    const float r = __fsub_rn(u, center ? center[c] : 0.f);
    outr[c] = r;  // scratch, read back only by this thread
    l1 = __dadd_rn(l1, fabs((double)r));
  }
  l1 = idp_block_sum(l1, shared);
  const bool do_clip = l1 > (double)clip;
  const double clip_scale = do_clip ? __ddiv_rn((double)clip, l1) : 1.0;

  const double inv_g = ldexp(1.0, -log2_granularity);
  const double g = ldexp(1.0, log2_granularity);
  double ysq = 0.0;
  for (long long c = threadIdx.x; c < dim; c += blockDim.x) {
    const float r = do_clip ? __double2float_rn(__dmul_rn((double)outr[c], clip_scale)) : outr[c];
    const long long n = (long long)floor(__dadd_rn(__dmul_rn((double)r, inv_g), 0.5));
    IdpWordStream s;
    idp_stream_init(&s, key.w, stream, (uint32_t)(row * dim + c));
    const long long k = idp_discrete_laplace(&s, table, n_bits, words_per_row);
    const float vc = (float)__dmul_rn((double)(n + k), g);
    vr[c] = vc;
    const float y = __fadd_rn(center ? center[c] : 0.f, vc);
    outr[c] = y;
    ysq = __fma_rn((double)y, (double)y, ysq);
  }
  const float ny = __double2float_rn(__dsqrt_rn(idp_block_sum(ysq, shared)));
  const float scale = ny > 0.f ? __fdiv_rn(output_norm, ny) : 0.f;
  for (long long c = threadIdx.x; c < dim; c += blockDim.x)
    outr[c] = ny > 0.f ? __fmul_rn(outr[c], scale) : 0.f;
}
