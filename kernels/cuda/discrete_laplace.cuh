// Discrete Laplace noise, CUDA device code: one thread per sample, each with its own
// ChaCha20 word stream. Sampler: kernels/common/discrete_laplace.h.
// Reference: identitydp_fast/reference/discrete_laplace.py. Launcher: csrc/cuda/launchers.cu.
#pragma once
#include "../common/discrete_laplace.h"
#include "chacha20.cuh"

// out: (n,) int64; table: (n_bits + 1, words_per_row) uint32.
extern "C" __global__ void idp_discrete_laplace_kernel(IdpKey key, unsigned long long stream,
                                                       uint32_t sample_offset,
                                                       const uint32_t* table, int n_bits,
                                                       int words_per_row, long long* out,
                                                       long long n) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  IdpWordStream s;
  idp_stream_init(&s, key.w, stream, sample_offset + (uint32_t)i);
  out[i] = idp_discrete_laplace(&s, table, n_bits, words_per_row);
}
