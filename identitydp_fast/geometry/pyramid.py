"""dlib's ``pyramid_down<2>`` (dlib/image_transforms/image_pyramid.h, pyramid_down_2_1),
reproduced bit for bit, and its point mapping.

One level halves the image with a separable 5-tap binomial filter [1 4 6 4 1] (x) [1 4 6 4 1]
in integer arithmetic, keeping every other row and column and dropping a 2-pixel border:

    out[i, j] = floor( sum_{a,b in -2..2} w_a w_b in[2 + 2 i + a, 2 + 2 j + b] / 256 )

with out of size ((H - 3) // 2, (W - 3) // 2) (empty when H <= 8 or W <= 8, as dlib).
Rows are filtered first (an exact integer sum, so the order does not matter); the single
division by 256 truncates. dlib maps a point p of the input to ``point_down(p) =
p / 2 - (1.25, 0.75)`` (x, y) in the output (``pyramid_down(2).point_down``): that is the
convention its chip extraction uses for the coordinates of a pyramid level, whatever the
filter's true phase. Checked against ``dlib.pyramid_down(2)(img)`` on RGB images of odd and
even sizes (tests/test_align.py).
"""
from __future__ import annotations

import torch

POINT_DOWN_OFFSET = (1.25, 0.75)  # (x, y): point_down(p) = p / 2 - offset


def pyramid_down2(image) -> torch.Tensor:
    """One level of dlib's pyramid_down<2>: (H, W, C) or (H, W) uint8 -> uint8 tensor of
    ((H - 3) // 2, (W - 3) // 2[, C]); empty (0, 0[, C]) when H <= 8 or W <= 8."""
    img = torch.as_tensor(image)
    if img.dim() not in (2, 3) or img.dtype != torch.uint8:
        raise ValueError(f"image must be (H, W[, C]) uint8, got {tuple(img.shape)} {img.dtype}")
    h, w = int(img.shape[0]), int(img.shape[1])
    if h <= 8 or w <= 8:
        return img.new_zeros((0, 0) + tuple(img.shape[2:]))
    oh, ow = (h - 3) // 2, (w - 3) // 2
    a = img.to(torch.int32)
    # columns 2 + 2 j + {-2..2}, j < ow
    t = (a[:, 0:2 * ow:2] + 4 * a[:, 1:2 * ow + 1:2] + 6 * a[:, 2:2 * ow + 2:2]
         + 4 * a[:, 3:2 * ow + 3:2] + a[:, 4:2 * ow + 4:2])
    d = (t[0:2 * oh:2] + 4 * t[1:2 * oh + 1:2] + 6 * t[2:2 * oh + 2:2]
         + 4 * t[3:2 * oh + 3:2] + t[4:2 * oh + 4:2])
    return torch.div(d, 256, rounding_mode="floor").to(torch.uint8).contiguous()


def point_down(points: torch.Tensor, levels: int = 1) -> torch.Tensor:
    """(..., 2) float (x, y) points of an image -> their place ``levels`` levels down."""
    p = torch.as_tensor(points, dtype=torch.float64)
    off = torch.tensor(POINT_DOWN_OFFSET, dtype=p.dtype, device=p.device)
    for _ in range(levels):
        p = p / 2 - off
    return p
