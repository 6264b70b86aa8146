// Host launchers for the identity-encoder CUDA kernels (kernels/cuda/residual_add.cuh).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/residual_add.cuh"
#include "resnet_ops.h"

namespace idp {

void cuda_residual_add_relu(const float* main, const float* shortcut, const IdpResidualShape& s,
                            float* out, void* cuda_stream) {
  const long long total = s.n * s.h * s.w * s.c;
  if (total == 0) return;
  const int threads = 256;
  const long long blocks = (total + threads - 1) / threads;
  if (blocks > 0x7fffffffLL) throw std::invalid_argument("residual_add_relu: tensor too large");
  idp_residual_add_relu_kernel<<<static_cast<unsigned int>(blocks), threads, 0,
                                 static_cast<cudaStream_t>(cuda_stream)>>>(main, shortcut, s, out);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("residual_add_relu: CUDA launch failed: ") +
                             cudaGetErrorString(err));
}

}  // namespace idp
