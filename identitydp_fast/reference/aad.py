"""The AAD (adaptive attentional denormalisation) layer's elementwise math, the
plain-PyTorch oracle for the fused AAD kernels (FaceShifter, Li et al. 2019).

Given an activation h (N, C, H, W), attribute modulations gamma_att, beta_att
(N, C, H, W) (convolutions of the attribute feature map), identity modulations
gamma_id, beta_id (N, C) (projections of the identity vector) and mask logits
(N, 1, H, W) (a convolution of the normalised h)::

    h_hat = (h - mean_hw(h)) / sqrt(var_hw(h) + eps)      instance norm, biased variance
    A     = gamma_att * h_hat + beta_att
    I     = gamma_id * h_hat + beta_id                     (broadcast over H, W)
    M     = sigmoid(mask_logits)                           (broadcast over C)
    out   = relu((1 - M) * A + M * I)                      (relu optional)

``instance_norm`` is the first pass (statistics + normalisation); ``aad_blend_relu``
the second (everything after the mask convolution). Any float dtype, any device.
Kernels: kernels/*/aad.*; test: tests/test_aad.py; benchmark: bench/bench_aad.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-5


def instance_norm(h: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(h - mean) / sqrt(var + eps) per (n, c) over (H, W); biased variance. (N,C,H,W)."""
    mean = h.mean(dim=(2, 3), keepdim=True)
    var = ((h - mean) ** 2).mean(dim=(2, 3), keepdim=True)
    return (h - mean) / torch.sqrt(var + eps)


def aad_blend_relu(h_hat: torch.Tensor, gamma_att: torch.Tensor, beta_att: torch.Tensor,
                   gamma_id: torch.Tensor, beta_id: torch.Tensor, mask_logits: torch.Tensor,
                   relu: bool = True) -> torch.Tensor:
    """relu((1 - sigmoid(m)) * (ga * h + ba) + sigmoid(m) * (gi * h + bi)), (N, C, H, W).

    h_hat, gamma_att, beta_att: (N, C, H, W); gamma_id, beta_id: (N, C);
    mask_logits: (N, 1, H, W).
    """
    m = torch.sigmoid(mask_logits)
    a = gamma_att * h_hat + beta_att
    i = gamma_id[:, :, None, None] * h_hat + beta_id[:, :, None, None]
    out = (1 - m) * a + m * i
    return torch.relu(out) if relu else out


def upsample_bilinear2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 upsampling, half-pixel centres (align_corners=False): (N,C,2H,2W)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
