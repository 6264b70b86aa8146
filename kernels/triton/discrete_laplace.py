"""Discrete Laplace sampler on per-sample ChaCha20 word streams, in Triton.

Math: K ~ DLap(p), P(K = k) = (1 - p) / (1 + p) p^|k|, p = exp(-g / b) (parameters and
guarantee in identitydp_fast/privacy/accounting.py). |K| = 0 with probability (1 - p) / (1 + p),
else 1 + G, where the n_bits binary digits of G are independent
Bernoulli(p^(2^j) / (1 + p^(2^j))). Each Bernoulli(T / 2^(32 W)) compares uniform
32-bit keystream words with the W threshold words (most significant first) and stops at
the first word that differs: U < T gives 1, U > T gives 0, all W equal gives 0.

Stream layout (identical on every backend): sample i reads words w = 0, 1, 2, ... of
ChaCha20(key, nonce = (stream_lo, stream_hi, i mod 2^32), counter = w >> 4), word w & 15.
Word 0: sign (low bit); then the zero test (table row 0); then bit j (row j + 1).

Triton mapping: one lane per sample. Each lane keeps its word position ``pos`` and the
16 words of its current keystream block in registers (``cached`` = block index held).
Only lanes still undecided consume a word; a new block is generated (for the lanes that
need it) only when some lane's position crosses into a block it does not hold. In the
common case every lane consumes exactly one word per Bernoulli, so lanes stay in
lockstep and a block is computed once per 16 words.

Same algorithm as kernels/common/discrete_laplace.h; oracle:
identitydp_fast/reference/discrete_laplace.py.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import triton
import triton.language as tl

from .chacha20 import (chacha20_block, interpreter_block, key_words, load_u32,
                       tune_malloc_for_interpreter, words_to_int32)

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
#: samples (lanes) per program on a GPU; under the interpreter see interpreter_block.
SAMPLE_BLOCK = 128

# Layout of the small int32 parameter buffer shared by the kernels.
PARAM_KEY = 0          # 8 key words
PARAM_STREAM_LO = 8    # nonce word 0
PARAM_STREAM_HI = 9    # nonce word 1
PARAM_SAMPLE_OFFSET = 10  # first sample index mod 2^32 (discrete_laplace only)
N_PARAMS = 11


def stream_params(key: bytes, stream: int, sample_offset: int, device) -> torch.Tensor:
    """(N_PARAMS,) int32 tensor: key words, stream lo/hi, sample offset (uint32 bits)."""
    if not 0 <= stream < 2**64:
        raise ValueError(f"stream must be in [0, 2^64), got {stream}")
    words = key_words(key) + [stream & 0xFFFFFFFF, (stream >> 32) & 0xFFFFFFFF,
                              sample_offset & 0xFFFFFFFF]
    return words_to_int32(words, device)


def table_tensor(table, n_bits: int, words_per_row: int, device) -> torch.Tensor:
    """The (n_bits + 1, words_per_row) uint32 threshold table as a flat int32 tensor."""
    if isinstance(table, torch.Tensor):
        t = table.detach().to("cpu")
        if t.dtype in (torch.int32, torch.uint32):
            arr = t.view(torch.int32).numpy().view(np.uint32)
        else:
            arr = t.to(torch.int64).numpy().astype(np.uint32)
    else:
        arr = np.asarray(table).astype(np.uint32)
    if arr.shape != (n_bits + 1, words_per_row):
        raise ValueError(f"table has shape {arr.shape}, expected "
                         f"{(n_bits + 1, words_per_row)}")
    flat = np.ascontiguousarray(arr).reshape(-1).view(np.int32)
    return torch.from_numpy(flat.copy()).to(device)


@triton.jit
def next_word(active, pos, cached, params_ptr, sample,
              b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15):
    """Next word of every active lane's stream (inactive lanes do not advance).

    active: (BLOCK,) int1. pos, cached: (BLOCK,) int32 (next word index, block held or
    -1). sample: (BLOCK,) uint32 nonce word 2. b0..b15: (BLOCK,) uint32 block words.
    Returns (word, pos, cached, b0..b15); word is uint32 (meaningless where inactive).
    """
    block = pos >> 4
    stale = active & (block != cached)
    if tl.max(stale.to(tl.int32)) > 0:  # any lane needs a new block
        # Key words 0..7 and stream lo/hi (uint32 bits of the int32 params buffer).
        k0 = tl.load(params_ptr + 0).to(tl.uint32, bitcast=True)
        k1 = tl.load(params_ptr + 1).to(tl.uint32, bitcast=True)
        k2 = tl.load(params_ptr + 2).to(tl.uint32, bitcast=True)
        k3 = tl.load(params_ptr + 3).to(tl.uint32, bitcast=True)
        k4 = tl.load(params_ptr + 4).to(tl.uint32, bitcast=True)
        k5 = tl.load(params_ptr + 5).to(tl.uint32, bitcast=True)
        k6 = tl.load(params_ptr + 6).to(tl.uint32, bitcast=True)
        k7 = tl.load(params_ptr + 7).to(tl.uint32, bitcast=True)
        n0 = tl.load(params_ptr + 8).to(tl.uint32, bitcast=True)
        n1 = tl.load(params_ptr + 9).to(tl.uint32, bitcast=True)
        f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15 = chacha20_block(
            k0, k1, k2, k3, k4, k5, k6, k7, block.to(tl.uint32), n0, n1, sample)
        b0 = tl.where(stale, f0, b0)
        b1 = tl.where(stale, f1, b1)
        b2 = tl.where(stale, f2, b2)
        b3 = tl.where(stale, f3, b3)
        b4 = tl.where(stale, f4, b4)
        b5 = tl.where(stale, f5, b5)
        b6 = tl.where(stale, f6, b6)
        b7 = tl.where(stale, f7, b7)
        b8 = tl.where(stale, f8, b8)
        b9 = tl.where(stale, f9, b9)
        b10 = tl.where(stale, f10, b10)
        b11 = tl.where(stale, f11, b11)
        b12 = tl.where(stale, f12, b12)
        b13 = tl.where(stale, f13, b13)
        b14 = tl.where(stale, f14, b14)
        b15 = tl.where(stale, f15, b15)
        cached = tl.where(stale, block, cached)
    # word = b[pos & 15], as a 4-level where-tree on the bits of pos & 15.
    s = (pos & 1) != 0
    c0 = tl.where(s, b1, b0)
    c1 = tl.where(s, b3, b2)
    c2 = tl.where(s, b5, b4)
    c3 = tl.where(s, b7, b6)
    c4 = tl.where(s, b9, b8)
    c5 = tl.where(s, b11, b10)
    c6 = tl.where(s, b13, b12)
    c7 = tl.where(s, b15, b14)
    s = (pos & 2) != 0
    d0 = tl.where(s, c1, c0)
    d1 = tl.where(s, c3, c2)
    d2 = tl.where(s, c5, c4)
    d3 = tl.where(s, c7, c6)
    s = (pos & 4) != 0
    e0 = tl.where(s, d1, d0)
    e1 = tl.where(s, d3, d2)
    word = tl.where((pos & 8) != 0, e1, e0)
    pos = pos + active.to(tl.int32)
    return word, pos, cached, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, \
        b14, b15


@triton.jit
def bernoulli(row_ptr, words_per_row, active, pos, cached, params_ptr, sample,
              b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15):
    """Bernoulli(T / 2^(32 W)) per active lane, T = the W uint32 words at row_ptr.

    Lexicographic compare of fresh words against T, most significant first, with early
    exit: a lane consumes words only while all its words so far equal T's.
    Returns (bit (BLOCK,) int32, pos, cached, b0..b15).
    """
    result = tl.zeros_like(pos)
    undecided = active
    for t in range(words_per_row):
        if tl.max(undecided.to(tl.int32)) > 0:  # any lane undecided
            thr = tl.load(row_ptr + t).to(tl.uint32, bitcast=True)
            u, pos, cached, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, \
                b15 = next_word(undecided, pos, cached, params_ptr, sample, b0, b1, b2, b3,
                                b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15)
            result = tl.where(undecided & (u < thr), 1, result)
            undecided = undecided & (u == thr)
    return result, pos, cached, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, \
        b14, b15


@triton.jit
def discrete_laplace_lanes(params_ptr, table_ptr, sample, active, n_bits, words_per_row):
    """K for each lane's sample index (the sampler of discrete_laplace.h).

    params_ptr: int32 buffer, key words at 0..7, stream lo/hi at 8, 9.
    table_ptr: (n_bits + 1) * words_per_row int32 (uint32 bits), row-major.
    sample: (BLOCK,) uint32 sample index (nonce word 2). active: (BLOCK,) int1, lanes to
    sample (others return garbage and consume nothing).
    Returns (BLOCK,) int64.
    """
    pos = tl.zeros_like(sample).to(tl.int32)
    cached = pos - 1
    z = tl.zeros_like(sample)
    b0, b1, b2, b3, b4, b5, b6, b7 = z, z, z, z, z, z, z, z
    b8, b9, b10, b11, b12, b13, b14, b15 = z, z, z, z, z, z, z, z
    # Word 0: the sign.
    w, pos, cached, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15 = \
        next_word(active, pos, cached, params_ptr, sample, b0, b1, b2, b3, b4, b5, b6, b7,
                  b8, b9, b10, b11, b12, b13, b14, b15)
    negative = (w & 1) != 0
    # Zero test: table row 0.
    is_zero, pos, cached, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, \
        b15 = bernoulli(table_ptr, words_per_row, active, pos, cached, params_ptr, sample,
                        b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15)
    # Bits of the geometric part: bit j from table row j + 1.
    g = tl.zeros_like(sample).to(tl.int64)
    for j in range(n_bits):
        bit, pos, cached, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, \
            b15 = bernoulli(table_ptr + (j + 1) * words_per_row, words_per_row, active, pos,
                            cached, params_ptr, sample, b0, b1, b2, b3, b4, b5, b6, b7, b8,
                            b9, b10, b11, b12, b13, b14, b15)
        g = g | (bit.to(tl.int64) << j)
    magnitude = tl.where(is_zero != 0, 0, g + 1)
    return tl.where(negative, -magnitude, magnitude)


@triton.jit
def _discrete_laplace_kernel(params_ptr, table_ptr, out_ptr, n, n_bits, words_per_row,
                             BLOCK: tl.constexpr):
    # params_ptr: (N_PARAMS,) int32; table_ptr: ((n_bits + 1) * words_per_row,) int32;
    # out_ptr: (n,) int64, K for sample indices sample_offset + 0 .. n - 1.
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # (BLOCK,)
    mask = idx < n
    sample = load_u32(params_ptr + 10) + idx.to(tl.uint32)  # wraps mod 2^32
    k = discrete_laplace_lanes(params_ptr, table_ptr, sample, mask, n_bits, words_per_row)
    tl.store(out_ptr + idx, k, mask=mask)


def discrete_laplace(key: bytes, stream: int, n: int, table, n_bits: int,
                     words_per_row: int, device, sample_offset: int = 0) -> torch.Tensor:
    """K for sample indices sample_offset .. sample_offset + n - 1, (n,) int64 on device.

    table: the (n_bits + 1, words_per_row) uint32 table of LaplaceParams (numpy array or
    tensor). Bit-exact with identitydp_fast.reference.discrete_laplace.discrete_laplace.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    device = torch.device(device)
    out = torch.empty(n, dtype=torch.int64, device=device)
    if n == 0:
        return out
    params = stream_params(key, stream, sample_offset, device)
    table_t = table_tensor(table, n_bits, words_per_row, device)
    block = SAMPLE_BLOCK
    if _INTERPRET:
        tune_malloc_for_interpreter()
        block = interpreter_block(n)
    grid = (triton.cdiv(n, block),)
    _discrete_laplace_kernel[grid](params, table_t, out, n, n_bits, words_per_row,
                                   BLOCK=block)
    return out
