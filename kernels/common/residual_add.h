// dlib's add_prev + relu with its zero-fill semantics, one output element, for host and
// device. Layout NHWC (channels-last), contiguous.
//
//   s   = pool ? avg_pool2x2(shortcut) : shortcut       (2x2 window, stride 2, unpadded, floor)
//   out = relu(zero_fill(main) + zero_fill(s))          shape = elementwise max of both shapes
// zero_fill pads with zeros at the trailing channels, bottom rows and right columns.
// The 2x2 average is ((a + b) + c + d) * 0.25 in row-major window order, like torch's
// avg_pool2d. Reference: identitydp_fast/reference/residual_add.py.
#pragma once
#include "idp_types.h"

struct IdpResidualShape {
  int64_t n, h, w, c;     // output
  int64_t mh, mw, mc;     // main
  int64_t sh, sw, sc;     // shortcut (before pooling)
  int pool;
};

IDP_HD float idp_residual_add_relu_at(const float* main, const float* shortcut,
                                      const IdpResidualShape& s, int64_t n, int64_t y,
                                      int64_t x, int64_t ch) {
  float m = 0.f;
  if (y < s.mh && x < s.mw && ch < s.mc) m = main[((n * s.mh + y) * s.mw + x) * s.mc + ch];
  float r = 0.f;
  if (ch < s.sc) {
    if (s.pool) {
      if (y < s.sh / 2 && x < s.sw / 2) {
        const float* p = shortcut + ((n * s.sh + 2 * y) * s.sw + 2 * x) * s.sc + ch;
        const int64_t row = s.sw * s.sc;
        r = (((p[0] + p[s.sc]) + p[row]) + p[row + s.sc]) * 0.25f;
      }
    } else if (y < s.sh && x < s.sw) {
      r = shortcut[((n * s.sh + y) * s.sw + x) * s.sc + ch];
    }
  }
  const float v = m + r;
  return v > 0.f ? v : 0.f;
}
