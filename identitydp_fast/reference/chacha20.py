"""ChaCha20 keystream (RFC 8439), the plain-PyTorch oracle.

Block function: 16 little-endian uint32 words
``[c0..c3 | key0..key7 | counter | nonce0..nonce2]``, 20 rounds of quarter-rounds
(``a += b; d ^= a; d <<<= 16; c += d; b ^= c; b <<<= 12; a += b; d ^= a; d <<<= 8;
c += d; b ^= c; b <<<= 7``), then the initial state is added word-wise mod 2^32.
Block ``i`` of a stream starting at ``counter`` uses block counter ``counter + i``.

Words are held in int64 tensors masked to 32 bits, so the code is vectorised over any
number of blocks (each with its own counter and nonce) and runs on any torch device.
Kernels checked against this: kernels/common/chacha20.h (C++/CUDA),
kernels/triton/chacha20.py. Tests: tests/test_chacha20.py.
"""
from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
CONSTANTS = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)


def words_from_bytes(data: bytes) -> list[int]:
    """Little-endian uint32 words of ``data`` (length a multiple of 4)."""
    return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]


def _rotl(x: torch.Tensor, n: int) -> torch.Tensor:
    return ((x << n) & MASK32) | (x >> (32 - n))


def _quarter_round(s: list[torch.Tensor], a: int, b: int, c: int, d: int) -> None:
    s[a] = (s[a] + s[b]) & MASK32
    s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & MASK32
    s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & MASK32
    s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & MASK32
    s[b] = _rotl(s[b] ^ s[c], 7)


def chacha20_blocks(key_words: list[int], counters: torch.Tensor,
                    nonces: tuple[torch.Tensor | int, torch.Tensor | int, torch.Tensor | int]
                    ) -> torch.Tensor:
    """Keystream blocks as words.

    Args:
        key_words: 8 key words.
        counters: (B,) int64 block counters in [0, 2^32).
        nonces: three nonce words, each an int or a (B,) int64 tensor.
    Returns:
        (B, 16) int64 tensor of output words in [0, 2^32).
    """
    ref = torch.zeros_like(counters)
    init = [ref + c for c in CONSTANTS]
    init += [ref + k for k in key_words]
    init.append(counters & MASK32)
    init += [(ref + n) & MASK32 for n in nonces]
    s = list(init)
    for _ in range(10):
        _quarter_round(s, 0, 4, 8, 12)
        _quarter_round(s, 1, 5, 9, 13)
        _quarter_round(s, 2, 6, 10, 14)
        _quarter_round(s, 3, 7, 11, 15)
        _quarter_round(s, 0, 5, 10, 15)
        _quarter_round(s, 1, 6, 11, 12)
        _quarter_round(s, 2, 7, 8, 13)
        _quarter_round(s, 3, 4, 9, 14)
    return torch.stack([(x + y) & MASK32 for x, y in zip(s, init)], dim=1)


def keystream(key: bytes, nonce: bytes, counter: int, length: int) -> bytes:
    """``length`` keystream bytes from blocks counter, counter + 1, ... (RFC 8439 layout)."""
    n_blocks = -(-length // 64)
    counters = torch.arange(counter, counter + n_blocks, dtype=torch.int64)
    words = chacha20_blocks(words_from_bytes(key), counters, tuple(words_from_bytes(nonce)))
    data = words.to(torch.int64).numpy().astype("<u4").tobytes()
    return data[:length]
