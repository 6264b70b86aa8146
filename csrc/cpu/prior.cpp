// The prior engine's fused ops on the CPU, NHWC float32, OpenMP over output rows (n, y).
// Per element the same float32 operations in the same order as kernels/common/prior.h
// (used by CUDA), so cpu and cuda agree bit for bit; the loops are reordered so that the
// innermost one runs over contiguous channels and vectorises; the inner loops are also
// built for AVX2 (GCC target_clones, picked at load time; no FMA contraction, so the same
// results on every CPU). Reference: identitydp_fast/reference/prior_ops.py.
#include <algorithm>

#include "common/prior.h"
#include "prior_ops.h"

namespace idp {

namespace {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define IDP_PRIOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define IDP_PRIOR_CLONES
#endif

// out[c] = sum over the taps t of w_t[c] * p_t[c], accumulated in tap order, in blocks of
// 64 channels held in registers: each input pixel is read once per tap, out written once
IDP_PRIOR_CLONES void dw_pixel(const float* const* src, const float* const* wts, int taps,
                               int64_t C, float* __restrict__ out) {
  if (taps == 9) {  // an interior pixel: all taps, unrolled, one pass over the channels
    const float *__restrict__ p0 = src[0], *__restrict__ p1 = src[1], *__restrict__ p2 = src[2],
                *__restrict__ p3 = src[3], *__restrict__ p4 = src[4], *__restrict__ p5 = src[5],
                *__restrict__ p6 = src[6], *__restrict__ p7 = src[7], *__restrict__ p8 = src[8];
    const float *__restrict__ w0 = wts[0], *__restrict__ w1 = wts[1], *__restrict__ w2 = wts[2],
                *__restrict__ w3 = wts[3], *__restrict__ w4 = wts[4], *__restrict__ w5 = wts[5],
                *__restrict__ w6 = wts[6], *__restrict__ w7 = wts[7], *__restrict__ w8 = wts[8];
    for (int64_t c = 0; c < C; ++c) {
      float acc = 0.f;  // the same sum, in the same order, as the blocked path below
      acc += w0[c] * p0[c]; acc += w1[c] * p1[c]; acc += w2[c] * p2[c];
      acc += w3[c] * p3[c]; acc += w4[c] * p4[c]; acc += w5[c] * p5[c];
      acc += w6[c] * p6[c]; acc += w7[c] * p7[c]; acc += w8[c] * p8[c];
      out[c] = acc;
    }
    return;
  }
  constexpr int64_t kBlock = 32;
  for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
    const int64_t len = C - c0 < kBlock ? C - c0 : kBlock;
    float acc[kBlock];
    for (int64_t c = 0; c < len; ++c) acc[c] = 0.f;
    for (int t = 0; t < taps; ++t) {
      const float* __restrict__ p = src[t] + c0;
      const float* __restrict__ w = wts[t] + c0;
      for (int64_t c = 0; c < len; ++c) acc[c] += w[c] * p[c];
    }
    for (int64_t c = 0; c < len; ++c) out[c0 + c] = acc[c];
  }
}

// out[c] = lrelu((y[c] + noise) + bias[c]) for a run of pixels; y and out may be one array
IDP_PRIOR_CLONES void epilogue_pixel_run(const float* y, const float* bias, const float* noise,
                                         int64_t hw, int64_t p0, int64_t count, int64_t C, float* out) {
  for (int64_t p = p0; p < p0 + count; ++p) {
    const float nz = noise ? noise[p % hw] : 0.f;
    const float* yp = y + p * C;
    float* op = out + p * C;
    for (int64_t c = 0; c < C; ++c) op[c] = idp_prior_epilogue(yp[c], nz, bias[c]);
  }
}

// One output row of the modulated inverse Haar (idp_prior_haar_at, the same operations):
// in: the input row (w pixels of 4C bands), st: the sample's style (4C), sa: the row's sign
IDP_PRIOR_CLONES void haar_row(const float* __restrict__ in, const float* __restrict__ st,
                               int64_t w, int64_t C, float sa, float* __restrict__ out) {
  for (int64_t j = 0; j < w; ++j) {
    const float* p = in + j * 4 * C;
    float* o0 = out + 2 * j * C;  // ox = 2j (sb = +1); ox = 2j + 1 (sb = -1) follows
    for (int64_t c = 0; c < C; ++c) {
      float a, b;
      idp_prior_haar_sums(p, st, C, c, sa, &a, &b);
      o0[c] = (a + b) * 0.5f;          // sb = +1: (a + 1 * b) == (a + b)
      o0[C + c] = (a + -1.f * b) * 0.5f;
    }
  }
}

}  // namespace

void cpu_prior_dwconv3x3(const float* in, const float* wmod, const IdpPriorShape& s, float* out) {
  const int64_t rows = s.n * s.h, row_len = s.w * s.c;
#pragma omp parallel for schedule(static) if (rows * row_len > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r / s.h, y = r % s.h;
    const float* wn = wmod + n * 9 * s.c;
    for (int64_t x = 0; x < s.w; ++x) {
      // the valid taps of this pixel, in k = 3 dy + dx order (the accumulation order of prior.h)
      const float* src[9];
      const float* wts[9];
      int taps = 0;
      for (int dy = 0; dy < 3; ++dy) {
        const int64_t yy = y + dy - 1;
        if (yy < 0 || yy >= s.h) continue;
        for (int dx = 0; dx < 3; ++dx) {
          const int64_t xx = x + dx - 1;
          if (xx < 0 || xx >= s.w) continue;
          src[taps] = in + ((n * s.h + yy) * s.w + xx) * s.c;
          wts[taps++] = wn + (3 * dy + dx) * s.c;
        }
      }
      dw_pixel(src, wts, taps, s.c, out + (r * s.w + x) * s.c);
    }
  }
}

void cpu_prior_haar(const float* in, const float* style, const IdpPriorShape& s, float* out) {
  const int64_t out_h = 2 * s.h, out_w = 2 * s.w, rows = s.n * out_h;
#pragma omp parallel for schedule(static) if (rows * out_w * s.c > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r / out_h, oy = r % out_h;
    haar_row(in + (n * s.h + oy / 2) * s.w * 4 * s.c, style + n * 4 * s.c, s.w, s.c,
             (oy & 1) ? -1.f : 1.f, out + r * out_w * s.c);
  }
}

void cpu_prior_epilogue(const float* y, const float* bias, const float* noise, const IdpPriorShape& s,
                        float* out) {
  const int64_t pixels = s.n * s.h * s.w, run = 256;
  const int64_t runs = (pixels + run - 1) / run;
#pragma omp parallel for schedule(static) if (pixels * s.c > 32768)
  for (int64_t r = 0; r < runs; ++r) {
    const int64_t p0 = r * run;
    epilogue_pixel_run(y, bias, noise, s.h * s.w, p0, std::min(run, pixels - p0), s.c, out);
  }
}

}  // namespace idp
