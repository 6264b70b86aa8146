"""Training augmentation: ``real_pipeline(images)``, a random "real world" camera/codec
chain (small blur, down/up-resize, additive noise, optionally JPEG-like 8x8 DCT
quantisation) put between the generator and the identity network in training, so the
identity loss cannot be met with high-frequency adversarial textures (DESIGN.md 7b).

All differentiable, batched, any device; images are (N, 3, S, S) float in [-1, 1] (the
model's crop convention). The attribute input's degradation, which inference needs too,
is identitydp_fast/pipeline/attributes.py.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from ..pipeline.attributes import gaussian_blur

_JPEG_LUMA = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]],
    dtype=torch.float64)


@lru_cache(maxsize=4)
@torch.inference_mode(False)   # cached: must not become an inference tensor (pipeline/attributes.py, _mask_cpu)
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
