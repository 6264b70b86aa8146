// ChaCha20 keystream, CUDA device code (NVRTC-friendly: no host headers).
// One thread per 64-byte block. Block function: kernels/common/chacha20.h.
// Reference: identitydp_fast/reference/chacha20.py. Launcher: csrc/cuda/launchers.cu.
#pragma once
#include "../common/chacha20.h"

struct IdpKey {
  uint32_t w[8];
};
struct IdpNonce {
  uint32_t w[3];
};

// out: (length,) uint8 keystream bytes; block b covers bytes [64 b, 64 b + 64).
extern "C" __global__ void idp_chacha20_keystream_kernel(IdpKey key, IdpNonce nonce,
                                                         uint32_t counter, uint8_t* out,
                                                         long long length) {
  const long long b = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long n_blocks = (length + 63) / 64;
  if (b >= n_blocks) return;
  uint32_t words[16];
  idp_chacha20_block(key.w, counter + (uint32_t)b, nonce.w, words);
  const long long begin = b * 64;
  const long long count = (length - begin) < 64 ? (length - begin) : 64;
  if (count == 64 && ((unsigned long long)(out + begin) & 15ull) == 0) {
    uint4* dst = reinterpret_cast<uint4*>(out + begin);  // little-endian device
    for (int i = 0; i < 4; ++i)
      dst[i] = make_uint4(words[4 * i], words[4 * i + 1], words[4 * i + 2], words[4 * i + 3]);
  } else {
    for (long long i = 0; i < count; ++i) out[begin + i] = (uint8_t)(words[i >> 2] >> (8 * (i & 3)));
  }
}
