"""The fused residual add + ReLU (dlib add_prev zero-fill semantics) on every backend
against the reference (identitydp_fast/reference/residual_add.py), in fp32, on the
shapes dlib's ResNet uses and on odd ones. The kernels compute the same float32
operations in the same order, so the results must agree to 1 ulp-scale (atol 1e-6)."""
from __future__ import annotations

import pytest
import torch

from identitydp_fast.ops.residual_add import residual_add_relu

reference = pytest.importorskip("identitydp_fast.reference.residual_add")

SHAPES = [  # (main NCHW, shortcut NCHW, pool)
    ((1, 32, 72, 72), (1, 32, 72, 72), False),   # same-shape block
    ((2, 64, 36, 36), (2, 32, 72, 72), True),    # down block, channels double
    ((3, 128, 9, 9), (3, 64, 18, 18), True),
    ((1, 256, 3, 3), (1, 128, 9, 9), True),      # 3x3 main vs 4x4 pooled shortcut
    ((1, 256, 1, 1), (1, 256, 5, 5), True),      # 1x1 vs 2x2
    ((5, 7, 11, 13), (5, 3, 17, 9), True),       # odd everything
    ((2, 3, 5, 4), (2, 9, 2, 7), False),
]


@pytest.mark.parametrize("main_shape,sc_shape,pool", SHAPES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_reference(main_shape, sc_shape, pool, channels_last, kernel):
    backend, device = kernel
    main = torch.randn(main_shape, device=device)
    sc = torch.randn(sc_shape, device=device)
    if channels_last:
        main = main.to(memory_format=torch.channels_last)
        sc = sc.to(memory_format=torch.channels_last)
    want = reference.residual_add_relu(main.cpu().double(), sc.cpu().double(), pool)
    got = residual_add_relu(main, sc, pool, backend)
    assert got.shape == want.shape
    # the error of fp32 against fp64: 4 adds of O(1) values; allow 2x torch's own fp32 error
    torch_err = (reference.residual_add_relu(main.cpu(), sc.cpu(), pool).double() - want).abs().max()
    err = (got.cpu().double() - want).abs().max()
    assert err <= 2 * torch_err + 1e-6, (float(err), float(torch_err))


def test_rejects_mismatched_batch():
    with pytest.raises(ValueError, match="same N"):
        residual_add_relu(torch.randn(2, 3, 4, 4), torch.randn(3, 3, 4, 4), False, "cpu")
