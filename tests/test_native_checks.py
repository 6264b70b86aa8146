"""The C++ boundary re-checks what it relies on: wrong dtype, rank, shape, strides,
key/nonce sizes and counter ranges raise Python exceptions naming the argument, never
a crash or an out-of-bounds read. These call identitydp_fast._C directly, bypassing
the Python validation."""
from __future__ import annotations

import math

import pytest
import torch
from torch.utils.dlpack import to_dlpack

from identitydp_fast import _native
from identitydp_fast.ops._tables import table_on
from identitydp_fast.privacy.accounting import laplace_params

pytestmark = pytest.mark.skipif(_native._C is None, reason="identitydp_fast._C is not built")

P = laplace_params(1.0, 2 * math.sqrt(8), 8)


def table():
    return to_dlpack(table_on(P, torch.device("cpu")))


def dp_call(x=None, center=None, out=None, v=None, tbl=None, n_bits=None, key=bytes(32)):
    x = torch.randn(3, 8) if x is None else x
    out = torch.empty(3, 8) if out is None else out
    v = torch.empty(3, 8) if v is None else v
    _native._C.identity_dp(to_dlpack(x), center, key, 0, tbl if tbl is not None else table(),
                           P.n_bits if n_bits is None else n_bits, P.log2_granularity,
                           P.kernel_clip_radius, 1.0, to_dlpack(out), to_dlpack(v))


def test_valid_call_works():
    dp_call()


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(x=torch.randn(3, 8, dtype=torch.float64)), TypeError, "x: expected dtype float32, got float64"),
    (dict(x=torch.randn(24)), ValueError, "x: expected a 2-D array, got 1-D"),
    (dict(x=torch.randn(8, 3).t()), ValueError, "x: expected a contiguous"),
    (dict(out=torch.empty(2, 8)), ValueError, r"out: dimension 0 must equal x.shape\[0\]"),
    (dict(v=torch.empty(3, 7)), ValueError, r"v: dimension 1 must equal x.shape\[1\]"),
    (dict(center=to_dlpack(torch.zeros(7))), ValueError, r"center: dimension 0 must equal"),
    (dict(tbl=to_dlpack(torch.zeros(3, 2, dtype=torch.int32))), ValueError, r"table: dimension 0 must equal n_bits \+ 1"),
    (dict(tbl=to_dlpack(torch.zeros(P.n_bits + 1, P.words_per_row))), TypeError, "table: expected dtype uint32 or int32"),
    (dict(n_bits=0), ValueError, "n_bits must be in"),
    (dict(key=bytes(16)), ValueError, "key: expected 32 bytes, got 16"),
    (dict(center=torch.zeros(8)), TypeError, "DLPack capsule"),
])
def test_identity_dp_rejects(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        dp_call(**kwargs)


def test_capsule_cannot_be_a_used_one():
    cap = to_dlpack(torch.randn(3, 8))
    torch.utils.dlpack.from_dlpack(cap)  # consumes it (renamed 'used_dltensor')
    with pytest.raises(TypeError, match="unconsumed DLPack capsule"):
        _native._C.identity_dp(cap, None, bytes(32), 0, table(), P.n_bits, P.log2_granularity,
                               1.0, 1.0, to_dlpack(torch.empty(3, 8)), to_dlpack(torch.empty(3, 8)))


def test_keystream_rejects():
    out = torch.empty(65, dtype=torch.uint8)
    with pytest.raises(ValueError, match="nonce: expected 12 bytes"):
        _native._C.chacha20_keystream(bytes(32), bytes(8), 0, to_dlpack(out))
    with pytest.raises(ValueError, match="32-bit block counter"):
        _native._C.chacha20_keystream(bytes(32), bytes(12), 2**32 - 1, to_dlpack(out))
    with pytest.raises(TypeError, match="out: expected dtype uint8"):
        _native._C.chacha20_keystream(bytes(32), bytes(12), 0, to_dlpack(torch.empty(4)))


def test_discrete_laplace_rejects():
    out = torch.empty(10, dtype=torch.int64)
    with pytest.raises(ValueError, match="sample_offset"):
        _native._C.discrete_laplace(bytes(32), 0, 2**32 - 5, table(), P.n_bits, to_dlpack(out))
    with pytest.raises(TypeError, match="out: expected dtype int64"):
        _native._C.discrete_laplace(bytes(32), 0, 0, table(), P.n_bits,
                                    to_dlpack(torch.empty(10, dtype=torch.int32)))


def test_cuda_tensor_without_cuda_build_is_refused():
    if not torch.cuda.is_available() or _native._C.with_cuda:
        pytest.skip("needs a GPU and a _C built without CUDA")
    x = torch.randn(3, 8, device="cuda")
    with pytest.raises(ValueError, match="built without CUDA"):
        dp_call(x=x, out=torch.empty_like(x), v=torch.empty_like(x))
