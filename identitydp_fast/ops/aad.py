"""The AAD layer's fused ops (FaceShifter's adaptive attentional denormalisation):
instance norm, mask-blended modulation + ReLU, and the upsampling stage's bilinear x2
(+ residual add). Reference: identitydp_fast/reference/aad.py; kernels:
kernels/common/aad.h (cpu, cuda: csrc/cpu/aad.cpp, kernels/cuda/aad.cuh),
kernels/triton/aad.py; test: tests/test_aad.py; benchmark: bench/bench_aad.py.

Tensors are logical NCHW; the kernels work on channels-last memory, so tensors in
``torch.channels_last`` format cross without a copy (others are copied once), and the
results are returned in channels_last format. The cpu and cuda kernels take float32,
the Triton kernels float32, float16 or bfloat16 (float32 arithmetic, one rounding on
store: the engine's half-precision mode), the reference any float dtype.
"""
from __future__ import annotations

import math

import torch

from .. import _native
from ..reference.aad import EPS

_KERNEL_BACKENDS = ("cpu", "cuda", "triton")


def _check_backend(backend: str) -> None:
    if backend != "reference" and backend not in _KERNEL_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected 'reference' or one of "
                         f"{_KERNEL_BACKENDS}")


def _check_4d(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor) or t.dim() != 4:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a 4-D (N, C, H, W) tensor, got {shape}")


#: storage dtypes each backend takes (the arithmetic is float32 in every kernel)
KERNEL_DTYPES = {"cpu": (torch.float32,), "cuda": (torch.float32,),
                 "triton": (torch.float32, torch.float16, torch.bfloat16)}


def _check_tensors(backend: str, **tensors: torch.Tensor) -> None:
    """Same device and dtype for all; a floating dtype the backend takes (KERNEL_DTYPES:
    the C++/CUDA kernels are float32-only, Triton also takes float16 / bfloat16)."""
    first_name, first = next(iter(tensors.items()))
    for name, t in tensors.items():
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {first_name} is on {first.device}; "
                             "move them to one device")
        if backend == "reference":
            if not t.is_floating_point():
                raise TypeError(f"{name} must have a floating dtype, got {t.dtype}")
        elif t.dtype not in KERNEL_DTYPES[backend]:
            raise TypeError(f"{name} must be one of {KERNEL_DTYPES[backend]} for "
                            f"backend={backend!r}, got {t.dtype}; convert it, or use "
                            "backend='triton' (half precision) or 'reference'")
        if t.dtype != first.dtype:
            raise TypeError(f"{name} is {t.dtype} but {first_name} is {first.dtype}; use one dtype")


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> contiguous (N, H, W, C); no copy for channels_last input."""
    return t.permute(0, 2, 3, 1).contiguous()


def instance_norm(h: torch.Tensor, eps: float = EPS, backend: str = "reference") -> torch.Tensor:
    """(h - mean) / sqrt(var + eps) per (n, c) over (H, W), biased variance: (N, C, H, W)."""
    _check_backend(backend)
    _check_4d("h", h)
    _check_tensors(backend, h=h)
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if backend == "reference":
        from ..reference.aad import instance_norm as reference_op
        return reference_op(h, eps)
    x = _nhwc(h)
    out = torch.empty_like(x)
    if backend in ("cpu", "cuda"):
        _native.native().instance_norm(_native.capsule(x), float(eps), _native.capsule(out),
                                       _native.cuda_stream_of(out))
    else:
        from ..kernels.triton import aad as _tri
        _tri.instance_norm(x, float(eps), out)
    return out.permute(0, 3, 1, 2)


def aad_blend_relu(h_hat: torch.Tensor, gamma_att: torch.Tensor, beta_att: torch.Tensor,
                   gamma_id: torch.Tensor, beta_id: torch.Tensor, mask_logits: torch.Tensor,
                   relu: bool = True, backend: str = "reference") -> torch.Tensor:
    """relu((1 - m) * (ga * h + ba) + m * (gi * h + bi)), m = sigmoid(mask_logits).

    h_hat, gamma_att, beta_att: (N, C, H, W); gamma_id, beta_id: (N, C);
    mask_logits: (N, 1, H, W). Returns (N, C, H, W).
    """
    _check_backend(backend)
    _check_4d("h_hat", h_hat)
    n, c, hh, ww = h_hat.shape
    for name, t in (("gamma_att", gamma_att), ("beta_att", beta_att)):
        _check_4d(name, t)
        if t.shape != h_hat.shape:
            raise ValueError(f"{name} must have h_hat's shape {tuple(h_hat.shape)}, got "
                             f"{tuple(t.shape)}")
    for name, t in (("gamma_id", gamma_id), ("beta_id", beta_id)):
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (n, c):
            raise ValueError(f"{name} must have shape (N, C) = {(n, c)}, got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    _check_4d("mask_logits", mask_logits)
    if tuple(mask_logits.shape) != (n, 1, hh, ww):
        raise ValueError(f"mask_logits must have shape (N, 1, H, W) = {(n, 1, hh, ww)}, got "
                         f"{tuple(mask_logits.shape)}")
    _check_tensors(backend, h_hat=h_hat, gamma_att=gamma_att, beta_att=beta_att,
                   gamma_id=gamma_id, beta_id=beta_id, mask_logits=mask_logits)
    if backend == "reference":
        from ..reference.aad import aad_blend_relu as reference_op
        return reference_op(h_hat, gamma_att, beta_att, gamma_id, beta_id, mask_logits, relu)
    h, ga, ba = _nhwc(h_hat), _nhwc(gamma_att), _nhwc(beta_att)
    gi, bi = gamma_id.contiguous(), beta_id.contiguous()
    lg = mask_logits.reshape(n, hh, ww).contiguous()  # C = 1: either layout is (N, H, W)
    out = torch.empty_like(h)
    if backend in ("cpu", "cuda"):
        cap = _native.capsule
        _native.native().aad_blend_relu(cap(h), cap(ga), cap(ba), cap(gi), cap(bi), cap(lg),
                                        bool(relu), cap(out), _native.cuda_stream_of(out))
    else:
        from ..kernels.triton import aad as _tri
        _tri.aad_blend_relu(h, ga, ba, gi, bi, lg, bool(relu), out)
    return out.permute(0, 3, 1, 2)


def upsample_bilinear2x(x: torch.Tensor, residual: torch.Tensor | None = None,
                        backend: str = "reference") -> torch.Tensor:
    """Bilinear x2 (align_corners=False, F.interpolate's) of x (N, C, H, W), plus residual
    (N, C, 2H, 2W) when given: (N, C, 2H, 2W)."""
    _check_backend(backend)
    _check_4d("x", x)
    n, c, hh, ww = x.shape
    tensors = {"x": x}
    if residual is not None:
        _check_4d("residual", residual)
        if tuple(residual.shape) != (n, c, 2 * hh, 2 * ww):
            raise ValueError(f"residual must have shape (N, C, 2H, 2W) = "
                             f"{(n, c, 2 * hh, 2 * ww)}, got {tuple(residual.shape)}")
        tensors["residual"] = residual
    _check_tensors(backend, **tensors)
    if backend == "reference":
        from ..reference.aad import upsample_bilinear2x as reference_op
        up = reference_op(x)
        return up if residual is None else up + residual
    xs = _nhwc(x)
    res = None if residual is None else _nhwc(residual)
    out = torch.empty((n, 2 * hh, 2 * ww, c), dtype=x.dtype, device=x.device)
    if backend in ("cpu", "cuda"):
        _native.native().upsample_bilinear2x(_native.capsule(xs),
                                             None if res is None else _native.capsule(res),
                                             _native.capsule(out), _native.cuda_stream_of(out))
    else:
        from ..kernels.triton import aad as _tri
        _tri.upsample_bilinear2x(xs, res, out)
    return out.permute(0, 3, 1, 2)
