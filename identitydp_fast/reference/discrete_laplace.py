"""Discrete Laplace sampler on per-sample ChaCha20 streams, the plain-PyTorch oracle.

Math: K ~ DLap(p), P(K = k) = (1 - p)/(1 + p) p^|k|, p = exp(-g/b) (parameters and
guarantee in :mod:`identitydp_fast.privacy.accounting`). |K| = 0 with probability
(1 - p)/(1 + p), else 1 + G where the n_bits binary digits of G are independent
Bernoulli(p^(2^j) / (1 + p^(2^j))). Each Bernoulli compares uniform 32-bit keystream
words with its threshold's words, most significant first, and stops at the first
difference.

Stream layout (identical on every backend): sample i reads words w = 0, 1, 2, ... of
ChaCha20(key, nonce = (stream_lo, stream_hi, i), counter = w // 16), word w % 16.
Word 0: sign (low bit); then the zero test (table row 0); then bit j (row j + 1).

Kernels checked against this: kernels/common/discrete_laplace.h (C++ and CUDA),
kernels/triton/discrete_laplace.py. Tests: tests/test_discrete_laplace.py.
"""
from __future__ import annotations

import numpy as np
import torch

from .chacha20 import chacha20_blocks, words_from_bytes


class WordStreams:
    """Independent per-sample keystream word streams, read in lockstep where possible."""

    def __init__(self, key: bytes, stream: int, samples: torch.Tensor):
        self.key_words = words_from_bytes(key)
        self.nonce0 = stream & 0xFFFFFFFF
        self.nonce1 = (stream >> 32) & 0xFFFFFFFF
        self.samples = samples.to(torch.int64)
        n = samples.numel()
        self.pos = torch.zeros(n, dtype=torch.int64, device=samples.device)
        self.cached = torch.full((n,), -1, dtype=torch.int64, device=samples.device)
        self.buf = torch.zeros((n, 16), dtype=torch.int64, device=samples.device)

    def _refill(self, idx: torch.Tensor) -> None:
        block = self.pos[idx] >> 4
        stale = block != self.cached[idx]
        if bool(stale.any()):
            sel = idx[stale]
            self.buf[sel] = chacha20_blocks(self.key_words, block[stale],
                                            (self.nonce0, self.nonce1, self.samples[sel]))
            self.cached[sel] = block[stale]

    def next(self, active: torch.Tensor) -> torch.Tensor:
        """Next word of every active stream (inactive entries are 0 and do not advance)."""
        idx = active.nonzero().squeeze(1)
        out = torch.zeros_like(self.pos)
        if idx.numel() == 0:
            return out
        self._refill(idx)
        out[idx] = self.buf[idx, self.pos[idx] & 15]
        self.pos[idx] += 1
        return out


def bernoulli(streams: WordStreams, threshold: list[int], active: torch.Tensor) -> torch.Tensor:
    """1 where U < T (U uniform words, T = ``threshold`` words, most significant first)."""
    result = torch.zeros_like(active, dtype=torch.int64)
    undecided = active.clone()
    for t_word in threshold:
        if not bool(undecided.any()):
            break
        u = streams.next(undecided)
        lt = undecided & (u < t_word)
        gt = undecided & (u > t_word)
        result[lt] = 1
        undecided &= ~(lt | gt)
    return result


def discrete_laplace(key: bytes, stream: int, samples: torch.Tensor, table: np.ndarray,
                     n_bits: int) -> torch.Tensor:
    """K for each sample index in ``samples`` ((n,) int64), as an (n,) int64 tensor."""
    streams = WordStreams(key, stream, samples)
    rows = [[int(w) for w in row] for row in np.asarray(table)]
    everyone = torch.ones_like(samples, dtype=torch.bool)
    negative = streams.next(everyone) & 1
    is_zero = bernoulli(streams, rows[0], everyone)
    g = torch.zeros_like(samples, dtype=torch.int64)
    for j in range(n_bits):
        g |= bernoulli(streams, rows[j + 1], everyone) << j
    magnitude = torch.where(is_zero.bool(), torch.zeros_like(g), g + 1)
    return torch.where(negative.bool(), -magnitude, magnitude)
