// The AAD layer's arithmetic (FaceShifter's adaptive attentional denormalisation), for
// host and device. Layout NHWC (channels-last), contiguous. Reference:
// identitydp_fast/reference/aad.py.
//
//   instance norm    out = (h - mean) * rstd,  rstd = 1 / sqrt(var + eps)      per (n, c)
//                    mean, var (biased) over (H, W) in float64: per-chunk statistics
//                    (count, mean, M2) from a two-pass or shifted sum, merged with Chan
//                    et al.'s pairwise update (no E[x^2] - E[x]^2 cancellation); mean and
//                    rstd are then rounded to float32 and the pass is float32
//   blend + relu     m = 1 / (1 + exp(-logit));  a = ga h + ba;  i = gi h + bi;
//                    out = relu((1 - m) a + m i)
//   bilinear x2      align_corners=False (half-pixel centres, torch's F.interpolate):
//                    out(o) = l0 in(i0) + l1 in(i1) per axis, see idp_up2x_tap;
//                    v = ly0 (lx0 a + lx1 b) + ly1 (lx0 c + lx1 d)  (+ residual)
#pragma once
#include "idp_types.h"

#if defined(__CUDA_ARCH__)
#define IDP_AAD_EXPF(a) expf(a)
#define IDP_AAD_SQRT(a) sqrt(a)
#else
#if !defined(__CUDACC_RTC__)
#include <cmath>
#endif
#define IDP_AAD_EXPF(a) std::exp(a)
#define IDP_AAD_SQRT(a) std::sqrt(a)
#endif

struct IdpAadShape {
  int64_t n, h, w, c;  // NHWC of the (input) activation
};

// ---- instance norm: statistics ------------------------------------------------------

// (count, mean, M2) of values from their sums shifted by one of them, k:
// s1 = sum (x - k), s2 = sum (x - k)^2 (float64 of float32 data: the shift removes the
// cancellation of |mean| >> std, and 53 bits leave ~29 bits of margin).
IDP_HD void idp_shifted_stats(double count, double k, double s1, double s2, double& mean,
                              double& m2) {
  mean = count > 0.0 ? k + s1 / count : 0.0;
  m2 = count > 0.0 ? s2 - s1 * (s1 / count) : 0.0;
  if (m2 < 0.0) m2 = 0.0;
}

// Chan et al.'s merge of (count_b, mean_b, m2_b) into (count_a, mean_a, m2_a).
template <typename T>
IDP_HD void idp_chan_merge(T& count_a, T& mean_a, T& m2_a, T count_b, T mean_b, T m2_b) {
  if (count_b == T(0)) return;
  if (count_a == T(0)) {
    count_a = count_b; mean_a = mean_b; m2_a = m2_b;
    return;
  }
  const T count = count_a + count_b;
  const T delta = mean_b - mean_a;
  const T fb = count_b / count;
  mean_a = mean_a + delta * fb;
  m2_a = m2_a + m2_b + delta * delta * count_a * fb;
  count_a = count;
}

// float32(1 / sqrt(var + eps)), var = m2 / count (biased), in float64.
IDP_HD float idp_inorm_rstd(double count, double m2, double eps) {
  return static_cast<float>(1.0 / IDP_AAD_SQRT(m2 / count + eps));
}

IDP_HD float idp_inorm_apply(float x, float mean, float rstd) { return (x - mean) * rstd; }

// ---- blend + relu ---------------------------------------------------------------------

IDP_HD float idp_sigmoidf(float x) { return 1.f / (1.f + IDP_AAD_EXPF(-x)); }

// m = sigmoid(mask logit), already evaluated; relu keeps NaN (like torch.relu).
IDP_HD float idp_aad_blend(float h, float ga, float ba, float gi, float bi, float m, int relu) {
  const float a = ga * h + ba;
  const float i = gi * h + bi;
  const float v = (1.f - m) * a + m * i;
  return (relu && v < 0.f) ? 0.f : v;
}

// ---- bilinear x2, align_corners=False -------------------------------------------------

// Taps of output coordinate o along an axis of input size n:
// src = max(0, (o + 0.5) / 2 - 0.5), i0 = floor(src), i1 = min(i0 + 1, n - 1),
// l1 = src - i0, l0 = 1 - l1. For o = 2k: (k-1, k, 0.25, 0.75), and (0, 0|1, 1, 0) at k = 0;
// for o = 2k+1: (k, min(k+1, n-1), 0.75, 0.25). All weights are exact in float.
struct IdpUpTap {
  int64_t i0, i1;
  float l0, l1;
};

IDP_HD IdpUpTap idp_up2x_tap(int64_t o, int64_t n) {
  IdpUpTap t;
  const int64_t k = o >> 1;
  if (o & 1) {
    t.i0 = k; t.l0 = 0.75f; t.l1 = 0.25f;
  } else if (k == 0) {
    t.i0 = 0; t.l0 = 1.f; t.l1 = 0.f;
  } else {
    t.i0 = k - 1; t.l0 = 0.25f; t.l1 = 0.75f;
  }
  t.i1 = t.i0 < n - 1 ? t.i0 + 1 : t.i0;
  return t;
}

// a = in(y0, x0), b = in(y0, x1), c = in(y1, x0), d = in(y1, x1): torch's order.
IDP_HD float idp_up2x_mix(float a, float b, float c, float d, const IdpUpTap& ty,
                          const IdpUpTap& tx) {
  return ty.l0 * (tx.l0 * a + tx.l1 * b) + ty.l1 * (tx.l0 * c + tx.l1 * d);
}
