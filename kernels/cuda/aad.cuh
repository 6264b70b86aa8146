// The AAD layer's fused ops, CUDA device code, NHWC float32. Arithmetic:
// kernels/common/aad.h. Reference: identitydp_fast/reference/aad.py. Launchers:
// csrc/cuda/aad_launchers.cu.
//
// instance norm, three kernels:
//   1. partial: grid (chunks, ceil(C / TC), N), block (TC, TY), TC * TY = 256, TC a power of
//      two <= 32 (threadIdx.x = channel, so a warp reads 32 consecutive floats or whole
//      pixels). Each thread sums its pixels p0 + ty, p0 + ty + TY, ... of the chunk in
//      float64, shifted by its first value (idp_shifted_stats); the TY threads of a
//      channel are merged (Chan, float64) in a fixed tree in shared memory;
//      partial[((n * chunks + k) * C + c) * 3 + {0,1,2}] = count, mean, M2 (float64).
//   2. finalize: one thread per (n, c) merges the chunks in order (float64);
//      stats[(n * C + c) * 2 + {0,1}] = float32 mean, rstd.
// Deterministic: the chunking depends on the shape only, and every merge order is fixed.
//   3. apply: one thread per element, out = (h - mean) * rstd.
// blend and upsample: one thread per output element, consecutive threads = consecutive
// channels (coalesced).
#pragma once
#include "../common/aad.h"

// h: (N, H, W, C); partial: (N, chunks, C, 3) float64
extern "C" __global__ void idp_inorm_partial_kernel(const float* __restrict__ h, IdpAadShape s,
                                                    long long chunk, long long chunks,
                                                    double* __restrict__ partial) {
  __shared__ double sh_cnt[256], sh_mean[256], sh_m2[256];
  const int tc = blockDim.x, ty_n = blockDim.y;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const long long k = blockIdx.x, n = blockIdx.z;
  const long long c = (long long)blockIdx.y * tc + tx;
  const long long hw = s.h * s.w;
  const long long p0 = k * chunk;
  const long long p1 = p0 + chunk < hw ? p0 + chunk : hw;
  double cnt = 0.0, mean = 0.0, m2 = 0.0;
  if (c < s.c && p0 + ty < p1) {
    const float* base = h + n * hw * s.c + c;
    const double k0 = base[(p0 + ty) * s.c];
    double s1 = 0.0, s2 = 0.0;
    for (long long p = p0 + ty; p < p1; p += ty_n) {
      const double d = (double)base[p * s.c] - k0;
      s1 += d;
      s2 += d * d;
      cnt += 1.0;
    }
    idp_shifted_stats(cnt, k0, s1, s2, mean, m2);
  }
  const int t = ty * tc + tx;
  sh_cnt[t] = cnt; sh_mean[t] = mean; sh_m2[t] = m2;
  __syncthreads();
  for (int stride = ty_n / 2; stride > 0; stride /= 2) {
    if (ty < stride) {
      const int u = (ty + stride) * tc + tx;
      idp_chan_merge(cnt, mean, m2, sh_cnt[u], sh_mean[u], sh_m2[u]);
      sh_cnt[t] = cnt; sh_mean[t] = mean; sh_m2[t] = m2;
    }
    __syncthreads();
  }
  if (ty == 0 && c < s.c) {
    double* o = partial + ((n * chunks + k) * s.c + c) * 3;
    o[0] = cnt; o[1] = mean; o[2] = m2;
  }
}

// partial: (N, chunks, C, 3) float64 -> stats: (N, C, 2) = float32 mean, rstd
extern "C" __global__ void idp_inorm_finalize_kernel(const double* __restrict__ partial,
                                                     IdpAadShape s, long long chunks, double eps,
                                                     float* __restrict__ stats) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;  // n * C + c
  if (i >= s.n * s.c) return;
  const long long n = i / s.c, c = i % s.c;
  double cnt = 0.0, mean = 0.0, m2 = 0.0;
  for (long long k = 0; k < chunks; ++k) {
    const double* p = partial + ((n * chunks + k) * s.c + c) * 3;
    idp_chan_merge(cnt, mean, m2, p[0], p[1], p[2]);
  }
  stats[i * 2] = (float)mean;
  stats[i * 2 + 1] = idp_inorm_rstd(cnt, m2, eps);
}

// h, out: (N, H, W, C); stats: (N, C, 2)
extern "C" __global__ void idp_inorm_apply_kernel(const float* __restrict__ h,
                                                  const float* __restrict__ stats, IdpAadShape s,
                                                  float* __restrict__ out) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long total = s.n * s.h * s.w * s.c;
  if (i >= total) return;
  const long long c = i % s.c;
  const long long n = i / (s.h * s.w * s.c);
  const float* st = stats + (n * s.c + c) * 2;
  out[i] = idp_inorm_apply(h[i], st[0], st[1]);
}

// h, ga, ba, out: (N, H, W, C); gi, bi: (N, C); logits: (N, H, W)
extern "C" __global__ void idp_aad_blend_kernel(const float* __restrict__ h,
                                                const float* __restrict__ ga,
                                                const float* __restrict__ ba,
                                                const float* __restrict__ gi,
                                                const float* __restrict__ bi,
                                                const float* __restrict__ logits, IdpAadShape s,
                                                int relu, float* __restrict__ out) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long total = s.n * s.h * s.w * s.c;
  if (i >= total) return;
  const long long c = i % s.c;
  const long long pix = i / s.c;                 // (n, y, x)
  const long long nc = (pix / (s.h * s.w)) * s.c + c;  // (n, c)
  const float m = idp_sigmoidf(logits[pix]);
  out[i] = idp_aad_blend(h[i], ga[i], ba[i], gi[nc], bi[nc], m, relu);
}

// x: (N, H, W, C); residual (nullable), out: (N, 2H, 2W, C)
extern "C" __global__ void idp_upsample2x_kernel(const float* __restrict__ x,
                                                 const float* __restrict__ residual,
                                                 IdpAadShape s, float* __restrict__ out) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long oh = 2 * s.h, ow = 2 * s.w;
  const long long total = s.n * oh * ow * s.c;
  if (i >= total) return;
  const long long c = i % s.c;
  const long long ox = (i / s.c) % ow;
  const long long oy = (i / (s.c * ow)) % oh;
  const long long n = i / (s.c * ow * oh);
  const IdpUpTap ty = idp_up2x_tap(oy, s.h);
  const IdpUpTap tx = idp_up2x_tap(ox, s.w);
  const float* r0 = x + (n * s.h + ty.i0) * s.w * s.c + c;
  const float* r1 = x + (n * s.h + ty.i1) * s.w * s.c + c;
  float v = idp_up2x_mix(r0[tx.i0 * s.c], r0[tx.i1 * s.c], r1[tx.i0 * s.c], r1[tx.i1 * s.c], ty, tx);
  if (residual != nullptr) v += residual[i];
  out[i] = v;
}
