// Fused residual zero-fill add (+ optional 2x2 average-pooled shortcut) + ReLU on the
// CPU, NHWC: OpenMP over output rows (n, y). Arithmetic: kernels/common/residual_add.h.
// Reference: identitydp_fast/reference/residual_add.py.
#include "common/residual_add.h"
#include "resnet_ops.h"

namespace idp {

void cpu_residual_add_relu(const float* main, const float* shortcut, const IdpResidualShape& s,
                           float* out) {
  const int64_t rows = s.n * s.h;
#pragma omp parallel for schedule(static) if (rows * s.w * s.c > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r / s.h, y = r % s.h;
    float* o = out + r * s.w * s.c;
    for (int64_t x = 0; x < s.w; ++x)
      for (int64_t ch = 0; ch < s.c; ++ch)
        o[x * s.c + ch] = idp_residual_add_relu_at(main, shortcut, s, n, y, x, ch);
  }
}

}  // namespace idp
