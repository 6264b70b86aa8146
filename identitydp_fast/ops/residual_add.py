"""Fused residual add + ReLU of dlib's ResNet (add_prev with zero-fill, optional 2x2
average-pooled shortcut). Reference: identitydp_fast/reference/residual_add.py;
kernels: kernels/common/residual_add.h (cpu, cuda), kernels/triton/residual_add.py;
test: tests/test_residual_add.py; benchmark: bench/bench_residual_add.py.

Tensors are logical NCHW; the kernels work on channels-last memory, so a tensor in
``torch.channels_last`` format crosses without a copy, and the result is returned in
channels_last format.
"""
from __future__ import annotations

import torch

from .. import _native


def output_shape(main: torch.Tensor, shortcut: torch.Tensor, pool_shortcut: bool) -> tuple[int, ...]:
    """(N, C, H, W) = elementwise max of main's and the (pooled) shortcut's shapes."""
    n, cm, hm, wm = main.shape
    _, cs, hs, ws = shortcut.shape
    if pool_shortcut:
        hs, ws = hs // 2, ws // 2
    return n, max(cm, cs), max(hm, hs), max(wm, ws)


def residual_add_relu(main: torch.Tensor, shortcut: torch.Tensor, pool_shortcut: bool,
                      backend: str = "reference") -> torch.Tensor:
    """relu(zero_fill(main) + zero_fill(pool ? avgpool2x2(shortcut) : shortcut)), (N,C,H,W)."""
    if backend == "reference":
        from ..reference.residual_add import residual_add_relu as reference_op
        return reference_op(main, shortcut, pool_shortcut)
    if main.dim() != 4 or shortcut.dim() != 4 or main.shape[0] != shortcut.shape[0]:
        raise ValueError(f"main and shortcut must be (N, C, H, W) with the same N, got "
                         f"{tuple(main.shape)} and {tuple(shortcut.shape)}")
    if main.dtype != shortcut.dtype or main.device != shortcut.device:
        raise TypeError(f"main ({main.dtype}, {main.device}) and shortcut ({shortcut.dtype}, "
                        f"{shortcut.device}) must share dtype and device")
    from .aad import KERNEL_DTYPES
    if backend in KERNEL_DTYPES and main.dtype not in KERNEL_DTYPES[backend]:
        raise TypeError(f"backend={backend!r} takes {KERNEL_DTYPES[backend]}, got {main.dtype}; "
                        "use backend='triton' (half precision) or 'reference'")
    n, c, h, w = output_shape(main, shortcut, pool_shortcut)
    main_nhwc = main.permute(0, 2, 3, 1).contiguous()  # no copy for channels_last input
    sc_nhwc = shortcut.permute(0, 2, 3, 1).contiguous()
    out = torch.empty((n, h, w, c), dtype=main.dtype, device=main.device)
    if backend in ("cpu", "cuda"):
        _native.native().residual_add_relu(_native.capsule(main_nhwc), _native.capsule(sc_nhwc),
                                           bool(pool_shortcut), _native.capsule(out),
                                           _native.cuda_stream_of(out))
    elif backend == "triton":
        from ..kernels.triton import residual_add as _tri
        _tri.residual_add_relu(main_nhwc, sc_nhwc, pool_shortcut, out)
    else:
        raise ValueError(f"unknown backend {backend!r}")
    return out.permute(0, 3, 1, 2)
