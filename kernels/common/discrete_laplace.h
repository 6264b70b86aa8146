// Integer-only discrete Laplace sampler on keystream words, for host and device.
//
// Math (see identitydp_fast/privacy/accounting.py for the parameters and the guarantee):
//   K ~ DLap(p), P(K = k) = (1 - p) / (1 + p) * p^|k|, p = exp(-g / b).
//   |K| = 0 with probability theta_z = (1 - p) / (1 + p), else 1 + G with
//   G ~ Geometric(p) truncated to n_bits bits. The bits of a geometric variable are
//   independent: P(bit_j = 1) = p^(2^j) / (1 + p^(2^j)).
//   Each Bernoulli(theta) compares uniform keystream words, most significant first,
//   against theta's binary expansion (words_per_row words): it stops at the first
//   word that differs, so it costs ~1 word and reproduces theta exactly up to
//   2^(-32 * words_per_row).
//
// Stream layout: sample i draws its words from ChaCha20(key, nonce = (stream_lo,
// stream_hi, i), counter = 0, 1, 2, ...), word w at block w / 16, word w % 16. Distinct
// samples use distinct nonces and each sample's counter only increases, so no
// (key, nonce, counter) block is used twice in a call.
// Word order per sample: 1 word for the sign (low bit), then the zero test (table row
// 0), then bits j = 0 .. n_bits-1 (table rows 1 .. n_bits), each Bernoulli consuming
// 1..words_per_row words.
// Reference: identitydp_fast/reference/discrete_laplace.py.
#pragma once
#include "chacha20.h"

struct IdpWordStream {
  const uint32_t* key;  // 8 words
  uint32_t nonce[3];
  uint32_t pos;         // next word index in this sample's stream
  uint32_t cached;      // block index held in buf, 0xffffffff = none
  uint32_t buf[16];
};

IDP_HD void idp_stream_init(IdpWordStream* s, const uint32_t* key, uint64_t stream,
                            uint32_t sample) {
  s->key = key;
  s->nonce[0] = (uint32_t)(stream & 0xffffffffu);
  s->nonce[1] = (uint32_t)(stream >> 32);
  s->nonce[2] = sample;
  s->pos = 0;
  s->cached = 0xffffffffu;
}

IDP_HD uint32_t idp_next_word(IdpWordStream* s) {
  uint32_t block = s->pos >> 4;
  if (block != s->cached) {
    idp_chacha20_block(s->key, block, s->nonce, s->buf);
    s->cached = block;
  }
  uint32_t w = s->buf[s->pos & 15u];
  s->pos += 1;
  return w;
}

// Bernoulli(T / 2^(32*words)), T given as `words` uint32, most significant first.
IDP_HD int idp_bernoulli(IdpWordStream* s, const uint32_t* threshold, int words) {
  for (int t = 0; t < words; ++t) {
    uint32_t u = idp_next_word(s);
    if (u < threshold[t]) return 1;
    if (u > threshold[t]) return 0;
  }
  return 0;  // equal to the truncated threshold: U >= T
}

// table: (n_bits + 1) rows of words_per_row uint32 (row-major).
IDP_HD int64_t idp_discrete_laplace(IdpWordStream* s, const uint32_t* table, int n_bits,
                                    int words_per_row) {
  uint32_t negative = idp_next_word(s) & 1u;
  int is_zero = idp_bernoulli(s, table, words_per_row);
  int64_t g = 0;
  for (int j = 0; j < n_bits; ++j) {
    int bit = idp_bernoulli(s, table + (j + 1) * words_per_row, words_per_row);
    g |= ((int64_t)bit) << j;
  }
  int64_t magnitude = is_zero ? 0 : 1 + g;
  return negative ? -magnitude : magnitude;
}
