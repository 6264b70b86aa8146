"""The warp kernels (cpu, cuda, triton) against the float64 reference
(identitydp_fast/reference/warp_affine.py), on random images and transforms at odd
sizes, uint8 and float32 inputs, with and without truncation. The kernels compute in
float64 in the reference's order and round once: they must equal the reference's
float64 result rounded to float32 (no tolerance beyond that single rounding)."""
from __future__ import annotations

import math

import pytest
import torch

from identitydp_fast.ops.warp_affine import warp_affine
from identitydp_fast.reference.warp_affine import warp_affine as reference_warp


def _random_similarity(n: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    ang = (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5) * 1.2
    s = 0.5 + torch.rand(n, generator=gen, dtype=torch.float64) * 1.5
    tx = (torch.rand(n, generator=gen, dtype=torch.float64) - 0.2) * w
    ty = (torch.rand(n, generator=gen, dtype=torch.float64) - 0.2) * h
    return torch.stack([torch.stack([s * torch.cos(ang), -s * torch.sin(ang), tx], 1),
                        torch.stack([s * torch.sin(ang), s * torch.cos(ang), ty], 1)], 1)


@pytest.mark.parametrize("n,h,w,c,oh,ow", [(1, 37, 53, 3, 150, 150), (3, 250, 250, 3, 17, 129),
                                          (2, 5, 7, 4, 9, 11), (1, 1, 1, 1, 3, 3)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("truncate", [False, True])
def test_kernel_equals_reference(n, h, w, c, oh, ow, dtype, truncate, kernel):
    backend, device = kernel
    gen = torch.Generator().manual_seed(n * 1000 + h)
    if dtype == torch.uint8:
        images = torch.randint(0, 256, (n, h, w, c), generator=gen, dtype=torch.uint8)
    else:
        images = torch.rand(n, h, w, c, generator=gen) * 255
    mats = _random_similarity(n, h, w, gen)
    mean = [float(v) for v in torch.rand(c, generator=gen, dtype=torch.float64) * 128]
    want = reference_warp(images, mats, oh, ow, mean, 1 / 256, truncate).to(torch.float32)
    got = warp_affine(images.to(device), mats.to(device), oh, ow, mean, 1 / 256, truncate, backend)
    assert got.shape == (n, c, oh, ow) and got.dtype == torch.float32
    assert torch.equal(got.cpu(), want), float((got.cpu() - want).abs().max())


def test_non_finite_matrix_reads_zero(kernel):
    backend, device = kernel
    images = torch.full((1, 4, 4, 3), 200, dtype=torch.uint8)
    mats = torch.tensor([[[math.nan, 0, 0], [0, 1, 0]]], dtype=torch.float64)
    got = warp_affine(images.to(device), mats.to(device), 2, 2, None, 1.0, False, backend)
    assert torch.equal(got.cpu(), torch.zeros(1, 3, 2, 2))


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="matrices"):
        warp_affine(torch.zeros(2, 4, 4, 3, dtype=torch.uint8), torch.zeros(1, 2, 3), 4, 4, backend="cpu")
    with pytest.raises(ValueError, match="mean"):
        warp_affine(torch.zeros(1, 4, 4, 3, dtype=torch.uint8), torch.zeros(1, 2, 3), 4, 4,
                    mean=[1.0, 2.0], backend="cpu")
