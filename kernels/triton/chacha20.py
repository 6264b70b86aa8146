"""ChaCha20 keystream (RFC 8439) in Triton, one 64-byte block per lane.

Block function on 16 uint32 words ``[c0..c3 | key0..key7 | counter | nonce0..nonce2]``:
10 double rounds of quarter-rounds
``a += b; d ^= a; d <<<= 16; c += d; b ^= c; b <<<= 12; a += b; d ^= a; d <<<= 8;
c += d; b ^= c; b <<<= 7`` (column rounds then diagonal rounds), then the initial
state is added word-wise mod 2^32. Keystream bytes are the 16 output words,
little-endian; block ``i`` of a stream starting at ``counter`` uses counter + i (mod 2^32).

All arithmetic is on tl.uint32 tensors: additions wrap natively and right shifts are
logical, so rotl(x, n) = (x << n) | (x >> (32 - n)).

Same maths as kernels/common/chacha20.h; oracle: identitydp_fast/reference/chacha20.py.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

# ChaCha constants "expand 32-byte k" (all < 2^31, so plain int literals are safe).
_C0 = 0x61707865
_C1 = 0x3320646E
_C2 = 0x79622D32
_C3 = 0x6B206574

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
#: blocks per program: large under the interpreter (each op is one numpy call).
KEYSTREAM_BLOCK = 4096 if _INTERPRET else 128


def key_words(key: bytes) -> list[int]:
    """The 8 little-endian uint32 words of a 32-byte key."""
    if len(key) != 32:
        raise ValueError(f"ChaCha20 key must be 32 bytes, got {len(key)}")
    return [int.from_bytes(key[i:i + 4], "little") for i in range(0, 32, 4)]


def words_to_int32(words: list[int], device) -> torch.Tensor:
    """uint32 words (Python ints) as an int32 tensor with the same bits."""
    signed = [w - (1 << 32) if w >= (1 << 31) else w for w in words]
    return torch.tensor(signed, dtype=torch.int32, device=device)


@triton.jit
def _rotl(x, n: tl.constexpr):
    return (x << n) | (x >> (32 - n))


@triton.jit
def _quarter_round(a, b, c, d):
    a = a + b
    d = _rotl(d ^ a, 16)
    c = c + d
    b = _rotl(b ^ c, 12)
    a = a + b
    d = _rotl(d ^ a, 8)
    c = c + d
    b = _rotl(b ^ c, 7)
    return a, b, c, d


@triton.jit
def chacha20_block(k0, k1, k2, k3, k4, k5, k6, k7, counter, n0, n1, n2):
    """One ChaCha20 block per lane.

    k0..k7, n0, n1: uint32 scalars or tensors; counter, n2: uint32 tensors of the lane
    shape (BLOCK,). Returns the 16 output words, uint32 tensors of that shape.
    """
    zero = tl.zeros_like(counter)  # (BLOCK,) uint32: broadcasts scalars to lanes
    i0 = zero + _C0
    i1 = zero + _C1
    i2 = zero + _C2
    i3 = zero + _C3
    i4 = zero + k0
    i5 = zero + k1
    i6 = zero + k2
    i7 = zero + k3
    i8 = zero + k4
    i9 = zero + k5
    i10 = zero + k6
    i11 = zero + k7
    i12 = zero + counter
    i13 = zero + n0
    i14 = zero + n1
    i15 = zero + n2
    x0, x1, x2, x3, x4, x5, x6, x7 = i0, i1, i2, i3, i4, i5, i6, i7
    x8, x9, x10, x11, x12, x13, x14, x15 = i8, i9, i10, i11, i12, i13, i14, i15
    for _ in range(10):
        x0, x4, x8, x12 = _quarter_round(x0, x4, x8, x12)
        x1, x5, x9, x13 = _quarter_round(x1, x5, x9, x13)
        x2, x6, x10, x14 = _quarter_round(x2, x6, x10, x14)
        x3, x7, x11, x15 = _quarter_round(x3, x7, x11, x15)
        x0, x5, x10, x15 = _quarter_round(x0, x5, x10, x15)
        x1, x6, x11, x12 = _quarter_round(x1, x6, x11, x12)
        x2, x7, x8, x13 = _quarter_round(x2, x7, x8, x13)
        x3, x4, x9, x14 = _quarter_round(x3, x4, x9, x14)
    return (x0 + i0, x1 + i1, x2 + i2, x3 + i3, x4 + i4, x5 + i5, x6 + i6, x7 + i7,
            x8 + i8, x9 + i9, x10 + i10, x11 + i11, x12 + i12, x13 + i13, x14 + i14,
            x15 + i15)


@triton.jit
def load_u32(ptr):
    """Scalar uint32 from an int32 buffer (same bits)."""
    return tl.load(ptr).to(tl.uint32, bitcast=True)


@triton.jit
def _keystream_kernel(params_ptr, out_ptr, n_blocks, BLOCK: tl.constexpr):
    # params_ptr: (12,) int32 = key0..7, counter, nonce0..2 (uint32 bits).
    # out_ptr: (n_blocks * 16,) int32, the keystream words of blocks counter + 0 ..
    lane = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # (BLOCK,) block index
    mask = lane < n_blocks
    counter = load_u32(params_ptr + 8) + lane.to(tl.uint32)  # wraps mod 2^32
    w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12, w13, w14, w15 = chacha20_block(
        load_u32(params_ptr + 0), load_u32(params_ptr + 1), load_u32(params_ptr + 2),
        load_u32(params_ptr + 3), load_u32(params_ptr + 4), load_u32(params_ptr + 5),
        load_u32(params_ptr + 6), load_u32(params_ptr + 7), counter,
        load_u32(params_ptr + 9), load_u32(params_ptr + 10),
        tl.zeros_like(counter) + load_u32(params_ptr + 11))
    base = out_ptr + lane.to(tl.int64) * 16
    tl.store(base + 0, w0.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 1, w1.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 2, w2.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 3, w3.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 4, w4.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 5, w5.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 6, w6.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 7, w7.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 8, w8.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 9, w9.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 10, w10.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 11, w11.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 12, w12.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 13, w13.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 14, w14.to(tl.int32, bitcast=True), mask=mask)
    tl.store(base + 15, w15.to(tl.int32, bitcast=True), mask=mask)


def chacha20_keystream(key: bytes, nonce: bytes, counter: int, length: int,
                       device) -> torch.Tensor:
    """``length`` keystream bytes (uint8 tensor on ``device``), RFC 8439 layout.

    Blocks counter, counter + 1, ... (the 32-bit counter wraps); matches
    identitydp_fast.reference.chacha20.keystream.
    """
    if len(nonce) != 12:
        raise ValueError(f"ChaCha20 nonce must be 12 bytes, got {len(nonce)}")
    if not 0 <= counter < 2**32:
        raise ValueError(f"counter must be in [0, 2^32), got {counter}")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    device = torch.device(device)
    n_blocks = -(-length // 64)
    if n_blocks == 0:
        return torch.empty(0, dtype=torch.uint8, device=device)
    nonce_words = [int.from_bytes(nonce[i:i + 4], "little") for i in range(0, 12, 4)]
    params = words_to_int32(key_words(key) + [counter] + nonce_words, device)
    out = torch.empty(n_blocks * 16, dtype=torch.int32, device=device)
    grid = (triton.cdiv(n_blocks, KEYSTREAM_BLOCK),)
    _keystream_kernel[grid](params, out, n_blocks, BLOCK=KEYSTREAM_BLOCK)
    # int32 words -> bytes; every supported device (CPU, CUDA) is little-endian.
    return out.view(torch.uint8)[:length]
