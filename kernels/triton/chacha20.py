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

import ctypes
import os
import sys

import torch
import triton
import triton.language as tl

# ChaCha constants "expand 32-byte k" (all < 2^31). Globals read inside @triton.jit code
# must be tl.constexpr on a real GPU (the interpreter does not check this).
_C0 = tl.constexpr(0x61707865)
_C1 = tl.constexpr(0x3320646E)
_C2 = tl.constexpr(0x79622D32)
_C3 = tl.constexpr(0x6B206574)

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
#: lanes per program under the interpreter: every Triton op is one numpy call with
#: ~50 us of fixed overhead, so programs must be wide.
INTERPRET_LANES = 1 << 18
#: blocks per program on a GPU.
KEYSTREAM_BLOCK = 128


def interpreter_block(n: int, cap: int = INTERPRET_LANES) -> int:
    """Lanes per program under the interpreter: next power of two >= n, at most cap."""
    return max(16, min(cap, triton.next_power_of_2(max(int(n), 1))))


_malloc_tuned = False


def tune_malloc_for_interpreter() -> None:
    """Under TRITON_INTERPRET=1 on glibc: stop malloc from returning memory to the OS.

    The interpreter allocates and frees megabyte numpy temporaries for every op; with
    glibc's default (dynamic) mmap/trim thresholds the heap is shrunk and regrown
    continuously and page faults triple the run time (measured: 10^6 samples 12 s -> 3.5
    s). Raising both thresholds keeps the heap at its peak size (a few hundred MB).
    No effect on GPU runs (never called there) or on other C libraries.
    """
    global _malloc_tuned
    if _malloc_tuned or not _INTERPRET or not sys.platform.startswith("linux"):
        return
    _malloc_tuned = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 << 20)
        libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):
        pass


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
def chacha20_block(k0, k1, k2, k3, k4, k5, k6, k7, counter, n0, n1, n2):
    """One ChaCha20 block per lane.

    The quarter-rounds QR(a, b, c, d) are written out inline: under the interpreter every
    call of a @triton.jit helper costs ~0.5 ms (it re-patches triton.language), which
    would dominate. Each QR is the four lines
    ``a += b; d ^= a; d <<<= 16 / c += d; b ^= c; b <<<= 12 / ... 8 / ... 7``.

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
    for _ in range(10):  # 10 double rounds
        # Column rounds.
        x0 = x0 + x4; x12 = x12 ^ x0; x12 = (x12 << 16) | (x12 >> 16)
        x8 = x8 + x12; x4 = x4 ^ x8; x4 = (x4 << 12) | (x4 >> 20)
        x0 = x0 + x4; x12 = x12 ^ x0; x12 = (x12 << 8) | (x12 >> 24)
        x8 = x8 + x12; x4 = x4 ^ x8; x4 = (x4 << 7) | (x4 >> 25)
        x1 = x1 + x5; x13 = x13 ^ x1; x13 = (x13 << 16) | (x13 >> 16)
        x9 = x9 + x13; x5 = x5 ^ x9; x5 = (x5 << 12) | (x5 >> 20)
        x1 = x1 + x5; x13 = x13 ^ x1; x13 = (x13 << 8) | (x13 >> 24)
        x9 = x9 + x13; x5 = x5 ^ x9; x5 = (x5 << 7) | (x5 >> 25)
        x2 = x2 + x6; x14 = x14 ^ x2; x14 = (x14 << 16) | (x14 >> 16)
        x10 = x10 + x14; x6 = x6 ^ x10; x6 = (x6 << 12) | (x6 >> 20)
        x2 = x2 + x6; x14 = x14 ^ x2; x14 = (x14 << 8) | (x14 >> 24)
        x10 = x10 + x14; x6 = x6 ^ x10; x6 = (x6 << 7) | (x6 >> 25)
        x3 = x3 + x7; x15 = x15 ^ x3; x15 = (x15 << 16) | (x15 >> 16)
        x11 = x11 + x15; x7 = x7 ^ x11; x7 = (x7 << 12) | (x7 >> 20)
        x3 = x3 + x7; x15 = x15 ^ x3; x15 = (x15 << 8) | (x15 >> 24)
        x11 = x11 + x15; x7 = x7 ^ x11; x7 = (x7 << 7) | (x7 >> 25)
        # Diagonal rounds.
        x0 = x0 + x5; x15 = x15 ^ x0; x15 = (x15 << 16) | (x15 >> 16)
        x10 = x10 + x15; x5 = x5 ^ x10; x5 = (x5 << 12) | (x5 >> 20)
        x0 = x0 + x5; x15 = x15 ^ x0; x15 = (x15 << 8) | (x15 >> 24)
        x10 = x10 + x15; x5 = x5 ^ x10; x5 = (x5 << 7) | (x5 >> 25)
        x1 = x1 + x6; x12 = x12 ^ x1; x12 = (x12 << 16) | (x12 >> 16)
        x11 = x11 + x12; x6 = x6 ^ x11; x6 = (x6 << 12) | (x6 >> 20)
        x1 = x1 + x6; x12 = x12 ^ x1; x12 = (x12 << 8) | (x12 >> 24)
        x11 = x11 + x12; x6 = x6 ^ x11; x6 = (x6 << 7) | (x6 >> 25)
        x2 = x2 + x7; x13 = x13 ^ x2; x13 = (x13 << 16) | (x13 >> 16)
        x8 = x8 + x13; x7 = x7 ^ x8; x7 = (x7 << 12) | (x7 >> 20)
        x2 = x2 + x7; x13 = x13 ^ x2; x13 = (x13 << 8) | (x13 >> 24)
        x8 = x8 + x13; x7 = x7 ^ x8; x7 = (x7 << 7) | (x7 >> 25)
        x3 = x3 + x4; x14 = x14 ^ x3; x14 = (x14 << 16) | (x14 >> 16)
        x9 = x9 + x14; x4 = x4 ^ x9; x4 = (x4 << 12) | (x4 >> 20)
        x3 = x3 + x4; x14 = x14 ^ x3; x14 = (x14 << 8) | (x14 >> 24)
        x9 = x9 + x14; x4 = x4 ^ x9; x4 = (x4 << 7) | (x4 >> 25)
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
    block = KEYSTREAM_BLOCK
    if _INTERPRET:
        tune_malloc_for_interpreter()
        block = interpreter_block(n_blocks, cap=1 << 16)
    grid = (triton.cdiv(n_blocks, block),)
    _keystream_kernel[grid](params, out, n_blocks, BLOCK=block)
    # int32 words -> bytes; every supported device (CPU, CUDA) is little-endian.
    return out.view(torch.uint8)[:length]
