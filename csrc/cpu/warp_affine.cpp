// Affine warp + bilinear + normalisation into NHWC float32 on the CPU: OpenMP over
// output rows. Arithmetic: kernels/common/warp_affine.h (float64, reference order).
// Reference: identitydp_fast/reference/warp_affine.py.
#include "common/warp_affine.h"
#include "geometry_ops.h"

namespace idp {

template <typename T>
static void warp_impl(const T* images, const double* matrices, const double* mean,
                      const IdpWarpShape& s, float* out) {
  const int64_t rows = s.n * s.out_h;
#pragma omp parallel for schedule(static) if (rows * s.out_w > 4096)
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t n = i / s.out_h, r = i % s.out_h;
    const T* img = images + n * s.in_h * s.in_w * s.c;
    for (int64_t c = 0; c < s.out_w; ++c)
      idp_warp_pixel(img, matrices + 6 * n, mean, s, r, c, out + (i * s.out_w + c) * s.c);
  }
}

void cpu_warp_affine(const void* images, const double* matrices, const double* mean,
                     const IdpWarpShape& s, float* out) {
  if (s.u8) warp_impl(static_cast<const uint8_t*>(images), matrices, mean, s, out);
  else warp_impl(static_cast<const float*>(images), matrices, mean, s, out);
}

}  // namespace idp
