// The prior engine's fused ops on the CPU, NHWC float32, OpenMP over output rows (n, y).
// Per element the same float32 operations in the same order as kernels/common/prior.h
// (used by CUDA), so cpu and cuda agree bit for bit; the loops are reordered so that the
// innermost one runs over contiguous channels and vectorises.
// Reference: identitydp_fast/reference/prior_ops.py.
#include <algorithm>

#include "common/prior.h"
#include "prior_ops.h"

namespace idp {

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
        for (int64_t x = x0; x < x1; ++x) {
          const float* p = src + (x + dx - 1) * s.c;
          float* q = o + x * s.c;
          for (int64_t c = 0; c < s.c; ++c) q[c] += wk[c] * p[c];
        }
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
  const int64_t pixels = s.n * s.h * s.w;
#pragma omp parallel for schedule(static) if (pixels * s.c > 32768)
  for (int64_t p = 0; p < pixels; ++p) {
    const float nz = noise ? noise[p % (s.h * s.w)] : 0.f;
    const float* yp = y + p * s.c;
    float* op = out + p * s.c;
    for (int64_t c = 0; c < s.c; ++c) op[c] = idp_prior_epilogue(yp[c], nz, bias[c]);
  }
}

}  // namespace idp
