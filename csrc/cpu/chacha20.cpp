// ChaCha20 keystream on the CPU: OpenMP over 64-byte blocks.
// Block function: kernels/common/chacha20.h. Reference: identitydp_fast/reference/chacha20.py.
#include <cstring>

#include "common/chacha20.h"
#include "ops.h"

namespace idp {

void cpu_chacha20_keystream(const Key& key, const uint32_t nonce[3], uint32_t counter,
                            uint8_t* out, int64_t length) {
  const int64_t n_blocks = (length + 63) / 64;
#pragma omp parallel for schedule(static) if (n_blocks > 64)
  for (int64_t b = 0; b < n_blocks; ++b) {
    uint32_t words[16];
    idp_chacha20_block(key.w, counter + static_cast<uint32_t>(b), nonce, words);
    uint8_t bytes[64];
    for (int i = 0; i < 16; ++i) {  // little-endian serialisation, independent of the host
      bytes[4 * i + 0] = static_cast<uint8_t>(words[i]);
      bytes[4 * i + 1] = static_cast<uint8_t>(words[i] >> 8);
      bytes[4 * i + 2] = static_cast<uint8_t>(words[i] >> 16);
      bytes[4 * i + 3] = static_cast<uint8_t>(words[i] >> 24);
    }
    const int64_t begin = b * 64;
    const int64_t count = (length - begin) < 64 ? (length - begin) : 64;
    std::memcpy(out + begin, bytes, static_cast<size_t>(count));
  }
}

}  // namespace idp
