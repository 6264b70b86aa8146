"""ChaCha20 keystream throughput per provider. Op: identitydp_fast/ops/chacha20.py;
reference: identitydp_fast/reference/chacha20.py; test: tests/test_chacha20.py.
Bytes: `size` keystream bytes written per call (reads: none)."""
import pytest

from identitydp_fast.ops import chacha20_keystream

from conftest import provider_device, provider_params

SIZES = [64 * 1024, 4 * 1024 * 1024]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("provider", provider_params())
def test_chacha20_keystream(benchmark, provider, size, sync):
    if provider == "reference" and size > 1024 * 1024:
        pytest.skip("reference timed at the small size only")
    benchmark.group = "chacha20"
    benchmark.extra_info.update(items=size, unit="B")
    key, nonce = bytes(range(32)), bytes(12)
    dev = provider_device(provider)

    def run():
        chacha20_keystream(key, nonce, 0, size, provider, dev)
        sync()

    benchmark(run)
