"""The AAD layer's fused ops per provider on the generator's real shapes, batch 8 at
128x128 output: (C, H, W) = (64, 32, 32), (32, 64, 64), (16, 128, 128). Op:
identitydp_fast/ops/aad.py; reference (the torch sequence): identitydp_fast/reference/aad.py;
test: tests/test_aad.py. Inputs and outputs channels-last float32.

Bytes (items, unit B), the minimum traffic of the fused kernels, E = N C H W:
  aad_inorm     4 * 3E                 h read twice (statistics, normalise), out written
  aad_blend     4 * (4E + 2NC + NHW)   h, gamma_att, beta_att read, out written; gamma_id,
                                       beta_id, mask logits read
  aad_upsample  4 * (E/4 + 2E)         x at (H/2, W/2) read, residual read, out written
"""
import pytest
import torch

from identitydp_fast.ops.aad import aad_blend_relu, instance_norm, upsample_bilinear2x

from conftest import provider_device, provider_params

N = 8
CASES = {"64x32x32": (64, 32, 32), "32x64x64": (32, 64, 64), "16x128x128": (16, 128, 128)}


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.to(memory_format=torch.channels_last)


@pytest.mark.parametrize("size", list(CASES))
@pytest.mark.parametrize("provider", provider_params())
def test_aad_inorm(benchmark, provider, size, sync):
    c, h, w = CASES[size]
    dev = provider_device(provider)
    x = _cl(torch.randn(N, c, h, w, device=dev))
    benchmark.group = "aad_inorm"
    benchmark.extra_info.update(items=4 * 3 * x.numel(), unit="B")

    def run():
        instance_norm(x, backend=provider)
        sync()

    benchmark(run)


@pytest.mark.parametrize("size", list(CASES))
@pytest.mark.parametrize("provider", provider_params())
def test_aad_blend(benchmark, provider, size, sync):
    c, h, w = CASES[size]
    dev = provider_device(provider)
    hh, ga, ba = (_cl(torch.randn(N, c, h, w, device=dev)) for _ in range(3))
    gi, bi = torch.randn(N, c, device=dev), torch.randn(N, c, device=dev)
    lg = _cl(torch.randn(N, 1, h, w, device=dev))
    e = hh.numel()
    benchmark.group = "aad_blend"
    benchmark.extra_info.update(items=4 * (4 * e + 2 * N * c + N * h * w), unit="B")

    def run():
        aad_blend_relu(hh, ga, ba, gi, bi, lg, True, backend=provider)
        sync()

    benchmark(run)


@pytest.mark.parametrize("size", list(CASES))
@pytest.mark.parametrize("provider", provider_params())
def test_aad_upsample(benchmark, provider, size, sync):
    c, h, w = CASES[size]
    dev = provider_device(provider)
    x = _cl(torch.randn(N, c, h // 2, w // 2, device=dev))
    res = _cl(torch.randn(N, c, h, w, device=dev))
    benchmark.group = "aad_upsample"
    benchmark.extra_info.update(items=4 * (x.numel() + 2 * res.numel()), unit="B")

    def run():
        upsample_bilinear2x(x, res, backend=provider)
        sync()

    benchmark(run)
