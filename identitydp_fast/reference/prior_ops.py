"""The prior engine's fused ops, the plain-PyTorch oracle (logical NCHW, any float dtype).

The MobileStyleGAN prior (reference/mobile_stylegan.py) is a chain of three layer kinds;
the engine (engine/prior.py) runs each as one fused kernel plus, where there is one, a GEMM:

* modulated depthwise 3x3: ``dwconv3x3(x * s)``, s (N, C) the layer's style. The engine
  folds s into the tiny per-sample weights, ``w'[n, c] = w[c] s[n, c]``, so x is read once.
* modulated inverse Haar (the prior's ``up``): ``inverse_haar(x * s)``, 4C channels at H
  -> C at 2H; the modulation and the 2x2 butterfly in one pass.
* the pointwise conv's epilogue: ``leaky_relu((y + noise) + bias, 0.2)`` after the 1x1
  conv (a GEMM), noise the layer's fixed (H, W) map or none.

Kernels checked against these: kernels/common/prior.h (cpu: csrc/cpu/prior.cpp, cuda:
kernels/cuda/prior.cuh), kernels/triton/prior.py; dispatch: identitydp_fast/ops/prior.py;
test: tests/test_prior_ops.py; benchmark: bench/bench_prior_ops.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .mobile_stylegan import inverse_haar

LRELU_SLOPE = 0.2


def modulated_dwconv3x3(x: torch.Tensor, style: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W), style (N, C), weight (C, 3, 3) -> (N, C, H, W):
    out[n, c] = sum_(dy, dx) weight[c, dy, dx] style[n, c] x[n, c, y + dy - 1, x + dx - 1],
    zero padding (the prior's ``conv2d(x * s, dw, padding=1, groups=C)``)."""
    return F.conv2d(x * style[:, :, None, None], weight[:, None], padding=1, groups=x.shape[1])


def modulated_inverse_haar(x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """x (N, 4C, H, W) wavelet bands, style (N, 4C) -> (N, C, 2H, 2W): inverse_haar(x * s)
    (band layout: reference/mobile_stylegan.py ``inverse_haar``)."""
    return inverse_haar(x * style[:, :, None, None])


def bias_noise_lrelu(y: torch.Tensor, bias: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """y (N, C, H, W), bias (C,), noise (H, W) or None -> leaky_relu((y + noise) + bias, 0.2)."""
    if noise is not None:
        y = y + noise
    return F.leaky_relu(y + bias[:, None, None], LRELU_SLOPE)
