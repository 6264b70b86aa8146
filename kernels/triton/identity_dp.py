"""The fused epsilon-IdentityDP op in Triton.

Per row x (float32, d coordinates), with public centre mu (zeros if none)::

    u   = x / ||x||_2                 (u = 0 where ||x|| = 0)
    r   = u - mu
    r  *= min(1, C' / ||r||_1)        C' = kernel clip radius, C (1 - 2^-16): r * (C' / l1)
                                      in float64, rounded to float32
    n   = floor(float64(r) * 2^-log2_g + 1/2)   (int64; exact scaling by a power of two)
    v   = float32((n + K) * g)        K = discrete Laplace noise, sample index row * d + col
    y   = mu + v
    out = y * (output_norm / ||y||_2) (out = 0 where ||y|| = 0)

Returns (out, v). Same order of float32 operations as the oracle
identitydp_fast/reference/identity_dp.py; the three row reductions (||x||^2, ||r||_1,
||y||^2) are float64 sums as there, in another order. IEEE-rounded
division and square root (div_rn, sqrt_rn) are used, and fp fusion is off, so that
the GPU agrees with the CPU. K is bit-exact with the oracle (kernels/triton/
discrete_laplace.py). Guarantee: identitydp_fast/privacy/accounting.py.

Layout: each program handles a tile of ROWS rows x BLOCK_D columns (BLOCK_D = next power
of two >= d, masked). On a GPU ROWS = 1 (one program per row); under the interpreter
ROWS is large so that each numpy op covers many rows.
"""
from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

from .chacha20 import INTERPRET_LANES, tune_malloc_for_interpreter
from .discrete_laplace import discrete_laplace_lanes, stream_params, table_tensor

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _identity_dp_kernel(x_ptr, center_ptr, params_ptr, table_ptr, f32_ptr, f64_ptr,
                        out_ptr, v_ptr, n_rows, d, n_bits, words_per_row,
                        HAS_CENTER: tl.constexpr, ROWS: tl.constexpr,
                        BLOCK_D: tl.constexpr):
    # x_ptr, out_ptr, v_ptr: (n_rows, d) float32 contiguous. center_ptr: (d,) float32
    # (unused unless HAS_CENTER). params_ptr: int32 key words + stream lo/hi.
    # table_ptr: ((n_bits + 1) * words_per_row,) int32. f32_ptr: [clip, output_norm]
    # float32. f64_ptr: [2^-log2_g, 2^log2_g] float64.
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)  # (ROWS,)
    cols = tl.arange(0, BLOCK_D)  # (BLOCK_D,)
    col_ok = cols < d
    mask = (rows[:, None] < n_rows) & col_ok[None, :]  # (ROWS, BLOCK_D)
    offs = rows[:, None] * d + cols[None, :]  # (ROWS, BLOCK_D) int64, also the sample index
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    if HAS_CENTER:
        mu = tl.load(center_ptr + cols, mask=col_ok, other=0.0)[None, :]  # (1, BLOCK_D)
    else:
        mu = tl.zeros((1, BLOCK_D), dtype=tl.float32)

    # u = x / ||x||, 0 for a zero row.
    # Row sums in float64 over float32 terms: the clip's bound ||r||_1 <= C must survive
    # the summation error (why and the bound: reference/identity_dp.py).
    x64 = x.to(tl.float64)
    norm = tl.sqrt(tl.sum(x64 * x64, axis=1)).to(tl.float32)[:, None]  # (ROWS, 1)
    u = tl.where(norm > 0, tl.div_rn(x, tl.where(norm > 0, norm, 1.0)), 0.0)
    # Centre and clip to the L1 ball of radius clip.
    r = tl.where(mask, u - mu, 0.0)
    l1 = tl.sum(tl.abs(r.to(tl.float64)), axis=1)[:, None]  # (ROWS, 1) float64
    clip = tl.load(f32_ptr + 0).to(tl.float64)
    clipped = tl.where(l1 > clip, l1, 1.0)
    scale = clip / clipped  # float64: IEEE division and square root (rn) on every target
    r = tl.where(l1 > clip, (r.to(tl.float64) * scale).to(tl.float32), r)
    # Snap to the grid g Z (float64, exact scaling by 2^-log2_g).
    inv_g = tl.load(f64_ptr + 0)
    g = tl.load(f64_ptr + 1)
    n = tl.floor(r.to(tl.float64) * inv_g + 0.5).to(tl.int64)
    # Discrete Laplace noise, sample index row * d + col (mod 2^32).
    k = discrete_laplace_lanes(params_ptr, table_ptr, offs.to(tl.uint32), mask, n_bits,
                               words_per_row)
    v = ((n + k).to(tl.float64) * g).to(tl.float32)
    v = tl.where(mask, v, 0.0)
    # Post-processing: renormalise mu + v to output_norm.
    y = tl.where(mask, mu + v, 0.0)
    y64 = y.to(tl.float64)
    ny = tl.sqrt(tl.sum(y64 * y64, axis=1)).to(tl.float32)[:, None]  # (ROWS, 1)
    onorm = tl.load(f32_ptr + 1)
    scale = tl.div_rn(onorm + tl.zeros_like(ny), tl.where(ny > 0, ny, 1.0))
    out = tl.where(ny > 0, y * scale, 0.0)
    tl.store(out_ptr + offs, out, mask=mask)
    tl.store(v_ptr + offs, v, mask=mask)


def identity_dp(x: torch.Tensor, center: torch.Tensor | None, key: bytes, stream: int,
                table, n_bits: int, words_per_row: int, log2_granularity: int,
                clip: float, output_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused IdentityDP on (N, d) float32 ``x``; returns (out, v), both (N, d) float32.

    center: (d,) float32 or None. table / n_bits / words_per_row / log2_granularity /
    clip (= LaplaceParams.kernel_clip_radius) come from identitydp_fast.privacy.
    Matches identitydp_fast.reference.identity_dp.identity_dp up to float32 rounding of
    the row reductions.
    """
    if x.dim() != 2:
        raise ValueError(f"x must be (N, d), got shape {tuple(x.shape)}")
    if x.dtype != torch.float32:
        raise TypeError(f"x must be float32, got {x.dtype}")
    x = x.contiguous()
    n_rows, d = x.shape
    device = x.device
    out = torch.empty_like(x)
    v = torch.empty_like(x)
    if n_rows == 0 or d == 0:
        return out, v
    if center is not None:
        if center.shape != (d,):
            raise ValueError(f"center must be ({d},), got {tuple(center.shape)}")
        center = center.to(device=device, dtype=torch.float32).contiguous()
    params = stream_params(key, stream, 0, device)
    table_t = table_tensor(table, n_bits, words_per_row, device)
    f32 = torch.tensor([clip, output_norm], dtype=torch.float32, device=device)
    f64 = torch.tensor([math.ldexp(1.0, -log2_granularity), math.ldexp(1.0, log2_granularity)],
                       dtype=torch.float64, device=device)
    block_d = triton.next_power_of_2(d)
    if _INTERPRET:
        tune_malloc_for_interpreter()
        rows = max(1, min(INTERPRET_LANES // block_d, triton.next_power_of_2(n_rows)))
        extra = {}
    else:
        rows = 1
        extra = {"num_warps": max(1, min(8, block_d // 128)), "enable_fp_fusion": False}
    grid = (triton.cdiv(n_rows, rows),)
    _identity_dp_kernel[grid](
        x, center if center is not None else x, params, table_t, f32, f64, out, v,
        n_rows, d, n_bits, words_per_row,
        HAS_CENTER=center is not None, ROWS=rows, BLOCK_D=block_d, **extra)
    return out, v
