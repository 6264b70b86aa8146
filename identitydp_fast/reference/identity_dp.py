"""The fused epsilon-IdentityDP op, the plain-PyTorch oracle.

Per row x (float32, d coordinates), with public centre mu (zeros if none)::

    u   = x / ||x||_2                 (u = 0 where ||x|| = 0; the Python API rejects such rows)
    r   = u - mu
    r  *= min(1, C' / ||r||_1)        C' = kernel clip radius, C (1 - 2^-16)
    n   = floor(float64(r) / g + 1/2) (int64; g = 2^log2_g, so the division is exact)
    v   = float32((n + K) g)          K = discrete Laplace noise (reference/discrete_laplace.py),
                                      sample index row * d + col
    y   = mu + v
    out = y * (output_norm / ||y||_2) (out = 0 where ||y|| = 0)

Returns (out, v). Kernels checked against this: csrc/cpu/identity_dp.cpp,
kernels/cuda/identity_dp.cu, kernels/triton/identity_dp.py. Test:
tests/test_identity_dp.py. Guarantee: identitydp_fast/privacy/accounting.py.
"""
from __future__ import annotations

import math

import torch

from ..privacy.accounting import LaplaceParams
from .discrete_laplace import discrete_laplace


def _sqrt_rn(t: torch.Tensor) -> torch.Tensor:
    """Correctly rounded float32 square root (float64 has > 2 * 24 + 2 bits)."""
    return torch.sqrt(t.to(torch.float64)).to(torch.float32)


def identity_dp(x: torch.Tensor, center: torch.Tensor | None, params: LaplaceParams,
                key: bytes, stream: int, output_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (N, d) float32. center: (d,) float32 or None. Returns out (N, d), v (N, d)."""
    n_rows, dim = x.shape
    x = x.to(torch.float32)
    mu = torch.zeros(dim, dtype=torch.float32, device=x.device) if center is None else center
    # sqrt through float64: correctly rounded, like sqrtf in C++/CUDA and tl.sqrt_rn (torch's
    # float32 CPU sqrt is off by one ulp for some inputs)
    norm = _sqrt_rn((x * x).sum(dim=1, keepdim=True))
    u = torch.where(norm > 0, x / norm, torch.zeros_like(x))
    r = u - mu
    l1 = r.abs().sum(dim=1, keepdim=True)
    clip = torch.tensor(params.kernel_clip_radius, dtype=torch.float32)
    r = torch.where(l1 > clip, r * (clip / l1), r)
    inv_g = math.ldexp(1.0, -params.log2_granularity)
    n = torch.floor(r.to(torch.float64) * inv_g + 0.5).to(torch.int64)
    samples = torch.arange(n_rows * dim, dtype=torch.int64, device=x.device)
    k = discrete_laplace(key, stream, samples, params.table, params.n_bits).view(n_rows, dim)
    v = ((n + k).to(torch.float64) * params.granularity).to(torch.float32)
    y = mu + v
    ny = _sqrt_rn((y * y).sum(dim=1, keepdim=True))
    out = torch.where(ny > 0, y * (torch.tensor(output_norm, dtype=torch.float32) / ny),
                      torch.zeros_like(y))
    return out, v
