"""Attributes (pipeline stage 6): the attribute encoder's input, the aligned crop with its
inner face degraded (differentiable, batched, any device; training uses the same code).

* ``degrade_inner_face(crop, sigma)``: the attribute encoder's input. The inner face
  (eyebrows, eyes, nose, mouth) of the aligned model crop is Gaussian-blurred and blended
  in through a feathered ellipse; everything outside the ellipse (hair, ears, background,
  the face outline) is left bit-for-bit untouched. DESIGN.md section 1: blur over the
  face drops dlib re-identification from 0.95 to 0.015, so with this input the identity
  must come mainly through the (DP) identity channel, and (degraded own face + own
  identity) -> own face is a strong reconstruction signal.
* ``trained_sigma(model)``: the blur sigma a model was trained with (its training summary),
  which inference must use.

What this input carries is NOT covered by epsilon: identity can leak through the attribute
path (pose, hair, face shape); privacy/GUARANTEE.md.

Images are (N, 3, S, S) float in [-1, 1] (the model's crop convention).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from .align import DLIB_MEAN_FACE_5, EYES_Y, crop_template
from ..reference.warp_affine import feathered_ellipse

#: blur sigma of the inner face at crop side 128 (DESIGN.md 7b prototype: 5 px); scaled
#: with the crop side for other sizes
DEFAULT_SIGMA_128 = 5.0

# The inner-face ellipse in dlib mean-face units (outer eye corners 0.739 apart) around
# the midpoint of the four eye corners: eyebrows ~0.17 above the eyes, lower lip ~0.70
# below (dlib's 68-point mean face: nose base +0.41, mouth corners +0.61, lower lip +0.69),
# cheek to cheek just outside the outer eye corners (+-0.37).
_INNER_DY, _INNER_RX, _INNER_RY = 0.27, 0.55, 0.55
_INNER_FEATHER = 0.3


def default_sigma(size: int) -> float:
    return DEFAULT_SIGMA_128 * size / 128.0


def trained_sigma(model, path=None) -> float:
    """The attribute input's inner-face blur the model was trained with (its training
    summary's hparams.degrade_sigma), else the training default for its crop size."""
    summary = getattr(model, "training_summary", None)
    hp = summary.get("hparams") if isinstance(summary, dict) else None
    sigma = hp.get("degrade_sigma") if isinstance(hp, dict) else None
    if sigma is None:
        return default_sigma(model.config.crop_size)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not (
            math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"model weights {path or '(in memory)'}: training summary "
                         f"hparams.degrade_sigma={sigma!r} is not a finite number >= 0")
    return float(sigma)


@lru_cache(maxsize=8)
def _inner_face_geometry(size: int, eyes_y: float = EYES_Y) -> tuple[tuple[float, float], tuple[float, float]]:
    t = crop_template(size, eyes_y)                      # (5, 2) pixels
    eye_mid = t[:4].mean(dim=0)
    face = torch.tensor(DLIB_MEAN_FACE_5, dtype=torch.float64)
    # pixels per mean-face unit, measured on the template itself (outer eye corners)
    unit = float((t[0] - t[2]).norm() / (face[0] - face[2]).norm())
    centre = (float(eye_mid[0]), float(eye_mid[1]) + _INNER_DY * unit)
    return centre, (_INNER_RX * unit, _INNER_RY * unit)


def inner_face_ellipse(size: int, eyes_y: float = EYES_Y) -> tuple[tuple[float, float], tuple[float, float]]:
    """((cx, cy), (rx, ry)) in crop pixels of the inner-face ellipse (eyes, nose, mouth),
    derived from ``crop_template(size, eyes_y)``."""
    return _inner_face_geometry(int(size), float(eyes_y))


@lru_cache(maxsize=8)
def _mask_cpu(size: int, feather: float, eyes_y: float = EYES_Y) -> torch.Tensor:
    centre, axes = _inner_face_geometry(size, eyes_y)
    # a normal tensor even when first asked for under inference mode (the Anonymizer):
    # a cached inference tensor would break autograd in a later training step
    with torch.inference_mode(False):
        return feathered_ellipse(size, size, centre, axes, feather=feather)


def inner_face_mask(size: int, feather: float = _INNER_FEATHER, device=None,
                    dtype: torch.dtype = torch.float32, eyes_y: float = EYES_Y) -> torch.Tensor:
    """(1, 1, S, S) blend mask: 1 on the inner face, smoothstep to exactly 0 at the
    ellipse's edge and outside it."""
    return _mask_cpu(int(size), float(feather), float(eyes_y)).to(device=device, dtype=dtype
                                                                   ).view(1, 1, size, size)


def gaussian_kernel1d(sigma: float, radius: int | None = None, dtype=torch.float32,
                      device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps, length 2 * radius + 1 (radius = ceil(3 sigma))."""
    if radius is None:
        radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / max(sigma, 1e-6)) ** 2)
    return (k / k.sum()).to(device=device, dtype=dtype)


def gaussian_blur(x: torch.Tensor, sigma) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflect padding; differentiable in x.

    sigma: a float (one kernel for the batch) or an (N,) tensor (one per image; all use
    the radius of the largest sigma)."""
    n, c, h, w = x.shape
    if isinstance(sigma, torch.Tensor) and sigma.dim() == 1:
        s = sigma.to(torch.float64).clamp_min(1e-3)
        radius = max(1, int(math.ceil(3.0 * float(s.max()))))
        t = torch.arange(-radius, radius + 1, dtype=torch.float64, device=s.device)
        k = torch.exp(-0.5 * (t[None] / s[:, None]) ** 2)
        k = (k / k.sum(dim=1, keepdim=True)).to(device=x.device, dtype=x.dtype)  # (N, K)
        k = k.repeat_interleave(c, dim=0)                                         # (N C, K)
        y = x.reshape(1, n * c, h, w)
        groups = n * c
    else:
        k = gaussian_kernel1d(float(sigma), dtype=x.dtype, device=x.device)[None].expand(c, -1)
        radius = (k.shape[1] - 1) // 2
        y = x
        groups = c
    pad_mode = "reflect" if min(h, w) > radius else "replicate"
    y = F.pad(y, (radius, radius, 0, 0), mode=pad_mode)
    y = F.conv2d(y, k[:, None, None, :], groups=groups)
    y = F.pad(y, (0, 0, radius, radius), mode=pad_mode)
    y = F.conv2d(y, k[:, None, :, None], groups=groups)
    return y.reshape(n, c, h, w)


def degrade_inner_face(crop: torch.Tensor, sigma: float | None = None,
                       feather: float = _INNER_FEATHER, eyes_y: float = EYES_Y) -> torch.Tensor:
    """crop (N, 3, S, S) -> the same crop with the inner face Gaussian-blurred (sigma in
    pixels; default 5 px at S = 128, scaled with S), blended in through the feathered
    inner-face ellipse: out = crop (1 - m) + blur(crop) m. Pixels where m = 0 (outside
    the ellipse) are returned unchanged, bit for bit."""
    if crop.dim() != 4 or crop.shape[-1] != crop.shape[-2]:
        raise ValueError(f"crop must be (N, C, S, S), got {tuple(crop.shape)}")
    size = crop.shape[-1]
    sigma = default_sigma(size) if sigma is None else float(sigma)
    if sigma <= 0:
        return crop
    m = inner_face_mask(size, feather, device=crop.device, dtype=crop.dtype, eyes_y=eyes_y)
    blurred = gaussian_blur(crop, sigma)
    return torch.where(m > 0, crop * (1 - m) + blurred * m, crop)
