// The AAD layer's fused ops on the CPU, NHWC float32, OpenMP. Arithmetic helpers:
// kernels/common/aad.h (shared with CUDA). Reference: identitydp_fast/reference/aad.py.
//
// instance norm: each sample's pixels are cut into fixed chunks (a function of the shape
// only, so the result does not depend on the thread count); per chunk and channel the
// sums of (x - k) and (x - k)^2 in double, k = the chunk's first value (idp_shifted_stats),
// then the chunks are merged in order with Chan's update in double, and a last pass
// writes (h - mean) * rstd in float. Memory traffic: 2 reads + 1 write.
// The per-chunk loops vectorise over channels (no reassociation), and are also built for
// AVX2 (GCC target_clones, picked at load time): same results on every CPU.
#include <algorithm>
#include <vector>

#include "aad_ops.h"

namespace idp {

namespace {

// Pixels per statistics chunk: about 8K floats (32 KiB) of one sample.
int64_t inorm_chunk_pixels(int64_t c) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(c, 1)); }

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define IDP_AAD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define IDP_AAD_CLONES
#endif

// x: (pixels, C) -> per channel: s1 = sum (x - k), s2 = sum (x - k)^2, k = x[0, ch]
IDP_AAD_CLONES void chunk_shifted_sums(const float* x, int64_t pixels, int64_t C, double* k,
                                       double* s1, double* s2) {
  for (int64_t ch = 0; ch < C; ++ch) { k[ch] = x[ch]; s1[ch] = 0.0; s2[ch] = 0.0; }
  for (int64_t p = 0; p < pixels; ++p) {
    const float* xp = x + p * C;
    for (int64_t ch = 0; ch < C; ++ch) {
      const double d = static_cast<double>(xp[ch]) - k[ch];
      s1[ch] += d;
      s2[ch] += d * d;
    }
  }
}

// x, out: (pixels, C)
IDP_AAD_CLONES void chunk_apply(const float* x, int64_t pixels, int64_t C, const float* mean,
                                const float* rstd, float* out) {
  for (int64_t p = 0; p < pixels; ++p) {
    const float* xp = x + p * C;
    float* o = out + p * C;
    for (int64_t ch = 0; ch < C; ++ch) o[ch] = idp_inorm_apply(xp[ch], mean[ch], rstd[ch]);
  }
}

}  // namespace

void cpu_instance_norm(const float* h, const IdpAadShape& s, float eps, float* out) {
  const int64_t hw = s.h * s.w, C = s.c;
  if (s.n * hw * C == 0) return;
  const int64_t chunk = inorm_chunk_pixels(C);
  const int64_t chunks = (hw + chunk - 1) / chunk;
  const int64_t tasks = s.n * chunks;
  // partial[(n * chunks + k) * 2C + {0, C} + c] = chunk mean, chunk M2 (float64)
  std::vector<double> partial(static_cast<size_t>(tasks * 2 * C));
  const bool par = s.n * hw * C > 32768;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t n = t / chunks, k = t % chunks;
    const int64_t p0 = k * chunk, p1 = std::min(hw, p0 + chunk);
    double* mean = partial.data() + t * 2 * C;
    double* m2 = mean + C;
    std::vector<double> shift(static_cast<size_t>(C)), s1(static_cast<size_t>(C));
    chunk_shifted_sums(h + (n * hw + p0) * C, p1 - p0, C, shift.data(), s1.data(), m2);
    for (int64_t ch = 0; ch < C; ++ch)
      idp_shifted_stats(static_cast<double>(p1 - p0), shift[ch], s1[ch], m2[ch], mean[ch], m2[ch]);
  }
  // merge the chunks in order: stats[n * 2C + {0, C} + c] = float mean, float rstd
  std::vector<float> stats(static_cast<size_t>(s.n * 2 * C));
  for (int64_t n = 0; n < s.n; ++n) {
    for (int64_t ch = 0; ch < C; ++ch) {
      double cnt = 0.0, mean = 0.0, m2 = 0.0;
      for (int64_t k = 0; k < chunks; ++k) {
        const double* pk = partial.data() + (n * chunks + k) * 2 * C;
        const int64_t p0 = k * chunk, p1 = std::min(hw, p0 + chunk);
        idp_chan_merge<double>(cnt, mean, m2, static_cast<double>(p1 - p0), pk[ch], pk[C + ch]);
      }
      stats[n * 2 * C + ch] = static_cast<float>(mean);
      stats[n * 2 * C + C + ch] = idp_inorm_rstd(cnt, m2, static_cast<double>(eps));
    }
  }
#pragma omp parallel for schedule(static) if (par)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t n = t / chunks, k = t % chunks;
    const int64_t p0 = k * chunk, p1 = std::min(hw, p0 + chunk);
    const float* mean = stats.data() + n * 2 * C;
    chunk_apply(h + (n * hw + p0) * C, p1 - p0, C, mean, mean + C, out + (n * hw + p0) * C);
  }
}

void cpu_aad_blend(const float* h, const float* ga, const float* ba, const float* gi,
                   const float* bi, const float* logits, const IdpAadShape& s, int relu,
                   float* out) {
  const int64_t rows = s.n * s.h, C = s.c;
#pragma omp parallel for schedule(static) if (rows * s.w * C > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r / s.h;
    const float* gin = gi + n * C;
    const float* bin = bi + n * C;
    for (int64_t x = 0; x < s.w; ++x) {
      const int64_t pix = r * s.w + x;          // (n, y, x)
      const float m = idp_sigmoidf(logits[pix]);  // one mask value per pixel
      const int64_t off = pix * C;
      const float *ph = h + off, *pga = ga + off, *pba = ba + off;
      float* o = out + off;
      if (relu) {
        for (int64_t ch = 0; ch < C; ++ch)
          o[ch] = idp_aad_blend(ph[ch], pga[ch], pba[ch], gin[ch], bin[ch], m, 1);
      } else {
        for (int64_t ch = 0; ch < C; ++ch)
          o[ch] = idp_aad_blend(ph[ch], pga[ch], pba[ch], gin[ch], bin[ch], m, 0);
      }
    }
  }
}

void cpu_upsample2x(const float* x, const float* residual, const IdpAadShape& s, float* out) {
  const int64_t oh = 2 * s.h, ow = 2 * s.w, C = s.c;
  const int64_t rows = s.n * oh;
#pragma omp parallel for schedule(static) if (rows * ow * C > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r / oh, oy = r % oh;
    const IdpUpTap ty = idp_up2x_tap(oy, s.h);
    const float* row0 = x + ((n * s.h + ty.i0) * s.w) * C;
    const float* row1 = x + ((n * s.h + ty.i1) * s.w) * C;
    for (int64_t ox = 0; ox < ow; ++ox) {
      const IdpUpTap tx = idp_up2x_tap(ox, s.w);
      const float *a = row0 + tx.i0 * C, *b = row0 + tx.i1 * C;
      const float *c = row1 + tx.i0 * C, *d = row1 + tx.i1 * C;
      float* o = out + (r * ow + ox) * C;
      if (residual != nullptr) {
        const float* y = residual + (r * ow + ox) * C;
        for (int64_t ch = 0; ch < C; ++ch) o[ch] = idp_up2x_mix(a[ch], b[ch], c[ch], d[ch], ty, tx) + y[ch];
      } else {
        for (int64_t ch = 0; ch < C; ++ch) o[ch] = idp_up2x_mix(a[ch], b[ch], c[ch], d[ch], ty, tx);
      }
    }
  }
}

}  // namespace idp
