// Host launchers for the CUDA kernels in kernels/cuda/. Asynchronous on the caller's
// stream (torch's current stream); launch errors become C++ exceptions -> RuntimeError.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/chacha20.cuh"
#include "cuda/discrete_laplace.cuh"
#include "cuda/identity_dp.cuh"
#include "ops.h"

namespace idp {
namespace {

void check_launch(const char* what) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string(what) + ": CUDA launch failed: " +
                             cudaGetErrorString(err));
  }
}

IdpKey to_device_key(const Key& key) {
  IdpKey k;
  for (int i = 0; i < 8; ++i) k.w[i] = key.w[i];
  return k;
}

unsigned int grid_for(long long n, int threads) {
  const long long blocks = (n + threads - 1) / threads;
  if (blocks > 0x7fffffffLL) throw std::invalid_argument("too many elements for one launch");
  return static_cast<unsigned int>(blocks);
}

}  // namespace

void cuda_chacha20_keystream(const Key& key, const uint32_t nonce[3], uint32_t counter,
                             uint8_t* out, int64_t length, void* stream) {
  if (length == 0) return;
  IdpNonce n{{nonce[0], nonce[1], nonce[2]}};
  const int threads = 128;
  idp_chacha20_keystream_kernel<<<grid_for((length + 63) / 64, threads), threads, 0,
                                  static_cast<cudaStream_t>(stream)>>>(
      to_device_key(key), n, counter, out, length);
  check_launch("chacha20_keystream");
}

void cuda_discrete_laplace(const Key& key, uint64_t stream, uint32_t sample_offset,
                           NoiseTable table, int64_t* out, int64_t n, void* cuda_stream) {
  if (n == 0) return;
  const int threads = 128;
  idp_discrete_laplace_kernel<<<grid_for(n, threads), threads, 0,
                                static_cast<cudaStream_t>(cuda_stream)>>>(
      to_device_key(key), stream, sample_offset, table.data, table.n_bits, table.words_per_row,
      reinterpret_cast<long long*>(out), n);
  check_launch("discrete_laplace");
}

void cuda_identity_dp(const IdentityDPArgs& a, void* cuda_stream) {
  if (a.rows == 0) return;
  if (a.rows > 0x7fffffffLL) throw std::invalid_argument("identity_dp: too many rows");
  idp_identity_dp_kernel<<<static_cast<unsigned int>(a.rows), IDP_DP_THREADS, 0,
                           static_cast<cudaStream_t>(cuda_stream)>>>(
      a.x, a.center, a.rows, a.dim, to_device_key(a.key), a.stream, a.table.data,
      a.table.n_bits, a.table.words_per_row, a.log2_granularity, a.clip, a.output_norm, a.out,
      a.v);
  check_launch("identity_dp");
}

}  // namespace idp
