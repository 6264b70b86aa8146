// Discrete Laplace noise on the CPU: one independent word stream per sample, OpenMP
// over samples. Sampler: kernels/common/discrete_laplace.h.
// Reference: identitydp_fast/reference/discrete_laplace.py.
#include "common/discrete_laplace.h"
#include "ops.h"

namespace idp {

void cpu_discrete_laplace(const Key& key, uint64_t stream, uint32_t sample_offset,
                          NoiseTable table, int64_t* out, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 256)
  for (int64_t i = 0; i < n; ++i) {
    IdpWordStream s;
    idp_stream_init(&s, key.w, stream, sample_offset + static_cast<uint32_t>(i));
    out[i] = idp_discrete_laplace(&s, table.data, table.n_bits, table.words_per_row);
  }
}

}  // namespace idp
