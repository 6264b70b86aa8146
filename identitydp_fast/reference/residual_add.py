"""out = relu(zero_fill(main) + zero_fill(s)),  s = avg_pool_2x2/2(shortcut) if pool_shortcut
else shortcut: dlib's add_prev + relu, the residual join of its face-recognition ResNet.

Shapes: main (N, Cm, Hm, Wm), shortcut (N, Cs, Hs, Ws); s is (N, Cs, Hs // 2, Ws // 2)
when pooled (2x2 window, stride 2, unpadded, floor) and the shortcut itself otherwise.
out is (N, max(Cm, Cs'), max(Hm, Hs'), max(Wm, Ws')) for s's shape (Cs', Hs', Ws'):
dlib's add_prev takes the LARGER size in every dimension and treats the missing part of
each operand as zeros, i.e. zero_fill pads with zeros at the trailing channels, the
bottom rows and the right columns. (In the ResNet: doubled channels at every down
block, and main 3x3 vs shortcut 4x4, 1x1 vs 2x2 spatially in the last two stages.
Cropping instead of zero-filling gives a different network: cosine 0.51 to dlib's.)

Any float dtype (float64 included), any device. Kernels checked against this: the
engine's fused residual-add (same signature). Test: tests/test_dlib_resnet.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def residual_add_relu(main: torch.Tensor, shortcut: torch.Tensor,
                      pool_shortcut: bool) -> torch.Tensor:
    """main: (N, Cm, Hm, Wm), shortcut: (N, Cs, Hs, Ws) -> (N, C, H, W), the max of each."""
    if main.dim() != 4 or shortcut.dim() != 4:
        raise ValueError(f"main and shortcut must be 4-D (N, C, H, W), got shapes "
                         f"{tuple(main.shape)} and {tuple(shortcut.shape)}")
    if main.shape[0] != shortcut.shape[0]:
        raise ValueError(f"main and shortcut must have the same batch size N, got "
                         f"{main.shape[0]} and {shortcut.shape[0]}")
    if main.dtype != shortcut.dtype or not main.is_floating_point():
        raise TypeError(f"main and shortcut must share one floating dtype, got {main.dtype} "
                        f"and {shortcut.dtype}")
    s = F.avg_pool2d(shortcut, kernel_size=2, stride=2) if pool_shortcut else shortcut
    # (C, H, W) of the output: the larger operand in every dimension
    size = [max(a, b) for a, b in zip(main.shape[1:], s.shape[1:])]
    return torch.relu(_zero_fill(main, size) + _zero_fill(s, size))


def _zero_fill(t: torch.Tensor, size: list[int]) -> torch.Tensor:
    """t (N, c, h, w) -> (N, C, H, W), zeros at channels >= c, rows >= h, columns >= w."""
    _, c, h, w = t.shape
    if (c, h, w) == tuple(size):
        return t
    # F.pad lists (left, right) pairs from the last dimension backwards
    return F.pad(t, (0, size[2] - w, 0, size[1] - h, 0, size[0] - c))
