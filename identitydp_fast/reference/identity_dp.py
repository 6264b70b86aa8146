"""The fused epsilon-IdentityDP op, the plain-PyTorch oracle.

Per row x (float32, d coordinates), with public centre mu (zeros if none)::

    u   = x / ||x||_2                 (u = 0 where ||x|| = 0; the Python API rejects such rows)
    r   = u - mu
    r   = float32(float64(r) * (C' / ||r||_1)) if ||r||_1 > C'   C' = kernel clip radius,
                                      C (1 - 2^-16) rounded to float32
    n   = floor(float64(r) / g + 1/2) (int64; g = 2^log2_g, so the division is exact)
    v   = float32((n + K) g)          K = discrete Laplace noise (reference/discrete_laplace.py),
                                      sample index row * d + col
    y   = mu + v
    out = y * (output_norm / ||y||_2) (out = 0 where ||y|| = 0)

Precision. The elementwise steps are float32 (IEEE, round to nearest). The three row
reductions (||x||^2, ||r||_1, ||y||^2) are summed in float64 over float32 terms (the
squares of float32 values are exact in float64), and the norms are float32(sqrt(float64)).
Why float64: the clip's guarantee ||r||_1 <= C must survive the summation error, and a
float32 sum of d terms errs by up to (d - 1) 2^-24 relative, above the 2^-16 slack once
d >~ 256 (a sequential float32 sum of [1, 2.8e-8 x 1023] drops every small term). In
float64 the error is below d 2^-53 and the realised ||r||_1 <= C' (1 + 2^-24)(1 + d 2^-52)
< C for any d < 2^30. Every backend sums in float64 in its own order; their float64 sums
differ by a few 2^-53 relative, so the float32 values they round to agree except when a
sum lands within that distance of a float32 rounding boundary (about d 2^-29 per row).

Returns (out, v). Kernels checked against this: csrc/cpu/identity_dp.cpp,
kernels/cuda/identity_dp.cu, kernels/triton/identity_dp.py. Test:
tests/test_identity_dp.py. Guarantee: identitydp_fast/privacy/accounting.py.
"""
from __future__ import annotations

import math

import torch

from ..privacy.accounting import LaplaceParams
from .discrete_laplace import discrete_laplace


def _norm64(t: torch.Tensor) -> torch.Tensor:
    """(N, 1) float32(sqrt(sum of float64 squares)) of the rows of float32 ``t``."""
    t64 = t.to(torch.float64)
    return torch.sqrt((t64 * t64).sum(dim=1, keepdim=True)).to(torch.float32)


def identity_dp(x: torch.Tensor, center: torch.Tensor | None, params: LaplaceParams,
                key: bytes, stream: int, output_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (N, d) float32. center: (d,) float32 or None. Returns out (N, d), v (N, d)."""
    n_rows, dim = x.shape
    x = x.to(torch.float32)
    mu = torch.zeros(dim, dtype=torch.float32, device=x.device) if center is None else center
    # sqrt through float64: correctly rounded, like sqrtf in C++/CUDA and tl.sqrt_rn (torch's
    # float32 CPU sqrt is off by one ulp for some inputs)
    norm = _norm64(x)
    u = torch.where(norm > 0, x / norm, torch.zeros_like(x))
    r = u - mu
    r64 = r.to(torch.float64)
    l1 = r64.abs().sum(dim=1, keepdim=True)
    # the clip radius as the kernels receive it (a float32 argument)
    clip = float(torch.tensor(params.kernel_clip_radius, dtype=torch.float32))
    r = torch.where(l1 > clip, (r64 * (clip / l1)).to(torch.float32), r)
    inv_g = math.ldexp(1.0, -params.log2_granularity)
    n = torch.floor(r.to(torch.float64) * inv_g + 0.5).to(torch.int64)
    samples = torch.arange(n_rows * dim, dtype=torch.int64, device=x.device)
    k = discrete_laplace(key, stream, samples, params.table, params.n_bits).view(n_rows, dim)
    v = ((n + k).to(torch.float64) * params.granularity).to(torch.float32)
    y = mu + v
    ny = _norm64(y)
    out = torch.where(ny > 0, y * (torch.tensor(output_norm, dtype=torch.float32) / ny),
                      torch.zeros_like(y))
    return out, v
