"""Fused residual zero-fill add (+ 2x2 average-pooled shortcut) + ReLU in Triton, NHWC.

    s   = pool ? avg_pool2x2(shortcut) : shortcut     (window 2, stride 2, unpadded, floor)
    out = relu(zero_fill(main) + zero_fill(s))        out shape = elementwise max of shapes

zero_fill pads with zeros at the trailing channels, bottom rows and right columns
(dlib's add_prev). The 2x2 mean is ((a + b) + c + d) * 0.25, torch's order. One lane
per output element; consecutive lanes are consecutive channels (coalesced).
Reference: identitydp_fast/reference/residual_add.py; C/CUDA twin:
kernels/common/residual_add.h; test: tests/test_residual_add.py.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _residual_add_relu_kernel(main_ptr, sc_ptr, out_ptr, total, H, W, C, MH, MW, MC, SH, SW, SC,
                              POOL: tl.constexpr, SAME: tl.constexpr, BLOCK: tl.constexpr):
    # main: (N, MH, MW, MC), sc: (N, SH, SW, SC), out: (N, H, W, C); NHWC contiguous, one
    # float dtype (float32/16, bfloat16); the sum is formed in float32 and rounded on store.
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = i < total
    if SAME:  # same shapes, no pooling: a flat add (no index arithmetic)
        v = (tl.load(main_ptr + i, mask=ok, other=0.0).to(tl.float32)
             + tl.load(sc_ptr + i, mask=ok, other=0.0).to(tl.float32))
    else:
        ch = i % C
        x = (i // C) % W
        y = (i // (C * W)) % H
        n = i // (C * W * H)
        m_ok = ok & (y < MH) & (x < MW) & (ch < MC)
        m = tl.load(main_ptr + ((n * MH + y) * MW + x) * MC + ch, mask=m_ok, other=0.0).to(tl.float32)
        if POOL:
            s_ok = ok & (ch < SC) & (y < SH // 2) & (x < SW // 2)
            base = ((n * SH + 2 * y) * SW + 2 * x) * SC + ch
            a = tl.load(sc_ptr + base, mask=s_ok, other=0.0).to(tl.float32)
            b = tl.load(sc_ptr + base + SC, mask=s_ok, other=0.0).to(tl.float32)
            c = tl.load(sc_ptr + base + SW * SC, mask=s_ok, other=0.0).to(tl.float32)
            d = tl.load(sc_ptr + base + SW * SC + SC, mask=s_ok, other=0.0).to(tl.float32)
            r = (((a + b) + c) + d) * 0.25
        else:
            s_ok = ok & (ch < SC) & (y < SH) & (x < SW)
            r = tl.load(sc_ptr + ((n * SH + y) * SW + x) * SC + ch, mask=s_ok, other=0.0).to(tl.float32)
        v = m + r
    tl.store(out_ptr + i, tl.where(v > 0.0, v, 0.0).to(out_ptr.dtype.element_ty), mask=ok)


def residual_add_relu(main: torch.Tensor, shortcut: torch.Tensor, pool_shortcut: bool,
                      out: torch.Tensor) -> torch.Tensor:
    """main (N,Hm,Wm,Cm), shortcut (N,Hs,Ws,Cs), out (N,H,W,C): NHWC contiguous, one dtype."""
    n, h, w, c = out.shape
    total = out.numel()
    if total == 0:
        return out
    block = 1 << 16 if _INTERPRET else 1024
    grid = (triton.cdiv(total, block),)
    same = (not pool_shortcut and tuple(main.shape) == tuple(out.shape)
            and tuple(shortcut.shape) == tuple(out.shape))
    _residual_add_relu_kernel[grid](main, shortcut, out, total, h, w, c, *main.shape[1:],
                                    *shortcut.shape[1:], POOL=bool(pool_shortcut), SAME=same,
                                    BLOCK=block)
    return out
