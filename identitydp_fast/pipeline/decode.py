"""Decode (pipeline stage 1): every caller image in, (H, W, 3) uint8 RGB for the
pipeline, and the result back out in the caller's own kind.

* ``to_rgb_uint8(image)`` / ``read_image(path)``: any caller image (or a file) -> one
  (H, W, 3) uint8 RGB numpy array;
* ``decode(image)`` -> :class:`DecodedImage`: ``.rgb`` is that array, and
  ``.encode(rgb_out)`` builds the result in the input's own kind;
* ``decode_crops(crops, S)``: a caller's pre-aligned (N, S, S, 3) uint8 crops, numpy or
  torch, and the way back to that kind.

Accepted by both (everything else raises TypeError or ValueError naming the problem):

* numpy arrays: (H, W) grey, (H, W, 1), (H, W, 3) RGB, (H, W, 4) RGBA (alpha dropped, not
  composited: the face pixels are what matter); uint8 as is, uint16 scaled by 1/257
  (65535 -> 255, rounded), float in [0, 1] scaled by 255 (rounded);
* torch tensors: the same layouts and dtypes, channels last (HWC), any device;
* PIL images of any mode (L, P, CMYK, RGBA, I;16, I, F, ...), EXIF orientation applied;
  16-bit modes (I;16*, I) scale by 1/257 like uint16, F like float;
* ``read_image(path)`` for files (checks the pixel limit before decoding).

Grey becomes R = G = B. A pixel limit (default 50 megapixels) stops decompression bombs
and accidental 8K stills before they reach the detector.

Guarantee of ``decode(image).encode(rgb_out)``: a pixel whose RGB value the pipeline did not change (``rgb_out == rgb`` at that
pixel) comes back bit-identical to the input pixel, in the input's own dtype, channels and
mode; an alpha channel is never touched. A changed pixel is written in the input's format:

=========================  ======================  =======================================
input                      output                  a changed pixel becomes
=========================  ======================  =======================================
numpy / torch (H, W, 3)    same kind, dtype and    uint8: the new RGB; uint16: RGB * 257;
                           device                  float (values in [0, 1]): RGB / 255
(H, W) or (H, W, 1) grey   same                    luma Y = (19595 R + 38470 G + 7471 B +
                                                   2^15) >> 16 (Pillow's "L"), scaled as above
(H, W, 4) RGBA             same, alpha untouched   RGB as above
PIL RGB, RGBA, L, LA       same mode               as above (alpha untouched)
PIL I;16, I;16B, I         same mode               Y * 257
PIL F (grey in [0, 1])     F                       Y / 255
PIL 1 (bilevel)            L                       Y
PIL P, PA, CMYK, YCbCr,    RGB, or RGBA when the   the new RGB; unchanged pixels are Pillow's
LAB, HSV, RGBX, La, RGBa   image has transparency  conversion of the input
=========================  ======================  =======================================

16-bit and float inputs are supported: the pipeline runs at 8 bits (the generator's own
precision), so unchanged pixels keep their full precision and changed ones are 8-bit
values scaled to the input's range. A grey input is seen by the pipeline as R = G = B.

PIL images: EXIF orientation is applied first, so the result is upright and carries no
EXIF. The ICC profile is carried over (except where the mode changed away from a colour
space it described: CMYK, YCbCr, LAB, HSV). Other metadata (EXIF, XMP, text chunks) is not
carried: it can describe the people in the photo. For files, identitydp_fast.io.image_codec
decides what to write.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

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


# Pillow's RGB -> L weights (libImaging/Convert.c, L24): they sum to 2^16, so R = G = B = v
# gives exactly v.
_LUMA = (19595, 38470, 7471)

# PIL modes returned as they came, and whether their colour is grey
_PIL_KEPT = {"RGB": False, "RGBA": False, "L": True, "LA": True, "I;16": True,
             "I;16L": True, "I;16B": True, "I": True, "F": True}
# modes whose ICC profile no longer describes the pixels once converted to RGB
_PIL_OTHER_SPACES = ("CMYK", "YCbCr", "LAB", "HSV")


def luma(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> (...) uint8 grey, exactly as Pillow's ``convert("L")``."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * _LUMA[0] + g * _LUMA[1] + b * _LUMA[2] + 0x8000) >> 16).astype(np.uint8)


def _from_u8(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """8-bit values -> the input's range and dtype (inverse of to_rgb_uint8's scaling)."""
    dt = np.dtype(dtype)
    if dt.kind == "u" and dt.itemsize == 1:
        return values
    if dt.kind in "ui":  # 16-bit grey/colour (and PIL's int32 "I"): 0..255 -> 0..65535
        return (values.astype(np.int64) * 257).astype(dt)
    if dt.kind == "f":   # float images live in [0, 1]
        return (values.astype(np.float64) / 255.0).astype(dt)
    raise TypeError(f"cannot write pixels of dtype {dt}")


@dataclasses.dataclass(frozen=True, eq=False)
class DecodedImage:
    """One caller image, decoded.

    rgb: (H, W, 3) uint8 RGB, a new array (the pipeline's working copy).
    native: the input's pixels, (H, W) or (H, W, C), in its own dtype (never written).
    grey: whether a changed pixel is written as grey (luma) instead of RGB.
    wrap: native-layout array -> the output object (numpy, torch tensor or PIL image).
    """

    rgb: np.ndarray
    native: np.ndarray
    grey: bool
    wrap: Callable[[np.ndarray], Any]

    def encode(self, rgb_out: np.ndarray):
        """The result in the input's kind: ``native`` where ``rgb_out`` equals ``rgb``,
        the new pixel (in the input's format, see the module docstring) elsewhere. Always a
        new object; the input is never modified."""
        if rgb_out.shape != self.rgb.shape or rgb_out.dtype != np.uint8:
            raise ValueError(f"rgb_out must be {self.rgb.shape} uint8, got {rgb_out.shape} {rgb_out.dtype}")
        out = np.array(self.native, copy=True)
        changed = (rgb_out != self.rgb).any(axis=2)  # (H, W)
        if changed.any():
            new = rgb_out[changed]                   # (K, 3) uint8
            if self.grey:
                v = _from_u8(luma(new), out.dtype)   # (K,)
                if out.ndim == 2:
                    out[changed] = v
                else:                                # (H, W, 1) or LA: channel 0 is the grey
                    out[changed, 0] = v
            else:                                    # RGB or RGBA: channel 3 (alpha) untouched
                out[changed, :3] = _from_u8(new, out.dtype)
        return self.wrap(out)


def decode(image) -> DecodedImage:
    """Decode a numpy array, torch tensor or PIL image (see the module docstring).

    Raises TypeError / ValueError naming the problem (``to_rgb_uint8``'s checks: layout,
    dtype, float range, pixel limit)."""
    if isinstance(image, np.ndarray):
        rgb = to_rgb_uint8(image)  # validates layout, dtype and range
        return DecodedImage(rgb, image, image.ndim == 2 or image.shape[2] == 1, lambda out: out)
    mod = type(image).__module__
    if mod.startswith("torch"):
        import torch

        if isinstance(image, torch.Tensor):
            return _decode_torch(image, torch)
    if mod.startswith("PIL"):
        from PIL import Image

        if isinstance(image, Image.Image):
            return _decode_pil(image)
    to_rgb_uint8(image)  # raises the TypeError that names what is accepted
    raise TypeError(f"image must be a numpy array, a torch tensor or a PIL image, got {type(image).__name__}")


def _decode_torch(t, torch) -> DecodedImage:
    t = t.detach()
    device, dtype = t.device, t.dtype
    uint16 = getattr(torch, "uint16", None)
    if dtype == torch.bfloat16:      # numpy has no bfloat16; float32 holds it exactly
        arr = t.float().cpu().numpy()
    elif uint16 is not None and dtype == uint16:
        arr = t.to(torch.int32).cpu().numpy().astype(np.uint16)
    else:
        arr = t.cpu().numpy()
    rgb = to_rgb_uint8(arr)  # a new array, never the caller's memory

    def wrap(out: np.ndarray):
        if out.dtype == np.uint16:
            return torch.from_numpy(out.astype(np.int32)).to(device=device, dtype=dtype)
        return torch.from_numpy(out).to(device=device, dtype=dtype)

    return DecodedImage(rgb, arr, arr.ndim == 2 or arr.shape[2] == 1, wrap)


def _has_alpha(img) -> bool:
    if hasattr(img, "has_transparency_data"):
        return bool(img.has_transparency_data)
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _decode_pil(image) -> DecodedImage:
    from PIL import Image, ImageOps

    # the pixel limit before anything is decoded (an opened file decodes lazily)
    _check_pixels(image.height, image.width, MAX_PIXELS)
    img = ImageOps.exif_transpose(image)  # a new image, upright, orientation tag removed
    icc = img.info.get("icc_profile")
    if img.mode == "1":
        img = img.convert("L")
    elif img.mode not in _PIL_KEPT:
        if img.mode in _PIL_OTHER_SPACES:
            icc = None
        img = img.convert("RGBA" if _has_alpha(img) else "RGB")
    grey = _PIL_KEPT[img.mode]
    native = np.asarray(img)
    rgb = to_rgb_uint8(img)

    def wrap(out: np.ndarray):
        res = Image.fromarray(out)
        if icc:
            res.info["icc_profile"] = icc
        return res

    return DecodedImage(rgb, native, grey, wrap)


def decode_crops(crops, size: int):
    """(N, S, S, 3) uint8 contiguous numpy view/copy of a caller's aligned crops (numpy or
    torch, any device), and a wrap back to its kind; TypeError / ValueError naming the
    problem."""
    s = size
    if isinstance(crops, np.ndarray):
        arr = crops

        def wrap(a):
            return a
    else:
        import torch

        if not isinstance(crops, torch.Tensor):
            raise TypeError(f"crops must be a numpy array or torch tensor (N, {s}, {s}, 3) "
                            f"uint8, got {type(crops).__name__}")
        dev = crops.device
        arr = crops.detach().cpu().numpy()

        def wrap(a):
            return torch.from_numpy(a).to(dev)
    if arr.dtype != np.uint8:
        raise TypeError(f"crops must be uint8, got {arr.dtype}")
    if arr.ndim != 4 or arr.shape[1:] != (s, s, 3):
        hint = " (add a batch axis: crops[None])" if arr.ndim == 3 else ""
        raise ValueError(f"crops must have shape (N, {s}, {s}, 3) (this model's crop size "
                         f"is {s}), got {arr.shape}{hint}")
    return np.ascontiguousarray(arr), wrap
