// Affine warp + bilinear sampling + normalisation + NHWC layout, one output pixel (all
// channels), for host and device. All arithmetic in float64 with explicit roundings in
// the reference's order (no FMA contraction), so every backend reproduces
// identitydp_fast/reference/warp_affine.py run in float64, then rounds once to float32:
//
//   x = (m00 c + m01 r) + m02,  y = (m10 c + m11 r) + m12       (non-finite -> -4; clamp to
//                                                                [-4, W+4] x [-4, H+4])
//   top = (1 - fx) I(y0, x0) + fx I(y0, x0+1);  bot = same at y0+1;  v = (1 - fy) top + fy bot
//   I = 0 outside the image;  v = floor(v) if truncate;  out = float32((v - mean_c) * scale)
#pragma once
#include "idp_types.h"

// Device passes use the explicitly rounded intrinsics (nvcc would contract a*b+c into an
// FMA); host passes rely on -ffp-contract=off.
#if defined(__CUDA_ARCH__)
#define IDP_DMUL(a, b) __dmul_rn((a), (b))
#define IDP_DADD(a, b) __dadd_rn((a), (b))
#define IDP_DSUB(a, b) __dsub_rn((a), (b))
#define IDP_FLOOR(a) floor(a)
#define IDP_ISFINITE(a) isfinite(a)
#else
#if !defined(__CUDACC_RTC__)
#include <cmath>
#endif
#define IDP_DMUL(a, b) ((a) * (b))
#define IDP_DADD(a, b) ((a) + (b))
#define IDP_DSUB(a, b) ((a) - (b))
#define IDP_FLOOR(a) std::floor(a)
#define IDP_ISFINITE(a) std::isfinite(a)
#endif

struct IdpWarpShape {
  int64_t n, in_h, in_w, c, out_h, out_w;
  double scale;
  int truncate;
  int u8;  // 1: images are uint8, 0: float32
};

template <typename T>
IDP_HD double idp_warp_tap(const T* img, const IdpWarpShape& s, int64_t yi, int64_t xi, int64_t ch) {
  if (xi < 0 || xi >= s.in_w || yi < 0 || yi >= s.in_h) return 0.0;
  return (double)img[(yi * s.in_w + xi) * s.c + ch];
}

// img: this image's (H, W, C) pixels; m: its 6 matrix entries; mean: C doubles;
// out: this output pixel's C floats.
template <typename T>
IDP_HD void idp_warp_pixel(const T* img, const double* m, const double* mean, const IdpWarpShape& s,
                           int64_t r, int64_t c, float* out) {
  const double cd = (double)c, rd = (double)r;
  double x = IDP_DADD(IDP_DADD(IDP_DMUL(m[0], cd), IDP_DMUL(m[1], rd)), m[2]);
  double y = IDP_DADD(IDP_DADD(IDP_DMUL(m[3], cd), IDP_DMUL(m[4], rd)), m[5]);
  if (!(IDP_ISFINITE(x) && IDP_ISFINITE(y))) { x = -4.0; y = -4.0; }
  x = x < -4.0 ? -4.0 : (x > (double)s.in_w + 4.0 ? (double)s.in_w + 4.0 : x);
  y = y < -4.0 ? -4.0 : (y > (double)s.in_h + 4.0 ? (double)s.in_h + 4.0 : y);
  const double x0f = IDP_FLOOR(x), y0f = IDP_FLOOR(y);
  const double fx = IDP_DSUB(x, x0f), fy = IDP_DSUB(y, y0f);
  const double gx = IDP_DSUB(1.0, fx), gy = IDP_DSUB(1.0, fy);
  const int64_t x0 = (int64_t)x0f, y0 = (int64_t)y0f;
  for (int64_t ch = 0; ch < s.c; ++ch) {
    const double top = IDP_DADD(IDP_DMUL(gx, idp_warp_tap(img, s, y0, x0, ch)),
                                IDP_DMUL(fx, idp_warp_tap(img, s, y0, x0 + 1, ch)));
    const double bot = IDP_DADD(IDP_DMUL(gx, idp_warp_tap(img, s, y0 + 1, x0, ch)),
                                IDP_DMUL(fx, idp_warp_tap(img, s, y0 + 1, x0 + 1, ch)));
    double v = IDP_DADD(IDP_DMUL(gy, top), IDP_DMUL(fy, bot));
    if (s.truncate) v = IDP_FLOOR(v);
    out[ch] = (float)IDP_DMUL(IDP_DSUB(v, mean[ch]), s.scale);
  }
}
