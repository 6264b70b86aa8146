"""Discrete Laplace samples per second per provider. Op:
identitydp_fast/ops/discrete_laplace.py; reference: identitydp_fast/reference/discrete_laplace.py;
test: tests/test_discrete_laplace.py. Work per sample: ~2 ChaCha20 blocks (n_bits + 2
words at epsilon 1), 8 bytes written."""
import math

import pytest

from identitydp_fast.ops import discrete_laplace
from identitydp_fast.privacy.accounting import laplace_params

from conftest import provider_device, provider_params

SIZES = [2**14, 2**20]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("provider", provider_params())
def test_discrete_laplace(benchmark, provider, size, sync):
    if provider == "reference" and size > 2**16:
        pytest.skip("reference timed at the small size only")
    benchmark.group = "discrete_laplace"
    benchmark.extra_info.update(items=size, unit="samples")
    params = laplace_params(1.0, 2 * math.sqrt(128), 128)
    dev = provider_device(provider)

    def run():
        discrete_laplace(bytes(32), 0, size, params, provider, dev)
        sync()

    benchmark(run)
