"""Affine warp with bilinear sampling and normalisation, and the feathered paste-back.

``warp_affine``: for every output pixel (row r, column c) of image n::

    [x, y] = M_n @ [c, r, 1]                    M_n: (2, 3), OUTPUT -> INPUT pixel coordinates
    x0 = floor(x), y0 = floor(y), fx = x - x0, fy = y - y0
    top = (1 - fx) I(y0, x0) + fx I(y0, x0 + 1)
    bot = (1 - fx) I(y0 + 1, x0) + fx I(y0 + 1, x0 + 1)
    v   = (1 - fy) top + fy bot                 (I = 0 at any tap outside the input)
    v   = floor(v)                              (only with truncate=True)
    out[n, ch, r, c] = (v[ch] - mean[ch]) * scale

Conventions: x is the column, y the row; pixel centres sit at integer coordinates, so
pixel (r, c) covers [c - 1/2, c + 1/2] x [r - 1/2, r + 1/2]. The identity matrix
reproduces the image exactly and an integer translation shifts it exactly (the zero-weight
taps contribute nothing). A tap outside the input reads 0 (the value before
normalisation), so the output fades to (0 - mean) * scale over one pixel at the input's
border (torch ``grid_sample(padding_mode="zeros")`` behaves the same way at the border;
dlib instead zeroes a sample when any of its four taps is outside, which differs only
on that one-pixel ring).

``truncate=True`` rounds the sample down to an integer before normalising: that is what
dlib does when it stores a chip as uint8 (``get_face_chip``), and it moves dlib's face
descriptor by ~2e-3 compared with rounding to nearest. With it and float64 coordinates,
``warp_affine`` reproduces ``dlib.get_face_chip`` bit for bit (tests/test_align.py).

Shapes: images (N, H, W, C) uint8 or float; matrices (N, 2, 3) float; output
(N, C, out_h, out_w) float32, or float64 when images or matrices are float64 (the
oracle runs in float64 too). Kernels with this signature: planned in kernels/ (CPU, CUDA,
Triton). Test: tests/test_warp_affine.py.

``paste_back`` puts a crop back into its frame: the inverse warp of the crop (and of a
feathered mask) into the frame's geometry, then ``frame (1 - m) + crop m``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch


def _check_warp_args(images: torch.Tensor, matrices: torch.Tensor, out_h: int, out_w: int,
                     mean, scale: float) -> tuple[int, torch.dtype, torch.Tensor]:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be an (N, H, W, C) tensor, got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    if images.dtype != torch.uint8 and not images.dtype.is_floating_point:
        raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")
    n, h, w, c = images.shape
    if h < 1 or w < 1 or c < 1:
        raise ValueError(f"images must have H, W, C >= 1, got shape {tuple(images.shape)}")
    if (not isinstance(matrices, torch.Tensor) or matrices.shape != (n, 2, 3)
            or not matrices.dtype.is_floating_point):
        raise ValueError(f"matrices must be a float (N, 2, 3) tensor with N={n} (one per image), "
                         f"got {getattr(matrices, 'shape', type(matrices).__name__)} "
                         f"{getattr(matrices, 'dtype', '')}")
    if matrices.device != images.device:
        raise ValueError(f"matrices are on {matrices.device} but images on {images.device}; "
                         "move both to one device")
    for name, v in (("out_h", out_h), ("out_w", out_w)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    dtype = (torch.float64 if torch.float64 in (images.dtype, matrices.dtype) else torch.float32)
    if mean is None:
        mean_t = torch.zeros(c, dtype=dtype, device=images.device)
    else:
        mean_t = torch.as_tensor(mean, dtype=dtype, device=images.device).reshape(-1)
        if mean_t.numel() != c:
            raise ValueError(f"mean must hold one value per channel (C={c}), got {mean!r}")
    if not math.isfinite(float(scale)):
        raise ValueError(f"scale must be finite, got {scale!r}")
    return c, dtype, mean_t


def warp_affine(images: torch.Tensor, matrices: torch.Tensor, out_h: int, out_w: int,
                mean: Sequence[float] | None = None, scale: float = 1.0,
                truncate: bool = False) -> torch.Tensor:
    """out = (bilinear(images, M @ [c, r, 1]) - mean) * scale, see the module docstring.

    images: (N, H, W, C) uint8 or float; matrices: (N, 2, 3) float, output -> input pixel
    coordinates; mean: C floats (None: zeros); scale: float; truncate: floor the sample
    (dlib's uint8 chips). Returns (N, C, out_h, out_w) float32 (float64 when images or
    matrices are float64).
    """
    c, dtype, mean_t = _check_warp_args(images, matrices, out_h, out_w, mean, scale)
    n, h, w, _ = images.shape
    dev = images.device
    m = matrices.to(dtype)
    rows = torch.arange(out_h, dtype=dtype, device=dev).view(1, out_h, 1)
    cols = torch.arange(out_w, dtype=dtype, device=dev).view(1, 1, out_w)
    # x, y: (N, out_h, out_w) input coordinates of every output pixel
    x = m[:, 0, 0, None, None] * cols + m[:, 0, 1, None, None] * rows + m[:, 0, 2, None, None]
    y = m[:, 1, 0, None, None] * cols + m[:, 1, 1, None, None] * rows + m[:, 1, 2, None, None]
    # non-finite or far-away coordinates: park them outside the image (every tap reads 0);
    # clamping also keeps the int64 conversion below defined
    finite = torch.isfinite(x) & torch.isfinite(y)
    x = torch.where(finite, x, torch.full_like(x, -4.0)).clamp(-4.0, w + 4.0)
    y = torch.where(finite, y, torch.full_like(y, -4.0)).clamp(-4.0, h + 4.0)
    x0f, y0f = torch.floor(x), torch.floor(y)
    fx, fy = x - x0f, y - y0f
    x0, y0 = x0f.to(torch.int64), y0f.to(torch.int64)
    flat = images.reshape(n, h * w, c).to(dtype)  # (N, H*W, C)

    def tap(xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        """I(yi, xi) per channel, 0 outside: (N, out_h, out_w, C)."""
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        idx = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).reshape(n, -1, 1).expand(-1, -1, c)
        v = flat.gather(1, idx).reshape(n, out_h, out_w, c)
        return v * inside.unsqueeze(-1).to(dtype)

    fx, fy = fx.unsqueeze(-1), fy.unsqueeze(-1)
    # dlib's evaluation order (interpolate_bilinear): rows first, then between rows; with
    # truncate=True and float64 this order is what makes the chips bit-identical
    top = (1 - fx) * tap(x0, y0) + fx * tap(x0 + 1, y0)
    bot = (1 - fx) * tap(x0, y0 + 1) + fx * tap(x0 + 1, y0 + 1)
    v = (1 - fy) * top + fy * bot
    if truncate:
        v = torch.floor(v)
    out = (v - mean_t) * float(scale)  # (N, out_h, out_w, C)
    return out.permute(0, 3, 1, 2).contiguous()


def feathered_ellipse(h: int, w: int, center: tuple[float, float] | None = None,
                      axes: tuple[float, float] | None = None, feather: float = 0.15,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(h, w) mask: 1 inside the ellipse shrunk by ``feather``, smoothstep to 0 at its edge.

    With d = sqrt(((c - cx) / rx)^2 + ((r - cy) / ry)^2) (pixel centres at integers):
    m = smoothstep(clamp((1 - d) / feather, 0, 1)). center (cx, cy) defaults to the
    middle of the image, axes (rx, ry) to the inscribed ellipse; feather in (0, 1] is
    the width of the ramp as a fraction of the radius.
    """
    if not 0.0 < feather <= 1.0:
        raise ValueError(f"feather must be in (0, 1] (fraction of the radius), got {feather!r}")
    cx, cy = center if center is not None else ((w - 1) / 2, (h - 1) / 2)
    rx, ry = axes if axes is not None else (w / 2, h / 2)
    if not (rx > 0 and ry > 0):
        raise ValueError(f"axes must be positive radii (rx, ry), got {axes!r}")
    r = torch.arange(h, dtype=torch.float64).view(h, 1)
    c = torch.arange(w, dtype=torch.float64).view(1, w)
    d = torch.sqrt(((c - cx) / rx) ** 2 + ((r - cy) / ry) ** 2)
    t = ((1 - d) / feather).clamp(0, 1)
    return (t * t * (3 - 2 * t)).to(dtype)


def _invert_2x3(m: torch.Tensor) -> torch.Tensor:
    """Inverse of one affine map [A | t] -> [A^-1 | -A^-1 t] (float64)."""
    a = m[:, :2]
    det = float(a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0])
    if not math.isfinite(det) or abs(det) < 1e-12:
        raise ValueError(f"matrix is not invertible (det of its 2x2 part = {det:g})")
    ai = torch.linalg.inv(a)
    return torch.cat([ai, -(ai @ m[:, 2:])], dim=1)


def paste_back(frame, crop, matrix, mask=None, feather: float = 0.15):
    """frame' = frame (1 - m) + crop m, crop and mask inverse-warped into the frame.

    frame: (H, W, 3) uint8 (torch tensor or numpy array); crop: (h, w, 3) uint8 or float
    in pixel units [0, 255]; matrix: (2, 3) mapping CROP pixel coordinates to FRAME pixel
    coordinates (the matrix that extracted the crop with ``warp_affine``); mask: (h, w)
    float in [0, 1] in crop coordinates (None: the inscribed ellipse feathered by
    ``feather``, see ``feathered_ellipse``). Only the frame's bounding box of the crop is
    warped (cost follows the face, not the frame). Returns a new (H, W, 3) uint8 frame,
    the same type as ``frame``; values round half up.
    """
    as_numpy = isinstance(frame, np.ndarray)
    f = torch.as_tensor(frame)
    if f.dim() != 3 or f.shape[2] != 3 or f.dtype != torch.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {tuple(f.shape)} {f.dtype}")
    cr = torch.as_tensor(crop)
    if cr.dim() != 3 or cr.shape[2] != 3:
        raise ValueError(f"crop must be (h, w, 3), got {tuple(cr.shape)}")
    ch, cw = int(cr.shape[0]), int(cr.shape[1])
    m = torch.as_tensor(matrix, dtype=torch.float64).cpu()
    if m.shape != (2, 3) or not bool(torch.isfinite(m).all()):
        raise ValueError(f"matrix must be a finite (2, 3) crop -> frame map, got {tuple(m.shape)}")
    if mask is None:
        mask = feathered_ellipse(ch, cw, feather=feather, dtype=torch.float64)
    mk = torch.as_tensor(mask, dtype=torch.float64)
    if mk.shape != (ch, cw):
        raise ValueError(f"mask must be (h, w) = ({ch}, {cw}) like the crop, got {tuple(mk.shape)}")
    hh, ww = int(f.shape[0]), int(f.shape[1])
    # the crop's footprint in the frame: its corner pixel edges mapped forward
    corners = torch.tensor([[-0.5, -0.5, 1], [cw - 0.5, -0.5, 1], [-0.5, ch - 0.5, 1],
                            [cw - 0.5, ch - 0.5, 1]], dtype=torch.float64)
    pts = corners @ m.T
    x0 = max(0, math.floor(float(pts[:, 0].min())))
    y0 = max(0, math.floor(float(pts[:, 1].min())))
    x1 = min(ww - 1, math.ceil(float(pts[:, 0].max())))
    y1 = min(hh - 1, math.ceil(float(pts[:, 1].max())))
    out = f.clone()
    if x1 < x0 or y1 < y0:  # the crop lies entirely outside the frame
        return out.numpy() if as_numpy else out
    # frame -> crop, shifted so that output pixel (0, 0) is frame pixel (x0, y0)
    inv = _invert_2x3(m)
    inv[:, 2] += inv[:, :2] @ torch.tensor([float(x0), float(y0)], dtype=torch.float64)
    rh, rw = y1 - y0 + 1, x1 - x0 + 1
    # crop and mask in one warp: (1, h, w, 4); the mask reads 0 outside the crop
    both = torch.cat([cr.to(torch.float64), mk.unsqueeze(-1)], dim=-1).unsqueeze(0)
    warped = warp_affine(both, inv.unsqueeze(0), rh, rw)[0].permute(1, 2, 0)  # (rh, rw, 4)
    alpha = warped[..., 3:].clamp(0, 1)
    region = f[y0:y1 + 1, x0:x1 + 1].to(torch.float64)
    blended = region * (1 - alpha) + warped[..., :3] * alpha
    out[y0:y1 + 1, x0:x1 + 1] = torch.floor(blended + 0.5).clamp(0, 255).to(torch.uint8)
    return out.numpy() if as_numpy else out
