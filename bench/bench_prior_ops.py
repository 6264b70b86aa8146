"""The prior engine's fused ops per provider on the prior-256 render's real shapes, batch 1:
block 3 (512 -> 128 channels at 64 px) and block 4 (128 px) of MobileStyleGAN, and the
whole 256 render (engine vs reference generator). Ops: identitydp_fast/ops/prior.py;
reference: identitydp_fast/reference/prior_ops.py; tests: tests/test_prior_ops.py,
tests/test_prior_engine.py. Inputs channels-last float32.

Bytes (items, unit B), the minimum traffic of the fused kernels, E = N C H W (output):
  prior_dwconv    4 * 2E               x read once (taps folded with the style), out written
  prior_haar      4 * 2E               4C bands at H read, C at 2H written
  prior_epilogue  4 * 2E               y read, out written (noise and bias are small)
"""
import pytest
import torch

from identitydp_fast.ops.prior import bias_noise_lrelu, modulated_dwconv3x3, modulated_inverse_haar

from conftest import provider_device, provider_params

N = 1
CASES = {"128x64x64": (128, 64, 64), "256x128x128": (256, 128, 128)}


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.to(memory_format=torch.channels_last)


@pytest.mark.parametrize("size", list(CASES))
@pytest.mark.parametrize("provider", provider_params())
def test_prior_dwconv(benchmark, provider, size, sync):
    c, h, w = CASES[size]
    dev = provider_device(provider)
    x = _cl(torch.randn(N, c, h, w, device=dev))
    s, wt = torch.randn(N, c, device=dev), torch.randn(c, 3, 3, device=dev)
    benchmark.group = "prior_dwconv"
    benchmark.extra_info.update(items=4 * 2 * x.numel(), unit="B")

    def run():
        modulated_dwconv3x3(x, s, wt, backend=provider)
        sync()

    benchmark(run)


@pytest.mark.parametrize("size", list(CASES))
@pytest.mark.parametrize("provider", provider_params())
def test_prior_haar(benchmark, provider, size, sync):
    c, h, w = CASES[size]
    dev = provider_device(provider)
    x = _cl(torch.randn(N, 4 * c, h // 2, w // 2, device=dev))
    s = torch.randn(N, 4 * c, device=dev)
    benchmark.group = "prior_haar"
    benchmark.extra_info.update(items=4 * 2 * N * c * h * w, unit="B")

    def run():
        modulated_inverse_haar(x, s, backend=provider)
        sync()

    benchmark(run)


@pytest.mark.parametrize("size", list(CASES))
@pytest.mark.parametrize("provider", provider_params())
def test_prior_epilogue(benchmark, provider, size, sync):
    c, h, w = CASES[size]
    dev = provider_device(provider)
    y = _cl(torch.randn(N, c, h, w, device=dev))
    b, nz = torch.randn(c, device=dev), torch.randn(h, w, device=dev)
    benchmark.group = "prior_epilogue"
    benchmark.extra_info.update(items=4 * 2 * y.numel(), unit="B")

    def run():
        bias_noise_lrelu(y, b, nz, backend=provider)
        sync()

    benchmark(run)


@pytest.mark.parametrize("size", ["256"])
@pytest.mark.parametrize("provider", provider_params())
def test_prior_render256(benchmark, provider, size, sync):
    """The whole prior-256 generator call, batch 1 (packaged weights)."""
    from identitydp_fast.pipeline.generate import DEFAULT_MODEL_PATH, Generator, load_model

    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip("the prior-256 weights are not in the tree")
    dev = torch.device(provider_device(provider))
    model, _ = load_model("prior-256", dev)
    gen = Generator(model, provider, dev)
    x = torch.rand(N, 3, 256, 256, device=dev) * 2 - 1
    ident = torch.nn.functional.normalize(torch.randn(N, 128, device=dev), dim=1)
    benchmark.group = "prior_render256"

    def run():
        gen(x, ident)
        sync()

    benchmark(run)
