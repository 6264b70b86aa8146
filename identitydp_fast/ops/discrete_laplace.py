"""Discrete Laplace noise op. Reference: identitydp_fast/reference/discrete_laplace.py;
kernels: kernels/common/discrete_laplace.h (cpu, cuda), kernels/triton/discrete_laplace.py;
tests: tests/test_discrete_laplace.py; benchmark: bench/bench_discrete_laplace.py."""
from __future__ import annotations

import torch

from .. import _native
from ..privacy.accounting import LaplaceParams
from ..reference.discrete_laplace import discrete_laplace as _reference_op
from ._tables import table_on


def discrete_laplace(key: bytes, stream: int, n: int, params: LaplaceParams,
                     backend: str = "reference", device: torch.device | str = "cpu",
                     sample_offset: int = 0) -> torch.Tensor:
    """(n,) int64 tensor: K for sample indices sample_offset .. sample_offset + n - 1."""
    dev = torch.device(device)
    if n < 0 or sample_offset < 0 or sample_offset + n > 2**32:
        raise ValueError(f"need 0 <= sample_offset and sample_offset + n <= 2^32, got "
                         f"sample_offset={sample_offset}, n={n}")
    if backend == "reference":
        samples = torch.arange(sample_offset, sample_offset + n, dtype=torch.int64, device=dev)
        return _reference_op(key, stream, samples, params.table, params.n_bits)
    if backend in ("cpu", "cuda"):
        out = torch.empty(n, dtype=torch.int64, device=dev)
        _native.native().discrete_laplace(key, stream, sample_offset, _native.capsule(table_on(params, dev)),
                                          params.n_bits, _native.capsule(out), _native.cuda_stream_of(out))
        return out
    if backend == "triton":
        from ..kernels.triton import discrete_laplace as _tri
        return _tri.discrete_laplace(key, stream, n, table_on(params, dev), params.n_bits,
                                     params.words_per_row, dev, sample_offset=sample_offset)
    raise ValueError(f"unknown backend {backend!r}")
