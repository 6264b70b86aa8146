"""Affine warp + bilinear sampling + normalisation into NHWC float32, in Triton.

    [x, y] = M_n @ [c, r, 1]   ((m00 c + m01 r) + m02; non-finite -> -4; clamp to the
                                image +- 4 pixels)
    top = (1 - fx) I(y0, x0) + fx I(y0, x0 + 1);  bot likewise at y0 + 1
    v   = (1 - fy) top + fy bot        (I = 0 outside; floor(v) if TRUNCATE)
    out[n, r, c, ch] = float32((v - mean_ch) * scale)

All in float64 without FMA contraction (enable_fp_fusion=False), in the reference's
order, so it reproduces identitydp_fast/reference/warp_affine.py (float64) rounded once
to float32, like the C++/CUDA twin kernels/common/warp_affine.h. One lane per output
pixel and channel. Test: tests/test_warp_affine_kernels.py.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _warp_affine_kernel(img_ptr, mat_ptr, mean_ptr, out_ptr, total, H, W, C, OH, OW, scale, XMAX, YMAX,
                        TRUNCATE: tl.constexpr, BLOCK: tl.constexpr):
    # img: (N, H, W, C) uint8/float32; mat: (N, 2, 3) float64; mean: (C,) float64;
    # out: (N, OH, OW, C) float32. Lane i = ((n * OH + r) * OW + c) * C + ch.
    # XMAX = W + 4, YMAX = H + 4 come as floats: Triton turns an int argument equal to 1
    # into a constexpr Python int, which has no .to().
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = i < total
    ch = i % C
    c = (i // C) % OW
    r = (i // (C * OW)) % OH
    n = i // (C * OW * OH)
    m = mat_ptr + n * 6
    m00 = tl.load(m + 0, mask=ok, other=0.0)
    m01 = tl.load(m + 1, mask=ok, other=0.0)
    m02 = tl.load(m + 2, mask=ok, other=0.0)
    m10 = tl.load(m + 3, mask=ok, other=0.0)
    m11 = tl.load(m + 4, mask=ok, other=0.0)
    m12 = tl.load(m + 5, mask=ok, other=0.0)
    cd = c.to(tl.float64)
    rd = r.to(tl.float64)
    x = (m00 * cd + m01 * rd) + m02
    y = (m10 * cd + m11 * rd) + m12
    fin = (x == x) & (y == y) & (tl.abs(x) < float("inf")) & (tl.abs(y) < float("inf"))
    x = tl.where(fin, x, -4.0)
    y = tl.where(fin, y, -4.0)
    x = tl.minimum(tl.maximum(x, -4.0), XMAX)
    y = tl.minimum(tl.maximum(y, -4.0), YMAX)
    x0f = tl.floor(x)
    y0f = tl.floor(y)
    fx = x - x0f
    fy = y - y0f
    gx = 1.0 - fx
    gy = 1.0 - fy
    x0 = x0f.to(tl.int64)
    y0 = y0f.to(tl.int64)
    x1 = x0 + 1
    y1 = y0 + 1
    base = img_ptr + n * H * W * C + ch
    in00 = ok & (x0 >= 0) & (x0 < W) & (y0 >= 0) & (y0 < H)
    in01 = ok & (x1 >= 0) & (x1 < W) & (y0 >= 0) & (y0 < H)
    in10 = ok & (x0 >= 0) & (x0 < W) & (y1 >= 0) & (y1 < H)
    in11 = ok & (x1 >= 0) & (x1 < W) & (y1 >= 0) & (y1 < H)
    i00 = tl.load(base + (y0 * W + x0) * C, mask=in00, other=0).to(tl.float64)
    i01 = tl.load(base + (y0 * W + x1) * C, mask=in01, other=0).to(tl.float64)
    i10 = tl.load(base + (y1 * W + x0) * C, mask=in10, other=0).to(tl.float64)
    i11 = tl.load(base + (y1 * W + x1) * C, mask=in11, other=0).to(tl.float64)
    top = gx * i00 + fx * i01
    bot = gx * i10 + fx * i11
    v = gy * top + fy * bot
    if TRUNCATE:
        v = tl.floor(v)
    mean = tl.load(mean_ptr + ch, mask=ok, other=0.0)
    tl.store(out_ptr + i, ((v - mean) * scale).to(tl.float32), mask=ok)


def warp_affine(images: torch.Tensor, matrices: torch.Tensor, mean: torch.Tensor, scale: float,
                truncate: bool, out: torch.Tensor) -> torch.Tensor:
    """images (N,H,W,C) uint8/float32, matrices (N,2,3) float64, mean (C,) float64,
    out (N,OH,OW,C) float32: all contiguous on one device."""
    n, h, w, c = images.shape
    _, oh, ow, _ = out.shape
    total = out.numel()
    if total == 0:
        return out
    block = 1 << 16 if _INTERPRET else 256
    grid = (triton.cdiv(total, block),)
    kwargs = {} if _INTERPRET else {"enable_fp_fusion": False}
    _warp_affine_kernel[grid](images, matrices, mean, out, total, h, w, c, oh, ow, float(scale),
                              float(w + 4), float(h + 4),
                              TRUNCATE=bool(truncate), BLOCK=block, **kwargs)
    return out
