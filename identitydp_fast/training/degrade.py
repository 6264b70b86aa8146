"""Image degradations used in training (all differentiable, batched, any device).

* ``degrade_inner_face(crop, sigma)``: the attribute encoder's input. The inner face
  (eyebrows, eyes, nose, mouth) of the aligned model crop is Gaussian-blurred and blended
  in through a feathered ellipse; everything outside the ellipse (hair, ears, background,
  the face outline) is left bit-for-bit untouched. DESIGN.md section 1: blur over the
  face drops dlib re-identification from 0.95 to 0.015, so with this input the identity
  must come mainly through the (DP) identity channel, and (degraded own face + own
  identity) -> own face is a strong reconstruction signal.
* ``real_pipeline(images)``: a random "real world" camera/codec chain (small blur,
  down/up-resize, additive noise, optionally JPEG-like 8x8 DCT quantisation) put between
  the generator and the identity network in training, so the identity loss cannot be
  met with high-frequency adversarial textures (DESIGN.md 7b).

Images are (N, 3, S, S) float in [-1, 1] (the model's crop convention).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from ..pipeline.align import DLIB_MEAN_FACE_5, crop_template
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


@lru_cache(maxsize=8)
def _inner_face_geometry(size: int) -> tuple[tuple[float, float], tuple[float, float]]:
    t = crop_template(size)                              # (5, 2) pixels
    eye_mid = t[:4].mean(dim=0)
    face = torch.tensor(DLIB_MEAN_FACE_5, dtype=torch.float64)
    # pixels per mean-face unit, measured on the template itself (outer eye corners)
    unit = float((t[0] - t[2]).norm() / (face[0] - face[2]).norm())
    centre = (float(eye_mid[0]), float(eye_mid[1]) + _INNER_DY * unit)
    return centre, (_INNER_RX * unit, _INNER_RY * unit)


def inner_face_ellipse(size: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """((cx, cy), (rx, ry)) in crop pixels of the inner-face ellipse (eyes, nose, mouth),
    derived from ``crop_template(size)``."""
    return _inner_face_geometry(int(size))


@lru_cache(maxsize=8)
def _mask_cpu(size: int, feather: float) -> torch.Tensor:
    centre, axes = _inner_face_geometry(size)
    # a normal tensor even when first asked for under inference mode (the Anonymizer):
    # a cached inference tensor would break autograd in a later training step
    with torch.inference_mode(False):
        return feathered_ellipse(size, size, centre, axes, feather=feather)


def inner_face_mask(size: int, feather: float = _INNER_FEATHER, device=None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(1, 1, S, S) blend mask: 1 on the inner face, smoothstep to exactly 0 at the
    ellipse's edge and outside it."""
    return _mask_cpu(int(size), float(feather)).to(device=device, dtype=dtype).view(1, 1, size, size)


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
                       feather: float = _INNER_FEATHER) -> torch.Tensor:
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
    m = inner_face_mask(size, feather, device=crop.device, dtype=crop.dtype)
    blurred = gaussian_blur(crop, sigma)
    return torch.where(m > 0, crop * (1 - m) + blurred * m, crop)


# -- the random "real pipeline" -------------------------------------------------------------

_JPEG_LUMA = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]],
    dtype=torch.float64)


@lru_cache(maxsize=4)
@torch.inference_mode(False)   # cached: must not become an inference tensor (see _mask_cpu)
def _dct8() -> torch.Tensor:
    """Orthonormal 8x8 DCT-II matrix D (rows: frequencies); coefficients = D B D^T."""
    k = torch.arange(8, dtype=torch.float64)[:, None]
    n = torch.arange(8, dtype=torch.float64)[None]
    d = torch.cos(math.pi * (2 * n + 1) * k / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d


def _quality_scale(q: float) -> float:
    q = min(max(q, 1.0), 100.0)
    return (5000.0 / q if q < 50 else 200.0 - 2.0 * q) / 100.0


def jpeg_like(images: torch.Tensor, quality: float) -> torch.Tensor:
    """Differentiable JPEG-like 8x8 block DCT quantisation (all channels with the luma
    table at ``quality``; no chroma subsampling). Rounding uses the cubic approximation
    round(x) + (x - round(x))^3 (Shin & Song 2017), which has a useful gradient.
    images (N, C, H, W) in [-1, 1] with H, W multiples of 8."""
    n, c, h, w = images.shape
    if h % 8 or w % 8:
        raise ValueError(f"jpeg_like needs H, W multiples of 8, got {h}x{w}")
    d = _dct8().to(device=images.device, dtype=images.dtype)
    qt = (_JPEG_LUMA * _quality_scale(quality)).clamp_min(1).to(images.device, images.dtype)
    x = (images + 1) * 127.5 - 128.0
    b = x.reshape(n, c, h // 8, 8, w // 8, 8).permute(0, 1, 2, 4, 3, 5)    # (..., 8, 8) blocks
    coef = d @ b @ d.T
    z = coef / qt
    zr = torch.round(z)
    z = zr + (z - zr) ** 3
    b = d.T @ (z * qt) @ d
    x = b.permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)
    return (x + 128.0) / 127.5 - 1


def real_pipeline(images: torch.Tensor, generator: torch.Generator | None = None,
                  max_blur: float = 1.2, min_scale: float = 0.5, max_noise: float = 0.03,
                  p_jpeg: float = 0.5, jpeg_quality: tuple[float, float] = (50.0, 95.0)
                  ) -> torch.Tensor:
    """A random, differentiable camera/codec chain on (N, 3, S, S) images in [-1, 1]:

    1. Gaussian blur, sigma ~ U(0, max_blur) px per image;
    2. down-resize by a factor ~ U(min_scale, 1) (one per batch, antialiased bilinear)
       and back up (bilinear);
    3. additive Gaussian noise, std ~ U(0, max_noise) per image (0.03 = ~4 grey levels);
    4. with probability p_jpeg (per batch), JPEG-like DCT quantisation at a quality
       ~ U(jpeg_quality);
    then clamp to [-1, 1]. ``generator`` (CPU torch.Generator) makes it reproducible.
    """
    n, c, h, w = images.shape

    def u(*shape):
        return torch.rand(*shape, generator=generator, dtype=torch.float64)

    x = gaussian_blur(images, u(n) * max_blur + 1e-3)
    scale = float(u(1)) * (1 - min_scale) + min_scale
    sh, sw = max(8, int(round(h * scale))), max(8, int(round(w * scale)))
    if (sh, sw) != (h, w):
        x = F.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False, antialias=True)
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    std = (u(n) * max_noise).to(device=x.device, dtype=x.dtype).view(n, 1, 1, 1)
    noise = torch.randn(images.shape, generator=generator, dtype=torch.float32)
    x = x + std * noise.to(device=x.device, dtype=x.dtype)
    if float(u(1)) < p_jpeg and h % 8 == 0 and w % 8 == 0:
        q = float(u(1)) * (jpeg_quality[1] - jpeg_quality[0]) + jpeg_quality[0]
        x = jpeg_like(x, q)
    return x.clamp(-1, 1)
