"""The prior engine's fused ops in Triton, NHWC: one lane per output element, consecutive
lanes consecutive channels (coalesced). Storage float32, float16 or bfloat16; the
arithmetic is float32 in the order of kernels/common/prior.h, rounded once on store.

    dwconv3x3: out[n,y,x,c] = sum_k wmod[n,k,c] x[n,y+dy-1,x+dx-1,c]    (k = 3 dy + dx, zero pad)
    haar:      out[n,2i+a,2j+b,c] = ((LL + sa B0) + sb (B1 + sa B2)) / 2 of v = x * style
    epilogue:  out = lrelu_0.2((y + noise[y, x]) + bias[c])

Reference: identitydp_fast/reference/prior_ops.py; test: tests/test_prior_ops.py.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_BLOCK = 1 << 16 if _INTERPRET else 1024


@triton.jit
def _dwconv3x3_kernel(x_ptr, w_ptr, out_ptr, total, H, W, C, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = i < total
    c = i % C
    x = (i // C) % W
    y = (i // (C * W)) % H
    n = i // (C * W * H)
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for k in tl.static_range(9):
        yy = y + (k // 3) - 1
        xx = x + (k % 3) - 1
        inside = ok & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        v = tl.load(x_ptr + ((n * H + yy) * W + xx) * C + c, mask=inside, other=0.0).to(tl.float32)
        wk = tl.load(w_ptr + (n * 9 + k) * C + c, mask=ok, other=0.0).to(tl.float32)
        acc += tl.where(inside, wk * v, 0.0)
    tl.store(out_ptr + i, acc.to(out_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _haar_kernel(x_ptr, s_ptr, out_ptr, total, H, W, C, BLOCK: tl.constexpr):
    # x (N, H, W, 4C), s (N, 4C), out (N, 2H, 2W, C)
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = i < total
    c = i % C
    ox = (i // C) % (2 * W)
    oy = (i // (C * 2 * W)) % (2 * H)
    n = i // (C * 4 * W * H)
    sa = tl.where((oy % 2) == 1, -1.0, 1.0)
    sb = tl.where((ox % 2) == 1, -1.0, 1.0)
    base = ((n * H + oy // 2) * W + ox // 2) * (4 * C)
    hb = C + 3 * c
    ll = tl.load(x_ptr + base + c, mask=ok, other=0.0).to(tl.float32) * \
        tl.load(s_ptr + n * 4 * C + c, mask=ok, other=0.0).to(tl.float32)
    b0 = tl.load(x_ptr + base + hb, mask=ok, other=0.0).to(tl.float32) * \
        tl.load(s_ptr + n * 4 * C + hb, mask=ok, other=0.0).to(tl.float32)
    b1 = tl.load(x_ptr + base + hb + 1, mask=ok, other=0.0).to(tl.float32) * \
        tl.load(s_ptr + n * 4 * C + hb + 1, mask=ok, other=0.0).to(tl.float32)
    b2 = tl.load(x_ptr + base + hb + 2, mask=ok, other=0.0).to(tl.float32) * \
        tl.load(s_ptr + n * 4 * C + hb + 2, mask=ok, other=0.0).to(tl.float32)
    out = ((ll + sa * b0) + sb * (b1 + sa * b2)) * 0.5
    tl.store(out_ptr + i, out.to(out_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _epilogue_kernel(y_ptr, b_ptr, noise_ptr, out_ptr, total, HW, C, HAS_NOISE: tl.constexpr,
                     BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = i < total
    c = i % C
    v = tl.load(y_ptr + i, mask=ok, other=0.0).to(tl.float32)
    if HAS_NOISE:
        v = v + tl.load(noise_ptr + (i // C) % HW, mask=ok, other=0.0).to(tl.float32)
    else:
        v = v + 0.0
    v = v + tl.load(b_ptr + c, mask=ok, other=0.0).to(tl.float32)
    tl.store(out_ptr + i, tl.where(v > 0.0, v, v * 0.2).to(out_ptr.dtype.element_ty), mask=ok)


def _grid(total: int):
    return (triton.cdiv(total, _BLOCK),)


def dwconv3x3(x: torch.Tensor, wmod: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """x, out (N, H, W, C); wmod (N, 9, C): contiguous, one dtype."""
    n, h, w, c = x.shape
    if out.numel():
        _dwconv3x3_kernel[_grid(out.numel())](x, wmod, out, out.numel(), h, w, c, BLOCK=_BLOCK)
    return out


def haar(x: torch.Tensor, style: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """x (N, H, W, 4C), style (N, 4C), out (N, 2H, 2W, C): contiguous, one dtype."""
    n, h, w, c4 = x.shape
    if out.numel():
        _haar_kernel[_grid(out.numel())](x, style, out, out.numel(), h, w, c4 // 4, BLOCK=_BLOCK)
    return out


def epilogue(y: torch.Tensor, bias: torch.Tensor, noise: torch.Tensor | None,
             out: torch.Tensor) -> torch.Tensor:
    """y, out (N, H, W, C) (may alias); bias (C,); noise (H, W) or None."""
    n, h, w, c = y.shape
    if out.numel():
        _epilogue_kernel[_grid(out.numel())](y, bias, y if noise is None else noise, out, out.numel(),
                                             h * w, c, HAS_NOISE=noise is not None, BLOCK=_BLOCK)
    return out
