// The prior engine's fused ops, one output element each, for host (csrc/cpu/prior.cpp)
// and device (kernels/cuda/prior.cuh). Layout NHWC (channels-last), contiguous, float32.
// Same float32 operations in the same order as the reference,
// identitydp_fast/reference/prior_ops.py:
//
//   dwconv:  out[n,y,x,c] = sum_k wmod[n,k,c] * in[n,y+dy-1,x+dx-1,c], k = 3 dy + dx in order,
//            zero padding; wmod = weight[c,k] * style[n,c] (folded by the caller)
//   haar:    in (N,H,W,4C), style (N,4C) -> out (N,2H,2W,C); with v = in * style,
//            out[2i+a, 2j+b, c] = ((LL + sa B0) + sb (B1 + sa B2)) * 0.5, sa = a ? -1 : +1,
//            LL = v[c], Bj = v[C + 3c + j]
//   epilogue: out = lrelu_0.2((y + noise[y,x]) + bias[c])
#pragma once
#include "idp_types.h"

struct IdpPriorShape {
  int64_t n, h, w, c;  // dwconv / epilogue: in and out; haar: out channels c, in (n,h,w,4c)
};

IDP_HD float idp_prior_dwconv3x3_at(const float* in, const float* wmod, const IdpPriorShape& s,
                                    int64_t n, int64_t y, int64_t x, int64_t c) {
  float acc = 0.f;
  const float* wn = wmod + n * 9 * s.c + c;
  for (int dy = 0; dy < 3; ++dy) {
    const int64_t yy = y + dy - 1;
    if (yy < 0 || yy >= s.h) continue;
    for (int dx = 0; dx < 3; ++dx) {
      const int64_t xx = x + dx - 1;
      if (xx < 0 || xx >= s.w) continue;
      acc += wn[(3 * dy + dx) * s.c] * in[((n * s.h + yy) * s.w + xx) * s.c + c];
    }
  }
  return acc;
}

// The two row sums of the butterfly for channel c of one input pixel p (4C bands) and
// style st: *a = LL + sa B0, *b = B1 + sa B2 (v = p * st); the output is (a + sb b) / 2
IDP_HD void idp_prior_haar_sums(const float* p, const float* st, int64_t C, int64_t c, float sa,
                                float* a, float* b) {
  const int64_t hb = C + 3 * c;
  const float ll = p[c] * st[c];
  const float b0 = p[hb] * st[hb], b1 = p[hb + 1] * st[hb + 1], b2 = p[hb + 2] * st[hb + 2];
  *a = ll + sa * b0;
  *b = b1 + sa * b2;
}

// out (n, 2i+a, 2j+b, c) from in (n, i, j, 4c) and style (n, 4c)
IDP_HD float idp_prior_haar_at(const float* in, const float* style, const IdpPriorShape& s,
                               int64_t n, int64_t oy, int64_t ox, int64_t c) {
  const float sa = (oy & 1) ? -1.f : 1.f, sb = (ox & 1) ? -1.f : 1.f;
  const float* p = in + ((n * s.h + (oy >> 1)) * s.w + (ox >> 1)) * 4 * s.c;
  float a, b;
  idp_prior_haar_sums(p, style + n * 4 * s.c, s.c, c, sa, &a, &b);
  return (a + sb * b) * 0.5f;
}

// lrelu as max(v, 0.2 v): equal to (v > 0 ? v : 0.2 v) for every finite v (-0 included);
// the product is computed unconditionally so the CPU loop vectorises (GCC will not
// if-convert a conditional float multiply under -ftrapping-math)
IDP_HD float idp_prior_epilogue(float y, float noise, float bias) {
  const float v = (y + noise) + bias;
  const float scaled = v * 0.2f;
  return v > scaled ? v : scaled;
}
