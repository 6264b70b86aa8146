// Portable scalar types and qualifiers shared by the C++ CPU kernels, the CUDA
// kernels compiled by nvcc, and the same CUDA sources compiled at run time by
// NVRTC (which has no host headers). Keep this file free of host-only includes.
#pragma once

#if defined(__CUDACC_RTC__)
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef long long int64_t;
typedef unsigned char uint8_t;
#else
#include <stdint.h>
#endif

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define IDP_HD __host__ __device__ __forceinline__
#else
#define IDP_HD inline
#endif
