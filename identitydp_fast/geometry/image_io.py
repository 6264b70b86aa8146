"""Decode: any caller image -> one (H, W, 3) uint8 RGB numpy array.

Accepted (everything else raises TypeError or ValueError naming the problem):

* numpy arrays: (H, W) grey, (H, W, 1), (H, W, 3) RGB, (H, W, 4) RGBA (alpha dropped, not
  composited: the face pixels are what matter); uint8 as is, uint16 scaled by 1/257
  (65535 -> 255, rounded), float in [0, 1] scaled by 255 (rounded);
* torch tensors: the same layouts and dtypes, channels last (HWC), any device;
* PIL images of any mode (L, P, CMYK, RGBA, I;16, I, F, ...), EXIF orientation applied;
  16-bit modes (I;16*, I) scale by 1/257 like uint16, F like float;
* ``read_image(path)`` for files (checks the pixel limit before decoding).

Grey becomes R = G = B. A pixel limit (default 50 megapixels) stops decompression bombs
and accidental 8K stills before they reach the detector.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_PIXELS = 50_000_000


def _check_pixels(h: int, w: int, max_pixels: int) -> None:
    if h * w > max_pixels:
        raise ValueError(f"image is {w}x{h} = {h * w} pixels, over the limit max_pixels="
                         f"{max_pixels}; downscale it or pass a larger max_pixels")


def _from_pil(img, max_pixels: int) -> np.ndarray:
    from PIL import ImageOps

    _check_pixels(img.height, img.width, max_pixels)  # before decoding the pixels
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grey (PNG/TIFF): numpy gives uint16 / int32 values in 0..65535
        arr = np.asarray(img).astype(np.int64).clip(0, 65535).astype(np.uint16)
        return _from_numpy(arr, max_pixels, "PIL image")
    if mode == "F":
        return _from_numpy(np.asarray(img), max_pixels, "PIL image")
    if mode != "RGB":
        # L, 1, P (palette, with or without transparency), CMYK, YCbCr, LAB, HSV, RGBA, LA, PA:
        # Pillow's conversion; alpha is dropped
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def _from_numpy(arr: np.ndarray, max_pixels: int, what: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4) and arr.shape[0] in (1, 3, 4):
        raise ValueError(f"{what} has shape {arr.shape}, which looks channels-first (C, H, W); "
                         "pass channels-last (H, W, C), e.g. tensor.permute(1, 2, 0)")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{what} must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
                         f"got shape {arr.shape}")
    h, w = arr.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"{what} is empty (shape {arr.shape})")
    _check_pixels(h, w, max_pixels)
    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype == np.uint16:
        # 257 = 65535 / 255 maps 0 -> 0 and 65535 -> 255; + 128 rounds to nearest
        out = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} holds NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{what} is float with values in [{lo:g}, {hi:g}]; float images must "
                             "lie in [0, 1] (for 0..255 data convert with .astype(np.uint8))")
        out = np.floor(arr.astype(np.float64) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise TypeError(f"{what} has dtype {arr.dtype}; use uint8, uint16 or float in [0, 1] "
                        "(for 0..255 integers convert with .astype(np.uint8))")
    if out.ndim == 2:
        out = out[:, :, None]
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    elif out.shape[2] == 4:
        out = out[:, :, :3]
    return np.ascontiguousarray(out)


def to_rgb_uint8(image, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """(H, W, 3) uint8 RGB numpy array (a new array) from a numpy array, a torch tensor
    or a PIL image; see the module docstring for the accepted layouts and dtypes."""
    if not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels < 1:
        raise ValueError(f"max_pixels must be an integer >= 1, got {max_pixels!r}")
    if isinstance(image, np.ndarray):
        return _from_numpy(image, max_pixels, "image array").copy()
    mod = type(image).__module__
    if mod.startswith("torch"):
        import torch

        if isinstance(image, torch.Tensor):
            t = image.detach()
            if t.dtype == torch.bfloat16:
                t = t.float()
            if getattr(torch, "uint16", None) is not None and t.dtype == torch.uint16:
                # numpy conversion of torch.uint16 is not available in every torch
                arr = t.to(torch.int32).cpu().numpy().astype(np.uint16)
            else:
                arr = t.cpu().numpy()
            return _from_numpy(arr, max_pixels, "image tensor").copy()
    if mod.startswith("PIL"):
        from PIL import Image

        if isinstance(image, Image.Image):
            return _from_pil(image, max_pixels)
    if isinstance(image, (str, Path)):
        raise TypeError(f"image is a path ({image!r}); use read_image(path) to decode a file")
    raise TypeError(f"image must be a numpy array, a torch tensor or a PIL image, "
                    f"got {type(image).__name__}")


def read_image(path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a file (path or binary file object) with Pillow to (H, W, 3) uint8 RGB, EXIF
    orientation applied; the pixel limit is checked from the header, before decoding."""
    from PIL import Image

    with Image.open(path) as img:
        # Pillow's own bomb check (~89 MP) would fire first for bigger files; ours is
        # stricter and configurable
        return _from_pil(img, max_pixels)
