"""The fused epsilon-IdentityDP op, rows per second per provider (d = 128, centred,
clip C = 4, epsilon = 10). Op: identitydp_fast/ops/identity_dp.py; reference:
identitydp_fast/reference/identity_dp.py; test: tests/test_identity_dp.py.
Bytes per row: 512 read + 1024 written; noise: 128 samples per row."""
import math

import pytest
import torch

from identitydp_fast.ops import identity_dp
from identitydp_fast.privacy.accounting import laplace_params

from conftest import provider_device, provider_params

SIZES = [1, 64, 4096]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("provider", provider_params())
def test_identity_dp(benchmark, provider, size, sync):
    benchmark.group = "identity_dp"
    benchmark.extra_info.update(items=size, unit="rows")
    dev = provider_device(provider)
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(size, 128, generator=gen) + 2).to(dev)
    center = (torch.ones(128) / math.sqrt(128)).to(dev)
    params = laplace_params(10.0, 8.0, 128)

    def run():
        identity_dp(x, center, params, bytes(32), 0, 1.0, provider)
        sync()

    benchmark(run)
