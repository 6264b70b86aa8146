// Raw-pointer entry points of the noise engine, one per op and backend. Callers
// (csrc/module.cpp) have already checked shapes, dtypes, strides and devices.
#pragma once
#include <cstdint>

namespace idp {

struct Key {
  uint32_t w[8];  // 32-byte ChaCha20 key as little-endian words
};

// Threshold table of the discrete Laplace sampler (identitydp_fast/privacy/accounting.py):
// (n_bits + 1) rows of words_per_row uint32, on the op's device.
struct NoiseTable {
  const uint32_t* data;
  int n_bits;
  int words_per_row;
};

struct IdentityDPArgs {
  const float* x;       // (rows, dim)
  const float* center;  // (dim,) or nullptr
  int64_t rows;
  int64_t dim;
  Key key;
  uint64_t stream;
  NoiseTable table;
  int log2_granularity;
  float clip;
  float output_norm;
  float* out;  // (rows, dim)
  float* v;    // (rows, dim) released noisy residual
};

// CPU (csrc/cpu/*.cpp, OpenMP)
void cpu_chacha20_keystream(const Key& key, const uint32_t nonce[3], uint32_t counter,
                            uint8_t* out, int64_t length);
void cpu_discrete_laplace(const Key& key, uint64_t stream, uint32_t sample_offset,
                          NoiseTable table, int64_t* out, int64_t n);
void cpu_identity_dp(const IdentityDPArgs& a);

#ifdef IDP_WITH_CUDA
// CUDA (csrc/cuda/launchers.cu; device code in kernels/cuda/*.cuh). `stream` is a
// cudaStream_t; the calls are asynchronous on it and throw on launch errors.
void cuda_chacha20_keystream(const Key& key, const uint32_t nonce[3], uint32_t counter,
                             uint8_t* out, int64_t length, void* stream);
void cuda_discrete_laplace(const Key& key, uint64_t stream, uint32_t sample_offset,
                           NoiseTable table, int64_t* out, int64_t n, void* cuda_stream);
void cuda_identity_dp(const IdentityDPArgs& a, void* cuda_stream);
#endif

}  // namespace idp
