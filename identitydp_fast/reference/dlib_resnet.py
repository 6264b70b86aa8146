"""descriptor = fc(mean_hw(blocks(maxpool(relu(affine(conv7x7/2((x - mean_c) / 256))))))):
dlib's face-recognition ResNet in plain PyTorch, the oracle for the identity encoder.

x: (N, 3, 150, 150) RGB in [0, 255] (float32 or float64) -> (N, 128), same dtype, in
dlib's scale (not normalised; norms ~1.2-1.6; distance < 0.6 = same person).
Each of the 14 blocks (identitydp_fast/models/dlib_resnet.py BLOCKS) is
``residual_add_relu(affine(conv(relu(affine(conv_s(x))))), x, pool_shortcut=down)``;
the spatial sizes run 150 -> 72 (stem conv) -> 35 (max pool) -> 17 -> 8 -> 4 -> 2 -> 1.

Matches dlib's ``compute_face_descriptor`` to ~4e-7 max abs in float32 (the two differ
only in the order of float32 sums). Weights: identitydp_fast/models/dlib_resnet.py.
Test: tests/test_dlib_resnet.py.
"""
from __future__ import annotations

import os
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..models.dlib_resnet import (BLOCKS, CHIP_SIZE, AffineWeights, ConvWeights,
                                  DlibResNetWeights, load_dlib_resnet_weights)
from .residual_add import residual_add_relu

#: signature of the residual join: (main, shortcut, pool_shortcut) -> relu(main + s)
ResidualAdd = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]


class _Affine(nn.Module):
    """y = gamma_c * x + beta_c on (N, C, H, W)."""

    def __init__(self, w: AffineWeights):
        super().__init__()
        self.gamma = nn.Parameter(w.gamma.clone().view(1, -1, 1, 1), requires_grad=False)
        self.beta = nn.Parameter(w.beta.clone().view(1, -1, 1, 1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma + self.beta


def _conv(w: ConvWeights) -> nn.Conv2d:
    out_ch, in_ch, kh, kw = w.weight.shape
    conv = nn.Conv2d(in_ch, out_ch, (kh, kw), stride=w.stride, padding=w.padding)
    conv.weight = nn.Parameter(w.weight.clone(), requires_grad=False)
    conv.bias = nn.Parameter(w.bias.clone(), requires_grad=False)
    return conv


class _Block(nn.Module):
    """relu(add_prev(affine(conv3x3(relu(affine(conv3x3/s(x))))), shortcut(x)))."""

    def __init__(self, convs: tuple[ConvWeights, ConvWeights],
                 affines: tuple[AffineWeights, AffineWeights], down: bool,
                 residual_add: ResidualAdd):
        super().__init__()
        self.conv1, self.affine1 = _conv(convs[0]), _Affine(affines[0])
        self.conv2, self.affine2 = _conv(convs[1]), _Affine(affines[1])
        self.down = down
        self.residual_add = residual_add

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.affine1(self.conv1(x)))
        y = self.affine2(self.conv2(y))
        return self.residual_add(y, x, self.down)


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet (see the module docstring for the math and shapes).

    Args:
        weights: from ``load_dlib_resnet_weights``.
        residual_add: the residual join (default: the reference ``residual_add_relu``);
            the engine passes its fused kernel here (same signature).

    The weights are frozen (requires_grad=False); gradients still flow to the input.
    Float32 by default; ``.double()`` runs it in float64.
    """

    def __init__(self, weights: DlibResNetWeights, residual_add: ResidualAdd = residual_add_relu):
        super().__init__()
        if len(weights.convs) != 1 + 2 * len(BLOCKS) or len(weights.affines) != len(weights.convs):
            raise ValueError(f"weights must hold {1 + 2 * len(BLOCKS)} convs and affines, got "
                             f"{len(weights.convs)} and {len(weights.affines)}")
        self.register_buffer("input_mean", weights.input_mean.clone().view(1, 3, 1, 1))
        self.stem_conv, self.stem_affine = _conv(weights.convs[0]), _Affine(weights.affines[0])
        self.blocks = nn.ModuleList(
            _Block(weights.convs[1 + 2 * b:3 + 2 * b], weights.affines[1 + 2 * b:3 + 2 * b],
                   down, residual_add)
            for b, (_, down) in enumerate(BLOCKS))
        self.fc = nn.Linear(weights.fc_weight.shape[1], weights.fc_weight.shape[0], bias=False)
        self.fc.weight = nn.Parameter(weights.fc_weight.clone(), requires_grad=False)
        self.distance_threshold = weights.distance_threshold

    @classmethod
    def from_file(cls, path: str | os.PathLike | None = None, **kwargs) -> "DlibResNet":
        """Load dlib_face_recognition_resnet_model_v1.dat (default: the installed
        face_recognition_models package's copy) and build the network."""
        return cls(load_dlib_resnet_weights(path), **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, 150, 150) RGB in [0, 255] -> (N, 128) descriptors, x's dtype."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, CHIP_SIZE, CHIP_SIZE):
            raise ValueError(f"x must have shape (N, 3, {CHIP_SIZE}, {CHIP_SIZE}) (RGB chips), "
                             f"got {tuple(x.shape)}")
        # One fixed memory layout, so the result never depends on the caller's strides
        # (oneDNN sums in a different float32 order per layout, ~2e-7 apart); channels-last
        # because it is as fast as NCHW at batch 1 and ~10% faster at batch 8-32 (2 cores).
        # (The batch size itself can still move a descriptor by ~2e-7, for the same reason.)
        x = x.contiguous(memory_format=torch.channels_last)
        # dlib's input_rgb_image_sized: (pixel - mean_c) / 256 (a power of two: exact)
        x = (x - self.input_mean) / 256.0
        x = torch.relu(self.stem_affine(self.stem_conv(x)))  # (N, 32, 72, 72)
        x = F.max_pool2d(x, kernel_size=3, stride=2)          # (N, 32, 35, 35), unpadded
        for block in self.blocks:
            x = block(x)                                      # ... (N, 256, 2, 2)
        x = x.mean(dim=(2, 3))                                # avg_pool_everything: (N, 256)
        return self.fc(x)                                     # (N, 128) = x @ W
