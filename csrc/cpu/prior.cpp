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

// q[x, c] += w[c] * p[x, c] for x in [0, count): one tap over a run of pixels
IDP_PRIOR_CLONES void tap_row(const float* __restrict__ p, const float* __restrict__ w,
                              float* __restrict__ q, int64_t count, int64_t C) {
  for (int64_t x = 0; x < count; ++x)
    for (int64_t c = 0; c < C; ++c) q[x * C + c] += w[c] * p[x * C + c];
}

// out[c] = lrelu((y[c] + noise) + bias[c]) for a run of pixels; y and out may be one array
IDP_PRIOR_CLONES void epilogue_pixel_run(const float* y, const float* bias, const float* noise,
                                         int64_t hw, int64_t p0, int64_t count, int64_t C, float* out) {
  for (int64_t p = p0; p < p0 + count; ++p) {
    const float nz = noise ? noise[p % hw] : 0.f;
    const float* yp = y + p * C;
    float* op = out + p * C;
    for (int64_t c = 0; c < C; ++c) {
      const float v = (yp[c] + nz) + bias[c];
      op[c] = v > 0.f ? v : v * 0.2f;  // = idp_prior_epilogue, spelled out for the vectoriser
    }
  }
}

}  // namespace

void cpu_prior_dwconv3x3(const float* in, const float* wmod, const IdpPriorShape& s, float* out) {
  const int64_t rows = s.n * s.h, row_len = s.w * s.c;
#pragma omp parallel for schedule(static) if (rows * row_len > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r / s.h, y = r % s.h;
    float* o = out + r * row_len;
    std::fill(o, o + row_len, 0.f);
    const float* wn = wmod + n * 9 * s.c;
    // taps in k = 3 dy + dx order: each element accumulates in the order of prior.h
    for (int dy = 0; dy < 3; ++dy) {
      const int64_t yy = y + dy - 1;
      if (yy < 0 || yy >= s.h) continue;
      const float* src = in + (n * s.h + yy) * row_len;
      for (int dx = 0; dx < 3; ++dx) {
        const float* wk = wn + (3 * dy + dx) * s.c;
        const int64_t x0 = dx == 0 ? 1 : 0, x1 = dx == 2 ? s.w - 1 : s.w;  // valid xx = x + dx - 1
        if (x1 > x0) tap_row(src + (x0 + dx - 1) * s.c, wk, o + x0 * s.c, x1 - x0, s.c);
      }
    }
  }
}

void cpu_prior_haar(const float* in, const float* style, const IdpPriorShape& s, float* out) {
  const int64_t out_h = 2 * s.h, out_w = 2 * s.w, rows = s.n * out_h;
#pragma omp parallel for schedule(static) if (rows * out_w * s.c > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r / out_h, oy = r % out_h;
    float* o = out + r * out_w * s.c;
    for (int64_t ox = 0; ox < out_w; ++ox)
      for (int64_t c = 0; c < s.c; ++c) o[ox * s.c + c] = idp_prior_haar_at(in, style, s, n, oy, ox, c);
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
