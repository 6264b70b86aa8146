// Fused residual zero-fill add (+ optional 2x2 average-pooled shortcut) + ReLU on the
// CPU, NHWC. OpenMP over output rows (n, y); per pixel the channel loops are split at
// the operands' channel counts so they are branch-free and vectorise. Same float32
// operations in the same order as kernels/common/residual_add.h (used by CUDA):
// out = relu(m + r), r = (((a + b) + c) + d) * 0.25 when pooled.
// Reference: identitydp_fast/reference/residual_add.py.
#include <algorithm>

#include "common/residual_add.h"
#include "resnet_ops.h"

namespace idp {

void cpu_residual_add_relu(const float* main, const float* shortcut, const IdpResidualShape& s,
                           float* out) {
  const int64_t rows = s.n * s.h;
  const int64_t pooled_h = s.pool ? s.sh / 2 : s.sh;
  const int64_t pooled_w = s.pool ? s.sw / 2 : s.sw;
#pragma omp parallel for schedule(static) if (rows * s.w * s.c > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r / s.h, y = r % s.h;
    for (int64_t x = 0; x < s.w; ++x) {
      float* o = out + (r * s.w + x) * s.c;
      // main, zero-filled
      const bool has_m = y < s.mh && x < s.mw;
      const int64_t mc = has_m ? s.mc : 0;
      if (has_m) {
        const float* pm = main + ((n * s.mh + y) * s.mw + x) * s.mc;
        for (int64_t ch = 0; ch < mc; ++ch) o[ch] = pm[ch];
      }
      for (int64_t ch = mc; ch < s.c; ++ch) o[ch] = 0.f;
      // + shortcut (pooled), zero-filled
      if (y < pooled_h && x < pooled_w) {
        if (s.pool) {
          const float* a = shortcut + ((n * s.sh + 2 * y) * s.sw + 2 * x) * s.sc;
          const float* b = a + s.sc;
          const float* c = a + s.sw * s.sc;
          const float* d = c + s.sc;
          for (int64_t ch = 0; ch < s.sc; ++ch) o[ch] += (((a[ch] + b[ch]) + c[ch]) + d[ch]) * 0.25f;
        } else {
          const float* a = shortcut + ((n * s.sh + y) * s.sw + x) * s.sc;
          for (int64_t ch = 0; ch < s.sc; ++ch) o[ch] += a[ch];
        }
      }
      for (int64_t ch = 0; ch < s.c; ++ch) o[ch] = o[ch] > 0.f ? o[ch] : 0.f;
    }
  }
}

}  // namespace idp
