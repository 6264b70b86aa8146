// Host launchers for the AAD-layer CUDA kernels (kernels/cuda/aad.cuh). The instance
// norm's chunk statistics live in a stream-ordered scratch buffer (cudaMallocAsync /
// cudaFreeAsync on the caller's stream; also legal inside CUDA-graph capture).
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "aad_ops.h"
#include "cuda/aad.cuh"

namespace idp {

namespace {

constexpr int kThreads = 256;

void check_launch(const char* op) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(op) + ": CUDA launch failed: " + cudaGetErrorString(err));
}

unsigned int blocks_for(long long total, const char* op) {
  const long long blocks = (total + kThreads - 1) / kThreads;
  if (blocks > 0x7fffffffLL) throw std::invalid_argument(std::string(op) + ": tensor too large");
  return static_cast<unsigned int>(blocks);
}

}  // namespace

void cuda_instance_norm(const float* h, const IdpAadShape& s, float eps, float* out,
                        void* cuda_stream) {
  const long long hw = s.h * s.w, total = s.n * hw * s.c;
  if (total == 0) return;
  cudaStream_t stream = static_cast<cudaStream_t>(cuda_stream);
  // channel tile TC: the power of two >= C, at most 32; TY = 256 / TC pixel lanes
  int tc = 1;
  while (tc < s.c && tc < 32) tc *= 2;
  const int ty = kThreads / tc;
  // each thread sees ~16 pixels per chunk; at most 1024 chunks per sample
  long long chunk = std::max<long long>(16LL * ty, (hw + 1023) / 1024);
  const long long chunks = (hw + chunk - 1) / chunk;
  const long long ctiles = (s.c + tc - 1) / tc;
  if (chunks > 0x7fffffffLL || ctiles > 65535 || s.n > 65535)
    throw std::invalid_argument("instance_norm: tensor too large for the CUDA grid (N and "
                                "ceil(C / 32) must be <= 65535)");
  const unsigned int fin_blocks = blocks_for(s.n * s.c, "instance_norm");
  const unsigned int app_blocks = blocks_for(total, "instance_norm");
  // scratch: partial (N, chunks, C, 3) float64, then stats (N, C, 2) float32
  const size_t partial_bytes = static_cast<size_t>(s.n * chunks * s.c * 3) * sizeof(double);
  const size_t stats_bytes = static_cast<size_t>(s.n * s.c * 2) * sizeof(float);
  void* scratch = nullptr;
  cudaError_t err = cudaMallocAsync(&scratch, partial_bytes + stats_bytes, stream);
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("instance_norm: cudaMallocAsync of the statistics "
                                         "scratch failed: ") + cudaGetErrorString(err));
  double* partial = static_cast<double*>(scratch);
  float* stats = reinterpret_cast<float*>(static_cast<char*>(scratch) + partial_bytes);
  idp_inorm_partial_kernel<<<dim3(static_cast<unsigned int>(chunks),
                                  static_cast<unsigned int>(ctiles),
                                  static_cast<unsigned int>(s.n)),
                             dim3(tc, ty), 0, stream>>>(h, s, chunk, chunks, partial);
  cudaError_t e1 = cudaGetLastError();
  if (e1 == cudaSuccess) {
    idp_inorm_finalize_kernel<<<fin_blocks, kThreads, 0, stream>>>(
        partial, s, chunks, static_cast<double>(eps), stats);
    e1 = cudaGetLastError();
  }
  if (e1 == cudaSuccess) {
    idp_inorm_apply_kernel<<<app_blocks, kThreads, 0, stream>>>(
        h, stats, s, out);
    e1 = cudaGetLastError();
  }
  cudaFreeAsync(scratch, stream);
  if (e1 != cudaSuccess)
    throw std::runtime_error(std::string("instance_norm: CUDA launch failed: ") +
                             cudaGetErrorString(e1));
}

void cuda_aad_blend(const float* h, const float* ga, const float* ba, const float* gi,
                    const float* bi, const float* logits, const IdpAadShape& s, int relu,
                    float* out, void* cuda_stream) {
  const long long total = s.n * s.h * s.w * s.c;
  if (total == 0) return;
  idp_aad_blend_kernel<<<blocks_for(total, "aad_blend_relu"), kThreads, 0,
                         static_cast<cudaStream_t>(cuda_stream)>>>(h, ga, ba, gi, bi, logits,
                                                                   s, relu, out);
  check_launch("aad_blend_relu");
}

void cuda_upsample2x(const float* x, const float* residual, const IdpAadShape& s, float* out,
                     void* cuda_stream) {
  const long long total = s.n * 4 * s.h * s.w * s.c;
  if (total == 0) return;
  idp_upsample2x_kernel<<<blocks_for(total, "upsample_bilinear2x"), kThreads, 0,
                          static_cast<cudaStream_t>(cuda_stream)>>>(x, residual, s, out);
  check_launch("upsample_bilinear2x");
}

}  // namespace idp
