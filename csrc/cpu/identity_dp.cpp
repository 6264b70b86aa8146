// The fused epsilon-IdentityDP op on the CPU: one row per OpenMP iteration, all stages
// in one pass over the row (normalise, centre, L1 clip, snap, noise, renormalise).
// Math and order of operations: identitydp_fast/reference/identity_dp.py.
#include <cmath>

#include "common/discrete_laplace.h"
#include "ops.h"

namespace idp {

void cpu_identity_dp(const IdentityDPArgs& a) {
  const double inv_g = std::ldexp(1.0, -a.log2_granularity);
  const double g = std::ldexp(1.0, a.log2_granularity);
#pragma omp parallel for schedule(static) if (a.rows > 8)
  for (int64_t row = 0; row < a.rows; ++row) {
    const float* x = a.x + row * a.dim;
    float* out = a.out + row * a.dim;
    float* v = a.v + row * a.dim;
    // The row reductions sum float32 terms in float64: the clip's bound ||r||_1 <= C must
    // survive the summation error (a float32 sum errs by up to (d - 1) 2^-24, above the
    // 2^-16 clip slack once d >~ 256). Why and the bound: reference/identity_dp.py.
    double sq = 0.0;
    for (int64_t c = 0; c < a.dim; ++c) sq += static_cast<double>(x[c]) * x[c];
    const float norm = static_cast<float>(std::sqrt(sq));
    // r (kept in `out` as scratch), and its L1 norm
    double l1 = 0.0;
    for (int64_t c = 0; c < a.dim; ++c) {
      const float u = norm > 0.f ? x[c] / norm : 0.f;
      const float r = u - (a.center ? a.center[c] : 0.f);
      out[c] = r;
      l1 += std::fabs(static_cast<double>(r));
    }
    const bool clip = l1 > static_cast<double>(a.clip);
    const double clip_scale = clip ? static_cast<double>(a.clip) / l1 : 1.0;
    double ysq = 0.0;
    for (int64_t c = 0; c < a.dim; ++c) {
      const float r = clip ? static_cast<float>(static_cast<double>(out[c]) * clip_scale) : out[c];
      const int64_t n = static_cast<int64_t>(std::floor(static_cast<double>(r) * inv_g + 0.5));
      IdpWordStream s;
      idp_stream_init(&s, a.key.w, a.stream, static_cast<uint32_t>(row * a.dim + c));
      const int64_t k = idp_discrete_laplace(&s, a.table.data, a.table.n_bits,
                                             a.table.words_per_row);
      const float vc = static_cast<float>(static_cast<double>(n + k) * g);
      v[c] = vc;
      const float y = (a.center ? a.center[c] : 0.f) + vc;
      out[c] = y;
      ysq += static_cast<double>(y) * y;
    }
    const float ny = static_cast<float>(std::sqrt(ysq));
    const float scale = ny > 0.f ? a.output_norm / ny : 0.f;
    for (int64_t c = 0; c < a.dim; ++c) out[c] = ny > 0.f ? out[c] * scale : 0.f;
  }
}

}  // namespace idp
