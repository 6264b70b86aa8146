// Host launchers for the face-geometry CUDA kernels (kernels/cuda/warp_affine.cuh).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/warp_affine.cuh"
#include "geometry_ops.h"

namespace idp {

void cuda_warp_affine(const void* images, const double* matrices, const double* mean,
                      const IdpWarpShape& s, float* out, void* cuda_stream) {
  const long long total = s.n * s.out_h * s.out_w;
  if (total == 0) return;
  const int threads = 128;
  const long long blocks = (total + threads - 1) / threads;
  if (blocks > 0x7fffffffLL) throw std::invalid_argument("warp_affine: output too large");
  auto stream = static_cast<cudaStream_t>(cuda_stream);
  if (s.u8)
    idp_warp_affine_u8_kernel<<<static_cast<unsigned int>(blocks), threads, 0, stream>>>(
        static_cast<const uint8_t*>(images), matrices, mean, s, out);
  else
    idp_warp_affine_f32_kernel<<<static_cast<unsigned int>(blocks), threads, 0, stream>>>(
        static_cast<const float*>(images), matrices, mean, s, out);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("warp_affine: CUDA launch failed: ") +
                             cudaGetErrorString(err));
}

}  // namespace idp
