"""The AAD layer's fused ops in Triton, NHWC (FaceShifter's adaptive attentional
denormalisation). Tensors are float32, float16 or bfloat16 (all of one call alike); the
arithmetic is float32 whatever the storage (statistics in float64), rounded once on store.

    instance_norm     out = (h - mean) / sqrt(var + eps)  per (n, c) over (H, W), biased var
    aad_blend_relu    m = sigmoid(logit);  out = relu((1 - m) (ga h + ba) + m (gi h + bi))
    upsample2x        out = bilinear_x2(x) (align_corners=False) [+ residual]

Instance norm runs in three kernels: per (chunk of BLOCK_P pixels, tile of BLOCK_C
channels, n) a two-pass mean / M2 of the tile in float64; per (n, channel tile) the
chunks merged in order with Chan's update (float64), mean and rstd rounded to float32;
then one float32 elementwise pass. Deterministic (fixed chunks and merge order). The others are one lane per
output element, consecutive lanes = consecutive channels (coalesced).
Reference: identitydp_fast/reference/aad.py; C/CUDA twin: kernels/common/aad.h;
test: tests/test_aad.py.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_ELEMENTWISE_BLOCK = 1 << 16 if _INTERPRET else 1024
_STATS_TILE = 1 << 16 if _INTERPRET else 4096  # elements per statistics tile


@triton.jit
def _inorm_partial_kernel(h_ptr, part_ptr, HW, C, CHUNKS,
                          BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # h: (N, HW, C); part: (N, CHUNKS, C, 3) float64 = count, mean, M2 of the pixels
    # [k BLOCK_P, (k + 1) BLOCK_P) of channels [ct BLOCK_C, (ct + 1) BLOCK_C)
    k = tl.program_id(0).to(tl.int64)
    ct = tl.program_id(1).to(tl.int64)
    n = tl.program_id(2).to(tl.int64)
    p = k * BLOCK_P + tl.arange(0, BLOCK_P)
    c = ct * BLOCK_C + tl.arange(0, BLOCK_C)
    p_ok = p < HW
    c_ok = c < C
    ok = p_ok[:, None] & c_ok[None, :]
    x = tl.load(h_ptr + (n * HW + p)[:, None] * C + c[None, :], mask=ok, other=0.0)
    x = x.to(tl.float64)
    cnt = tl.sum(p_ok.to(tl.float64), axis=0)
    mean = tl.sum(x, axis=0) / cnt
    d = tl.where(ok, x - mean[None, :], 0.0)
    m2 = tl.sum(d * d, axis=0)
    base = part_ptr + ((n * CHUNKS + k) * C + c) * 3
    tl.store(base, tl.zeros([BLOCK_C], tl.float64) + cnt, mask=c_ok)
    tl.store(base + 1, mean, mask=c_ok)
    tl.store(base + 2, m2, mask=c_ok)


@triton.jit
def _inorm_finalize_kernel(part_ptr, stats_ptr, C, CHUNKS, eps, BLOCK_C: tl.constexpr):
    # part: (N, CHUNKS, C, 3) float64 -> stats: (N, C, 2) float32 = mean, rstd; chunks
    # merged in order (Chan), in float64
    ct = tl.program_id(0).to(tl.int64)
    n = tl.program_id(1).to(tl.int64)
    c = ct * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < C
    base = part_ptr + (n * CHUNKS * C + c) * 3
    cnt = tl.load(base, mask=c_ok, other=1.0)
    mean = tl.load(base + 1, mask=c_ok, other=0.0)
    m2 = tl.load(base + 2, mask=c_ok, other=0.0)
    for k in range(1, CHUNKS):  # every chunk holds >= 1 pixel
        pk = base + k * C * 3
        cnt_b = tl.load(pk, mask=c_ok, other=1.0)
        mean_b = tl.load(pk + 1, mask=c_ok, other=0.0)
        m2_b = tl.load(pk + 2, mask=c_ok, other=0.0)
        tot = cnt + cnt_b
        delta = mean_b - mean
        fb = cnt_b / tot
        mean = mean + delta * fb
        m2 = m2 + m2_b + delta * delta * cnt * fb
        cnt = tot
    rstd = 1.0 / tl.sqrt(m2 / cnt + eps)
    out = stats_ptr + (n * C + c) * 2
    tl.store(out, mean.to(tl.float32), mask=c_ok)
    tl.store(out + 1, rstd.to(tl.float32), mask=c_ok)


@triton.jit
def _inorm_apply_kernel(h_ptr, stats_ptr, out_ptr, total, HWC, C, BLOCK: tl.constexpr):
    # h, out: (N, H, W, C); stats: (N, C, 2)
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = i < total
    c = i % C
    n = i // HWC
    st = stats_ptr + (n * C + c) * 2
    mean = tl.load(st, mask=ok, other=0.0)
    rstd = tl.load(st + 1, mask=ok, other=0.0)
    x = tl.load(h_ptr + i, mask=ok, other=0.0).to(tl.float32)
    tl.store(out_ptr + i, ((x - mean) * rstd).to(out_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _aad_blend_kernel(h_ptr, ga_ptr, ba_ptr, gi_ptr, bi_ptr, lg_ptr, out_ptr, total, HW, C,
                      RELU: tl.constexpr, BLOCK: tl.constexpr):
    # h, ga, ba, out: (N, H, W, C); gi, bi: (N, C); lg: (N, H, W)
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = i < total
    c = i % C
    pix = i // C  # (n, y, x)
    nc = (pix // HW) * C + c
    h = tl.load(h_ptr + i, mask=ok, other=0.0).to(tl.float32)
    ga = tl.load(ga_ptr + i, mask=ok, other=0.0).to(tl.float32)
    ba = tl.load(ba_ptr + i, mask=ok, other=0.0).to(tl.float32)
    gi = tl.load(gi_ptr + nc, mask=ok, other=0.0).to(tl.float32)
    bi = tl.load(bi_ptr + nc, mask=ok, other=0.0).to(tl.float32)
    lg = tl.load(lg_ptr + pix, mask=ok, other=0.0).to(tl.float32)
    m = 1.0 / (1.0 + tl.exp(-lg))
    a = ga * h + ba
    b = gi * h + bi
    v = (1.0 - m) * a + m * b
    if RELU:
        v = tl.where(v < 0.0, 0.0, v)
    tl.store(out_ptr + i, v.to(out_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _upsample2x_kernel(x_ptr, res_ptr, out_ptr, total, H, W, C,
                       HAS_RES: tl.constexpr, BLOCK: tl.constexpr):
    # x: (N, H, W, C); res (if HAS_RES), out: (N, 2H, 2W, C)
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = i < total
    c = i % C
    ox = (i // C) % (2 * W)
    oy = (i // (C * 2 * W)) % (2 * H)
    n = i // (C * 4 * W * H)
    # taps (kernels/common/aad.h idp_up2x_tap): o = 2k+1 -> (k, k+1, .75, .25);
    # o = 2k -> (k-1, k, .25, .75), and (0, 1, 1, 0) at k = 0; i1 clamped to size - 1
    ky = oy // 2
    y_odd = (oy % 2) == 1
    y0 = tl.where(y_odd, ky, tl.maximum(ky - 1, 0))
    ly1 = tl.where(y_odd, 0.25, tl.where(ky == 0, 0.0, 0.75))
    y1 = tl.minimum(y0 + 1, H - 1)
    kx = ox // 2
    x_odd = (ox % 2) == 1
    x0 = tl.where(x_odd, kx, tl.maximum(kx - 1, 0))
    lx1 = tl.where(x_odd, 0.25, tl.where(kx == 0, 0.0, 0.75))
    x1 = tl.minimum(x0 + 1, W - 1)
    ly0 = 1.0 - ly1
    lx0 = 1.0 - lx1
    r0 = (n * H + y0) * W
    r1 = (n * H + y1) * W
    a = tl.load(x_ptr + (r0 + x0) * C + c, mask=ok, other=0.0).to(tl.float32)
    b = tl.load(x_ptr + (r0 + x1) * C + c, mask=ok, other=0.0).to(tl.float32)
    cc = tl.load(x_ptr + (r1 + x0) * C + c, mask=ok, other=0.0).to(tl.float32)
    d = tl.load(x_ptr + (r1 + x1) * C + c, mask=ok, other=0.0).to(tl.float32)
    v = ly0 * (lx0 * a + lx1 * b) + ly1 * (lx0 * cc + lx1 * d)
    if HAS_RES:
        v += tl.load(res_ptr + i, mask=ok, other=0.0).to(tl.float32)
    tl.store(out_ptr + i, v.to(out_ptr.dtype.element_ty), mask=ok)


def instance_norm(h: torch.Tensor, eps: float, out: torch.Tensor) -> torch.Tensor:
    """h, out: (N, H, W, C) NHWC contiguous, one float dtype."""
    n, hh, ww, c = h.shape
    hw = hh * ww
    if h.numel() == 0:
        return out
    block_c = min(triton.next_power_of_2(c), 128)
    block_p = max(1, _STATS_TILE // block_c)
    chunks = triton.cdiv(hw, block_p)
    ctiles = triton.cdiv(c, block_c)
    part = torch.empty((n, chunks, c, 3), dtype=torch.float64, device=h.device)
    stats = torch.empty((n, c, 2), dtype=torch.float32, device=h.device)
    _inorm_partial_kernel[(chunks, ctiles, n)](h, part, hw, c, chunks,
                                              BLOCK_P=block_p, BLOCK_C=block_c)
    _inorm_finalize_kernel[(ctiles, n)](part, stats, c, chunks, float(eps), BLOCK_C=block_c)
    total = h.numel()
    _inorm_apply_kernel[(triton.cdiv(total, _ELEMENTWISE_BLOCK),)](
        h, stats, out, total, hw * c, c, BLOCK=_ELEMENTWISE_BLOCK)
    return out


def aad_blend_relu(h: torch.Tensor, ga: torch.Tensor, ba: torch.Tensor, gi: torch.Tensor,
                   bi: torch.Tensor, logits: torch.Tensor, relu: bool,
                   out: torch.Tensor) -> torch.Tensor:
    """h, ga, ba, out: (N, H, W, C); gi, bi: (N, C); logits: (N, H, W); contiguous, one float dtype."""
    n, hh, ww, c = h.shape
    total = h.numel()
    if total == 0:
        return out
    _aad_blend_kernel[(triton.cdiv(total, _ELEMENTWISE_BLOCK),)](
        h, ga, ba, gi, bi, logits, out, total, hh * ww, c, RELU=bool(relu),
        BLOCK=_ELEMENTWISE_BLOCK)
    return out


def upsample_bilinear2x(x: torch.Tensor, residual: torch.Tensor | None,
                        out: torch.Tensor) -> torch.Tensor:
    """x: (N, H, W, C); residual (or None), out: (N, 2H, 2W, C); contiguous, one float dtype."""
    n, hh, ww, c = x.shape
    total = out.numel()
    if total == 0:
        return out
    has_res = residual is not None
    _upsample2x_kernel[(triton.cdiv(total, _ELEMENTWISE_BLOCK),)](
        x, residual if has_res else x, out, total, hh, ww, c, HAS_RES=has_res,
        BLOCK=_ELEMENTWISE_BLOCK)
    return out
