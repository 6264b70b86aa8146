"""The AAD layer's fused ops (instance norm, blend + ReLU, bilinear x2 + residual) on
every backend against the float64 reference (identitydp_fast/reference/aad.py).

Accuracy rule (STYLE.md 5): the kernel's max error against the reference run in float64
is at most twice the float32 torch reference's own error, plus atol = 4 float32 ulps of
the largest |output| (2**-21 * max|want|): the kernels' last operations are float32
and may round differently from torch's (multiply by rstd instead of dividing by the
std; FMA contraction and expf on a GPU). Odd sizes: C = 1, 3, 97; H, W = 1, 5, 17, 64;
N = 1, 3; channels-last and contiguous inputs.
"""
from __future__ import annotations

import pytest
import torch

from identitydp_fast import _native
from identitydp_fast.ops import aad as ops

reference = pytest.importorskip("identitydp_fast.reference.aad")

SHAPES = [  # (N, C, H, W)
    (1, 1, 1, 1),
    (3, 1, 5, 17),
    (1, 3, 17, 1),
    (3, 3, 64, 5),
    (1, 97, 5, 5),
    (3, 97, 17, 64),
    (1, 97, 64, 64),
    (3, 3, 1, 64),
    (2, 16, 64, 64),
]


def _atol(want: torch.Tensor) -> float:
    return 2.0 ** -21 * max(float(want.abs().max()), 1.0) if want.numel() else 0.0


def _check(got: torch.Tensor, want64: torch.Tensor, torch32: torch.Tensor) -> None:
    assert got.shape == want64.shape
    assert got.dtype == torch.float32
    if want64.numel() == 0:
        return
    err = (got.cpu().double() - want64).abs().max()
    torch_err = (torch32.cpu().double() - want64).abs().max()
    assert err <= 2 * torch_err + _atol(want64), (float(err), float(torch_err), _atol(want64))


def _layout(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return t.to(memory_format=torch.channels_last) if channels_last else t.contiguous()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("offset", [0.0, 100.0], ids=["centred", "offset100"])
def test_instance_norm(shape, channels_last, offset, kernel):
    backend, device = kernel
    g = torch.Generator().manual_seed(hash((shape, offset)) % 2**31)
    h = torch.randn(shape, generator=g) * 3.0 + offset  # |mean| >> std tests the reduction
    h = _layout(h.to(device), channels_last)
    want = reference.instance_norm(h.cpu().double())
    got = ops.instance_norm(h, backend=backend)
    _check(got, want, reference.instance_norm(h.cpu()))
    assert got.is_contiguous(memory_format=torch.channels_last)


def test_instance_norm_deterministic_and_eps(kernel):
    backend, device = kernel
    h = torch.randn(3, 97, 17, 64, device=device)
    a = ops.instance_norm(h, 1e-3, backend=backend)
    b = ops.instance_norm(h, 1e-3, backend=backend)
    assert torch.equal(a, b)
    _check(a, reference.instance_norm(h.cpu().double(), 1e-3), reference.instance_norm(h.cpu(), 1e-3))
    # a constant channel normalises to 0, not NaN (var = 0, eps > 0)
    const = torch.full((1, 3, 5, 5), 7.25, device=device)
    assert torch.equal(ops.instance_norm(const, backend=backend).cpu(), torch.zeros(1, 3, 5, 5))


def _blend_inputs(shape, device, channels_last, seed):
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    h_hat, ga, ba = (torch.randn(shape, generator=g) for _ in range(3))
    gi, bi = torch.randn(n, c, generator=g), torch.randn(n, c, generator=g)
    logits = torch.randn(n, 1, h, w, generator=g) * 4.0  # saturating and mid-range masks
    four = [_layout(t.to(device), channels_last) for t in (h_hat, ga, ba, logits)]
    return four[0], four[1], four[2], gi.to(device), bi.to(device), four[3]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("relu", [True, False], ids=["relu", "norelu"])
def test_aad_blend_relu(shape, channels_last, relu, kernel):
    backend, device = kernel
    args = _blend_inputs(shape, device, channels_last, seed=sum(shape) + relu)
    want = reference.aad_blend_relu(*[a.cpu().double() for a in args], relu=relu)
    got = ops.aad_blend_relu(*args, relu=relu, backend=backend)
    _check(got, want, reference.aad_blend_relu(*[a.cpu() for a in args], relu=relu))
    assert got.is_contiguous(memory_format=torch.channels_last)
    if relu:
        assert (got >= 0).all()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("with_residual", [False, True], ids=["up", "up+res"])
def test_upsample_bilinear2x(shape, channels_last, with_residual, kernel):
    backend, device = kernel
    n, c, h, w = shape
    g = torch.Generator().manual_seed(sum(shape) + 7 * with_residual)
    x = _layout(torch.randn(shape, generator=g).to(device), channels_last)
    res = (_layout(torch.randn(n, c, 2 * h, 2 * w, generator=g).to(device), channels_last)
           if with_residual else None)
    want = reference.upsample_bilinear2x(x.cpu().double())
    torch32 = reference.upsample_bilinear2x(x.cpu())
    if res is not None:
        want, torch32 = want + res.cpu().double(), torch32 + res.cpu()
    got = ops.upsample_bilinear2x(x, res, backend=backend)
    _check(got, want, torch32)
    assert got.is_contiguous(memory_format=torch.channels_last)


# ---- half precision (Triton only: float32 arithmetic, one rounding on store) ----------

HALF = {torch.float16: 10, torch.bfloat16: 7}  # explicit mantissa bits


def _check_half(got: torch.Tensor, want64: torch.Tensor, dtype: torch.dtype) -> None:
    """Within one unit of the storage format's rounding of the exact result: |err| <=
    2^-bits |want| (twice the half-ulp of a single rounding), plus float32-level slack."""
    assert got.dtype == dtype and got.shape == want64.shape
    err = (got.cpu().double() - want64).abs()
    bound = 2.0 ** -HALF[dtype] * want64.abs() + _atol(want64) * 4
    assert bool((err <= bound).all()), float((err - bound).max())


HALF_SHAPES = [(1, 1, 1, 1), (3, 97, 17, 5), (2, 16, 64, 64)]


@pytest.mark.parametrize("dtype", list(HALF), ids=["fp16", "bf16"])
@pytest.mark.parametrize("shape", HALF_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_half_precision(shape, dtype, kernel):
    """Triton takes float16 / bfloat16 storage; the C++/CUDA kernels refuse it by name."""
    backend, device = kernel
    g = torch.Generator().manual_seed(hash((shape, str(dtype))) % 2**31)
    n, c, hh, ww = shape
    h = (torch.randn(shape, generator=g) * 2 + 1).to(dtype)
    if backend != "triton":
        with pytest.raises(TypeError, match="backend='triton'"):
            ops.instance_norm(h.to(device), backend=backend)
        return
    hd = h.to(device, memory_format=torch.channels_last)
    _check_half(ops.instance_norm(hd, backend=backend),
                reference.instance_norm(h.double()), dtype)
    ga, ba = (torch.randn(shape, generator=g).to(dtype) for _ in range(2))
    gi, bi = (torch.randn(n, c, generator=g).to(dtype) for _ in range(2))
    lg = (torch.randn(n, 1, hh, ww, generator=g) * 3).to(dtype)
    want = reference.aad_blend_relu(*(t.double() for t in (h, ga, ba, gi, bi, lg)), True)
    got = ops.aad_blend_relu(*(t.to(device) for t in (hd, ga, ba, gi, bi, lg)), True,
                             backend=backend)
    _check_half(got, want, dtype)
    res = torch.randn(n, c, 2 * hh, 2 * ww, generator=g).to(dtype)
    want = reference.upsample_bilinear2x(h.double()) + res.double()
    _check_half(ops.upsample_bilinear2x(hd, res.to(device), backend=backend), want, dtype)


# ---- errors at the Python boundary ---------------------------------------------------

def test_python_boundary_errors():
    h = torch.randn(2, 3, 4, 5)
    with pytest.raises(ValueError, match="h must be a 4-D"):
        ops.instance_norm(torch.randn(3, 4, 5), backend="cpu")
    with pytest.raises(TypeError, match=r"h must be one of \(torch.float32,\) for backend='cpu', got torch.float64"):
        ops.instance_norm(h.double(), backend="cpu")
    with pytest.raises(ValueError, match="eps must be a finite number >= 0, got -1"):
        ops.instance_norm(h, -1.0, backend="cpu")
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        ops.instance_norm(h, backend="gpu")
    gi, bi, lg = torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 1, 4, 5)
    with pytest.raises(ValueError, match=r"gamma_att must have h_hat's shape \(2, 3, 4, 5\)"):
        ops.aad_blend_relu(h, torch.randn(2, 3, 4, 4), h, gi, bi, lg, backend="cpu")
    with pytest.raises(ValueError, match=r"beta_id must have shape \(N, C\) = \(2, 3\)"):
        ops.aad_blend_relu(h, h, h, gi, torch.randn(2, 4), lg, backend="cpu")
    with pytest.raises(ValueError, match=r"mask_logits must have shape \(N, 1, H, W\)"):
        ops.aad_blend_relu(h, h, h, gi, bi, torch.randn(2, 3, 4, 5), backend="cpu")
    with pytest.raises(TypeError, match="mask_logits is torch.float16 but h_hat is torch.float32"):
        ops.aad_blend_relu(h, h, h, gi, bi, lg.half(), backend="triton")
    with pytest.raises(TypeError, match="h must be one of .* for backend='cpu', got torch.float16"):
        ops.instance_norm(h.half(), backend="cpu")
    with pytest.raises(ValueError, match=r"residual must have shape \(N, C, 2H, 2W\)"):
        ops.upsample_bilinear2x(h, torch.randn(2, 3, 8, 9), backend="cpu")


# ---- errors in C++ (_C re-checks what it relies on) ----------------------------------

@pytest.mark.skipif(_native._C is None, reason="identitydp_fast._C is not built")
def test_native_checks():
    C, cap = _native.native(), _native.capsule
    h = torch.randn(2, 4, 5, 3)  # NHWC
    with pytest.raises(ValueError, match=r"out: dimension 2 must equal h's shape \(2, 4, 5, 3\)"):
        C.instance_norm(cap(h), 1e-5, cap(torch.empty(2, 4, 6, 3)))
    with pytest.raises(TypeError, match="h: expected dtype float32, got float64"):
        C.instance_norm(cap(h.double()), 1e-5, cap(torch.empty(2, 4, 5, 3)))
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        C.instance_norm(cap(h), float("nan"), cap(torch.empty_like(h)))
    with pytest.raises(ValueError, match="h: expected a contiguous"):
        C.instance_norm(cap(h.transpose(1, 2)), 1e-5, cap(torch.empty(2, 5, 4, 3)))
    gi, bi, lg = torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 4, 5)
    with pytest.raises(ValueError, match="gamma_id: dimension 1 must equal h_hat's channel count C"):
        C.aad_blend_relu(cap(h), cap(h), cap(h), cap(torch.randn(2, 4)), cap(bi), cap(lg), True,
                         cap(torch.empty_like(h)))
    with pytest.raises(ValueError, match="mask_logits: expected a 3-D array"):
        C.aad_blend_relu(cap(h), cap(h), cap(h), cap(gi), cap(bi), cap(lg[:, None]), True,
                         cap(torch.empty_like(h)))
    with pytest.raises(ValueError, match="out: dimension 1 must equal 2 \\* x's height"):
        C.upsample_bilinear2x(cap(h), None, cap(torch.empty(2, 4, 10, 3)))
    with pytest.raises(ValueError, match="residual: dimension 2 must equal out's shape"):
        C.upsample_bilinear2x(cap(h), cap(torch.empty(2, 8, 9, 3)), cap(torch.empty(2, 8, 10, 3)))
