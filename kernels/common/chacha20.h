// ChaCha20 block function, RFC 8439 section 2.3, for host and device.
//
// State (16 x uint32, little-endian words):
//   0..3   constants "expand 32-byte k"
//   4..11  key   (32 bytes, 8 LE words)
//   12     block counter (32 bit)
//   13..15 nonce (12 bytes, 3 LE words)
// out = state after 20 rounds (10 double rounds) + initial state, word-wise mod 2^32.
// The keystream bytes of the block are the 16 output words serialised little-endian.
// Reference: identitydp_fast/reference/chacha20.py. Test: tests/test_chacha20.py.
#pragma once
#include "idp_types.h"

IDP_HD uint32_t idp_rotl32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

#define IDP_CHACHA_QR(a, b, c, d)            \
  a += b; d ^= a; d = idp_rotl32(d, 16);     \
  c += d; b ^= c; b = idp_rotl32(b, 12);     \
  a += b; d ^= a; d = idp_rotl32(d, 8);      \
  c += d; b ^= c; b = idp_rotl32(b, 7);

// key: 8 words, nonce: 3 words, out: 16 words.
IDP_HD void idp_chacha20_block(const uint32_t* key, uint32_t counter, const uint32_t* nonce,
                               uint32_t* out) {
  uint32_t x0 = 0x61707865u, x1 = 0x3320646eu, x2 = 0x79622d32u, x3 = 0x6b206574u;
  uint32_t x4 = key[0], x5 = key[1], x6 = key[2], x7 = key[3];
  uint32_t x8 = key[4], x9 = key[5], x10 = key[6], x11 = key[7];
  uint32_t x12 = counter, x13 = nonce[0], x14 = nonce[1], x15 = nonce[2];
  for (int i = 0; i < 10; ++i) {
    IDP_CHACHA_QR(x0, x4, x8, x12)
    IDP_CHACHA_QR(x1, x5, x9, x13)
    IDP_CHACHA_QR(x2, x6, x10, x14)
    IDP_CHACHA_QR(x3, x7, x11, x15)
    IDP_CHACHA_QR(x0, x5, x10, x15)
    IDP_CHACHA_QR(x1, x6, x11, x12)
    IDP_CHACHA_QR(x2, x7, x8, x13)
    IDP_CHACHA_QR(x3, x4, x9, x14)
  }
  out[0] = x0 + 0x61707865u;  out[1] = x1 + 0x3320646eu;
  out[2] = x2 + 0x79622d32u;  out[3] = x3 + 0x6b206574u;
  out[4] = x4 + key[0];       out[5] = x5 + key[1];
  out[6] = x6 + key[2];       out[7] = x7 + key[3];
  out[8] = x8 + key[4];       out[9] = x9 + key[5];
  out[10] = x10 + key[6];     out[11] = x11 + key[7];
  out[12] = x12 + counter;    out[13] = x13 + nonce[0];
  out[14] = x14 + nonce[1];   out[15] = x15 + nonce[2];
}

#undef IDP_CHACHA_QR
