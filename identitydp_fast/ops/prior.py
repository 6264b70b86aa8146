"""The prior engine's fused ops (MobileStyleGAN layers): modulated depthwise 3x3,
modulated inverse Haar (the prior's upsampling), and the pointwise conv's bias + noise +
leaky-ReLU epilogue. Reference: identitydp_fast/reference/prior_ops.py; kernels:
kernels/common/prior.h (cpu: csrc/cpu/prior.cpp, cuda: kernels/cuda/prior.cuh),
kernels/triton/prior.py; test: tests/test_prior_ops.py; benchmark: bench/bench_prior_ops.py.

Tensors are logical NCHW; the kernels work on channels-last memory, so tensors in
``torch.channels_last`` format cross without a copy (others are copied once), and the
results are returned in channels_last format. cpu and cuda take float32, Triton float32,
float16 or bfloat16 (float32 arithmetic, one rounding on store), the reference any float.
"""
from __future__ import annotations

import torch

from .. import _native
from .aad import _check_4d, _check_backend, _check_tensors, _nhwc


def _nchw(t: torch.Tensor) -> torch.Tensor:
    """(N, H, W, C) contiguous -> logical (N, C, H, W) in channels_last memory (a view)."""
    return t.permute(0, 3, 1, 2)


def modulated_dwconv3x3(x: torch.Tensor, style: torch.Tensor, weight: torch.Tensor,
                        backend: str = "reference") -> torch.Tensor:
    """depthwise3x3(x * style) with zero padding: x (N, C, H, W), style (N, C), weight
    (C, 3, 3). The kernels fold the style into per-sample taps w[c] s[n, c] (N x 9 x C
    numbers) and read x once."""
    _check_backend(backend)
    _check_4d("x", x)
    n, c = x.shape[:2]
    if style.shape != (n, c):
        raise ValueError(f"style must be (N, C) = {(n, c)}, got {tuple(style.shape)}")
    if weight.shape != (c, 3, 3):
        raise ValueError(f"weight must be (C, 3, 3) = {(c, 3, 3)}, got {tuple(weight.shape)}")
    _check_tensors(backend, x=x, style=style, weight=weight)
    if backend == "reference":
        from ..reference.prior_ops import modulated_dwconv3x3 as reference_op
        return reference_op(x, style, weight)
    xh = _nhwc(x)
    wmod = (weight.reshape(c, 9).t()[None] * style[:, None, :]).contiguous()  # (N, 9, C)
    out = torch.empty_like(xh)
    if backend in ("cpu", "cuda"):
        _native.native().prior_dwconv3x3(_native.capsule(xh), _native.capsule(wmod),
                                         _native.capsule(out), _native.cuda_stream_of(out))
    else:
        from ..kernels.triton import prior as _tri
        _tri.dwconv3x3(xh, wmod, out)
    return _nchw(out)


def modulated_inverse_haar(x: torch.Tensor, style: torch.Tensor,
                           backend: str = "reference") -> torch.Tensor:
    """inverse_haar(x * style): x (N, 4C, H, W) wavelet bands, style (N, 4C) -> (N, C, 2H, 2W)."""
    _check_backend(backend)
    _check_4d("x", x)
    n, c4, h, w = x.shape
    if c4 % 4:
        raise ValueError(f"x must have 4C channels (LL + 3 high bands), got {c4}")
    if style.shape != (n, c4):
        raise ValueError(f"style must be (N, 4C) = {(n, c4)}, got {tuple(style.shape)}")
    _check_tensors(backend, x=x, style=style)
    if backend == "reference":
        from ..reference.prior_ops import modulated_inverse_haar as reference_op
        return reference_op(x, style)
    xh = _nhwc(x)
    st = style.contiguous()
    out = torch.empty((n, 2 * h, 2 * w, c4 // 4), dtype=x.dtype, device=x.device)
    if backend in ("cpu", "cuda"):
        _native.native().prior_haar(_native.capsule(xh), _native.capsule(st), _native.capsule(out),
                                    _native.cuda_stream_of(out))
    else:
        from ..kernels.triton import prior as _tri
        _tri.haar(xh, st, out)
    return _nchw(out)


def bias_noise_lrelu(y: torch.Tensor, bias: torch.Tensor, noise: torch.Tensor | None,
                     backend: str = "reference", inplace: bool = False) -> torch.Tensor:
    """leaky_relu((y + noise) + bias, 0.2): y (N, C, H, W), bias (C,), noise (H, W) or None.
    inplace=True writes into y's memory when y is channels_last contiguous (the engine's
    GEMM output), saving an allocation."""
    _check_backend(backend)
    _check_4d("y", y)
    n, c, h, w = y.shape
    if bias.shape != (c,):
        raise ValueError(f"bias must be (C,) = ({c},), got {tuple(bias.shape)}")
    if noise is not None and noise.shape != (h, w):
        raise ValueError(f"noise must be (H, W) = {(h, w)} or None, got {tuple(noise.shape)}")
    extra = {} if noise is None else {"noise": noise}
    _check_tensors(backend, y=y, bias=bias, **extra)
    if backend == "reference":
        from ..reference.prior_ops import bias_noise_lrelu as reference_op
        return reference_op(y, bias, noise)
    yh = _nhwc(y)
    out = yh if inplace and yh.data_ptr() == y.data_ptr() else torch.empty_like(yh)
    b = bias.contiguous()
    nz = None if noise is None else noise.contiguous()
    if backend in ("cpu", "cuda"):
        _native.native().prior_epilogue(_native.capsule(yh), _native.capsule(b),
                                        None if nz is None else _native.capsule(nz),
                                        _native.capsule(out), _native.cuda_stream_of(out))
    else:
        from ..kernels.triton import prior as _tri
        _tri.epilogue(yh, b, nz, out)
    return _nchw(out)
