"""Batched affine warp + bilinear + normalisation (chip extraction) per provider.
Op: identitydp_fast/ops/warp_affine.py; reference: identitydp_fast/reference/warp_affine.py;
test: tests/test_warp_affine_kernels.py. Items: output pixels (x3 channels);
bytes ~ 4 taps x 3 uint8 read + 3 float32 written per pixel."""
import math

import pytest
import torch

from identitydp_fast.ops.warp_affine import warp_affine

from conftest import provider_device, provider_params

CASES = {  # name -> (batch, input H=W, output side)
    "chips-32x150": (32, 250, 150),
    "chip-1x150": (1, 250, 150),
    "crops-8x256": (8, 1024, 256),
}


@pytest.mark.parametrize("size", list(CASES))
@pytest.mark.parametrize("provider", provider_params())
def test_warp_affine(benchmark, provider, size, sync):
    n, side, out = CASES[size]
    dev = provider_device(provider)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, side, side, 3), generator=gen, dtype=torch.uint8).to(dev)
    ang, s = 0.2, side / out * 0.6
    m = torch.tensor([[s * math.cos(ang), -s * math.sin(ang), side * 0.2],
                      [s * math.sin(ang), s * math.cos(ang), side * 0.15]], dtype=torch.float64)
    mats = m.expand(n, 2, 3).contiguous().to(dev)
    benchmark.group = "warp_affine"
    benchmark.extra_info.update(items=n * out * out, unit="px")

    def run():
        warp_affine(images, mats, out, out, (122.782, 117.001, 104.298), 1 / 256, False, provider)
        sync()

    benchmark(run)
