"""The prior engine's fused ops (modulated depthwise 3x3, modulated inverse Haar, bias +
noise + leaky-ReLU epilogue) on every backend against the float64 reference
(identitydp_fast/reference/prior_ops.py), fresh random inputs at odd sizes.

Accuracy rule (as tests/test_aad.py): the kernel's max error against the float64
reference is at most twice the float32 torch reference's own error, plus 4 float32 ulps
of the largest |output| (the depthwise kernel multiplies x by the folded tap w s instead
of (x s) by w, so its rounding differs). Triton's half-precision storage is checked
against the float64 reference within 2x the rounding of one store in that dtype.
"""
from __future__ import annotations

import secrets

import pytest
import torch

from identitydp_fast.ops import prior as ops
from identitydp_fast.reference import prior_ops as reference

SHAPES = [(1, 1, 1, 1), (3, 1, 5, 17), (1, 3, 17, 1), (2, 97, 5, 5), (3, 5, 17, 64), (1, 16, 64, 64)]


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(secrets.randbelow(2**31))


def _layout(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return t.to(memory_format=torch.channels_last) if channels_last else t.contiguous()


def _check(got: torch.Tensor, want64: torch.Tensor, torch32: torch.Tensor) -> None:
    assert got.shape == want64.shape and got.dtype == torch.float32
    if want64.numel() == 0:
        return
    err = (got.cpu().double() - want64).abs().max()
    torch_err = (torch32.cpu().double() - want64).abs().max()
    atol = 2.0 ** -21 * max(float(want64.abs().max()), 1.0)
    assert err <= 2 * torch_err + atol, (float(err), float(torch_err), atol)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_modulated_dwconv3x3(shape, channels_last, kernel):
    backend, device = kernel
    g = _gen()
    n, c, h, w = shape
    x = torch.randn(shape, generator=g)
    style = torch.randn(n, c, generator=g) * 2.0
    weight = torch.randn(c, 3, 3, generator=g)
    want = reference.modulated_dwconv3x3(x.double(), style.double(), weight.double())
    got = ops.modulated_dwconv3x3(_layout(x.to(device), channels_last), style.to(device),
                                  weight.to(device), backend)
    _check(got, want, reference.modulated_dwconv3x3(x, style, weight))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_modulated_inverse_haar(shape, channels_last, kernel):
    backend, device = kernel
    g = _gen()
    n, c, h, w = shape
    x = torch.randn(n, 4 * c, h, w, generator=g)
    style = torch.randn(n, 4 * c, generator=g)
    want = reference.modulated_inverse_haar(x.double(), style.double())
    got = ops.modulated_inverse_haar(_layout(x.to(device), channels_last), style.to(device), backend)
    _check(got, want, reference.modulated_inverse_haar(x, style))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("with_noise", [False, True], ids=["bias", "bias+noise"])
def test_bias_noise_lrelu(shape, with_noise, kernel):
    backend, device = kernel
    g = _gen()
    n, c, h, w = shape
    y = torch.randn(shape, generator=g) * 3.0
    bias = torch.randn(c, generator=g)
    noise = torch.randn(h, w, generator=g) if with_noise else None
    want = reference.bias_noise_lrelu(y.double(), bias.double(), None if noise is None else noise.double())
    got = ops.bias_noise_lrelu(y.to(device), bias.to(device), None if noise is None else noise.to(device),
                               backend)
    _check(got, want, reference.bias_noise_lrelu(y, bias, noise))
    # in place on a channels_last GEMM output: same values, no new memory
    y_cl = y.to(device).to(memory_format=torch.channels_last)
    again = ops.bias_noise_lrelu(y_cl, bias.to(device), None if noise is None else noise.to(device),
                                 backend, inplace=True)
    assert torch.equal(again.cpu(), got.cpu()) and again.data_ptr() == y_cl.data_ptr()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_triton_half_storage(dtype):
    from identitydp_fast import _backends
    if not _backends.available("triton", "cpu"):
        pytest.skip("triton is not available")
    g = _gen()
    x = torch.randn(2, 12, 9, 7, generator=g)
    style = torch.randn(2, 12, generator=g)
    weight = torch.randn(12, 3, 3, generator=g)
    unit = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}[dtype]
    for got, want in [
        (ops.modulated_dwconv3x3(x.to(dtype), style.to(dtype), weight.to(dtype), "triton"),
         reference.modulated_dwconv3x3(x.to(dtype).double(), style.to(dtype).double(), weight.to(dtype).double())),
        (ops.modulated_inverse_haar(x.to(dtype), style.to(dtype), "triton"),
         reference.modulated_inverse_haar(x.to(dtype).double(), style.to(dtype).double())),
    ]:
        assert got.dtype == dtype
        assert float((got.double() - want).abs().max()) <= 2 * unit * float(want.abs().max())


@pytest.mark.parametrize("call,match", [
    (lambda b: ops.modulated_dwconv3x3(torch.randn(1, 3, 4, 4), torch.randn(1, 4), torch.randn(3, 3, 3), b),
     r"style must be \(N, C\)"),
    (lambda b: ops.modulated_dwconv3x3(torch.randn(1, 3, 4, 4), torch.randn(1, 3), torch.randn(3, 1, 3, 3), b),
     r"weight must be \(C, 3, 3\)"),
    (lambda b: ops.modulated_inverse_haar(torch.randn(1, 6, 4, 4), torch.randn(1, 6), b), "4C channels"),
    (lambda b: ops.modulated_inverse_haar(torch.randn(1, 8, 4, 4), torch.randn(2, 8), b), r"style must be \(N, 4C\)"),
    (lambda b: ops.bias_noise_lrelu(torch.randn(1, 3, 4, 4), torch.randn(3), torch.randn(4, 5), b), "noise must be"),
    (lambda b: ops.bias_noise_lrelu(torch.randn(3, 4, 4), torch.randn(3), None, b), "4-D"),
    (lambda b: ops.modulated_dwconv3x3(torch.randn(1, 3, 4, 4).double(), torch.randn(1, 3).double(),
                                       torch.randn(3, 3, 3).double(), b), "float32"),
])
def test_bad_inputs_raise(call, match, kernel):
    backend, _ = kernel
    if backend == "triton" and match == "float32":
        match = "must be one of"
    with pytest.raises((ValueError, TypeError), match=match):
        call(backend)
