"""Fused residual add + ReLU (dlib ResNet's add_prev with zero-fill and the pooled
shortcut) per provider, on the encoder's real shapes at batch 32. Op:
identitydp_fast/ops/residual_add.py; reference: identitydp_fast/reference/residual_add.py;
test: tests/test_residual_add.py. Bytes: main + shortcut read, out written (fp32)."""
import pytest
import torch

from identitydp_fast.ops.residual_add import output_shape, residual_add_relu

from conftest import provider_device, provider_params

CASES = {  # name -> (main, shortcut, pool), batch 32
    "same-72x72x32": ((32, 32, 72, 72), (32, 32, 72, 72), False),
    "down-36x36x64": ((32, 64, 36, 36), (32, 32, 72, 72), True),
    "down-3x3x256": ((32, 256, 3, 3), (32, 128, 9, 9), True),
}


@pytest.mark.parametrize("size", list(CASES))
@pytest.mark.parametrize("provider", provider_params())
def test_residual_add(benchmark, provider, size, sync):
    main_shape, sc_shape, pool = CASES[size]
    dev = provider_device(provider)
    main = torch.randn(main_shape, device=dev).to(memory_format=torch.channels_last)
    sc = torch.randn(sc_shape, device=dev).to(memory_format=torch.channels_last)
    n_bytes = 4 * (main.numel() + sc.numel() + torch.Size(output_shape(main, sc, pool)).numel())
    benchmark.group = "residual_add"
    benchmark.extra_info.update(items=n_bytes, unit="B")

    def run():
        residual_add_relu(main, sc, pool, provider)
        sync()

    benchmark(run)
