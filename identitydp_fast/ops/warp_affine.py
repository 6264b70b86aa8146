"""Batched affine warp + bilinear sampling + normalisation + layout change (the chip and
crop extraction). Reference: identitydp_fast/reference/warp_affine.py; kernels:
kernels/common/warp_affine.h (cpu, cuda), kernels/triton/warp_affine.py; test:
tests/test_warp_affine_kernels.py; benchmark: bench/bench_warp_affine.py.

The kernels compute in float64 and write float32 in channels-last memory: the result
is a logical (N, C, out_h, out_w) tensor in torch.channels_last format, ready for a
channels-last convolution.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .. import _native


def warp_affine(images: torch.Tensor, matrices: torch.Tensor, out_h: int, out_w: int,
                mean: Sequence[float] | None = None, scale: float = 1.0, truncate: bool = False,
                backend: str = "reference") -> torch.Tensor:
    """(N, C, out_h, out_w) float32 = (bilinear(images, M @ [c, r, 1]) - mean) * scale.

    images: (N, H, W, C) uint8 or float; matrices: (N, 2, 3), output -> input pixels.
    """
    from ..reference.warp_affine import _check_warp_args, warp_affine as reference_op
    if backend == "reference":  # float64 when images or matrices are: round like the kernels
        return reference_op(images, matrices, out_h, out_w, mean, scale, truncate).to(torch.float32)
    c, _, _ = _check_warp_args(images, matrices, out_h, out_w, mean, scale)
    dev = images.device
    imgs = images if images.dtype == torch.uint8 else images.to(torch.float32)
    imgs = imgs.contiguous()
    mats = matrices.to(device=dev, dtype=torch.float64).contiguous()
    mean_t = torch.zeros(c, dtype=torch.float64, device=dev) if mean is None else \
        torch.as_tensor(mean, dtype=torch.float64, device=dev).reshape(-1).contiguous()
    out = torch.empty((images.shape[0], out_h, out_w, c), dtype=torch.float32, device=dev)
    if backend in ("cpu", "cuda"):
        _native.native().warp_affine(_native.capsule(imgs), _native.capsule(mats),
                                     _native.capsule(mean_t), float(scale), bool(truncate),
                                     _native.capsule(out), _native.cuda_stream_of(out))
    elif backend == "triton":
        from ..kernels.triton import warp_affine as _tri
        _tri.warp_affine(imgs, mats, mean_t, float(scale), truncate, out)
    else:
        raise ValueError(f"unknown backend {backend!r}")
    return out.permute(0, 3, 1, 2)
