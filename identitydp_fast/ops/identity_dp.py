"""The fused epsilon-IdentityDP op. Reference: identitydp_fast/reference/identity_dp.py;
kernels: csrc/cpu/identity_dp.cpp, kernels/cuda/identity_dp.cuh,
kernels/triton/identity_dp.py; tests: tests/test_identity_dp.py;
benchmark: bench/bench_identity_dp.py. Inputs are validated by the caller
(identitydp_fast.identity_dp.IdentityDP); this layer only dispatches."""
from __future__ import annotations

import torch

from .. import _native
from ..privacy.accounting import LaplaceParams
from ..reference.identity_dp import identity_dp as _reference_op
from ._tables import table_on


def identity_dp(x: torch.Tensor, center: torch.Tensor | None, params: LaplaceParams, key: bytes,
                stream: int, output_norm: float, backend: str = "reference"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (N, d) float32 contiguous; center: (d,) float32 or None. Returns (out, v)."""
    if backend == "reference":
        return _reference_op(x, center, params, key, stream, output_norm)
    if backend in ("cpu", "cuda"):
        out = torch.empty_like(x)
        v = torch.empty_like(x)
        _native.native().identity_dp(
            _native.capsule(x), None if center is None else _native.capsule(center), key, stream,
            _native.capsule(table_on(params, x.device)), params.n_bits, params.log2_granularity,
            params.kernel_clip_radius, output_norm, _native.capsule(out), _native.capsule(v),
            _native.cuda_stream_of(x))
        return out, v
    if backend == "triton":
        from ..kernels.triton import identity_dp as _tri
        return _tri.identity_dp(x, center, key, stream, table_on(params, x.device), params.n_bits,
                                params.words_per_row, params.log2_granularity,
                                params.kernel_clip_radius, output_norm)
    raise ValueError(f"unknown backend {backend!r}")
