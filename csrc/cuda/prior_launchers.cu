// Host launchers for the prior engine's CUDA kernels (kernels/cuda/prior.cuh).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/prior.cuh"
#include "prior_ops.h"

namespace idp {

namespace {

unsigned int grid_for(long long total, int threads, const char* op) {
  const long long blocks = (total + threads - 1) / threads;
  if (blocks > 0x7fffffffLL) throw std::invalid_argument(std::string(op) + ": tensor too large");
  return static_cast<unsigned int>(blocks);
}

void check_launch(const char* op) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(op) + ": CUDA launch failed: " + cudaGetErrorString(err));
}

}  // namespace

void cuda_prior_dwconv3x3(const float* in, const float* wmod, const IdpPriorShape& s, float* out,
                          void* cuda_stream) {
  const long long total = s.n * s.h * s.w * s.c;
  if (total == 0) return;
  idp_prior_dwconv3x3_kernel<<<grid_for(total, 256, "prior_dwconv3x3"), 256, 0,
                               static_cast<cudaStream_t>(cuda_stream)>>>(in, wmod, s, out);
  check_launch("prior_dwconv3x3");
}

void cuda_prior_haar(const float* in, const float* style, const IdpPriorShape& s, float* out,
                     void* cuda_stream) {
  const long long total = s.n * 4 * s.h * s.w * s.c;
  if (total == 0) return;
  idp_prior_haar_kernel<<<grid_for(total, 256, "prior_haar"), 256, 0,
                          static_cast<cudaStream_t>(cuda_stream)>>>(in, style, s, out);
  check_launch("prior_haar");
}

void cuda_prior_epilogue(const float* y, const float* bias, const float* noise, const IdpPriorShape& s,
                         float* out, void* cuda_stream) {
  const long long total = s.n * s.h * s.w * s.c;
  if (total == 0) return;
  idp_prior_epilogue_kernel<<<grid_for(total, 256, "prior_epilogue"), 256, 0,
                              static_cast<cudaStream_t>(cuda_stream)>>>(y, bias, noise, s, out);
  check_launch("prior_epilogue");
}

}  // namespace idp
