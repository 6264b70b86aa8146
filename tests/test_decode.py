"""Decoding (identitydp_fast/pipeline/decode.py): every accepted layout, dtype and PIL
mode to (H, W, 3) uint8 RGB, EXIF orientation, the pixel limit, and clear errors."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from identitydp_fast.pipeline.decode import read_image, to_rgb_uint8

Image = pytest.importorskip("PIL.Image")
ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"


def _rgb():
    return np.array(Image.open(ASTRONAUT).convert("RGB"))


def test_astronaut_file():
    img = read_image(ASTRONAUT)
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8 and img.flags.c_contiguous


def test_numpy_layouts_and_dtypes():
    rgb = _rgb()
    assert np.array_equal(to_rgb_uint8(rgb), rgb)
    assert to_rgb_uint8(rgb) is not rgb
    grey = rgb[..., 0]
    for g in (grey, grey[..., None]):
        out = to_rgb_uint8(g)
        assert out.shape == (512, 512, 3) and np.array_equal(out[..., 2], grey)
    rgba = np.concatenate([rgb, np.full((512, 512, 1), 7, np.uint8)], axis=2)
    assert np.array_equal(to_rgb_uint8(rgba), rgb)
    assert np.array_equal(to_rgb_uint8(rgb.astype(np.uint16) * 257), rgb)
    assert np.array_equal(to_rgb_uint8(rgb / 255.0), rgb)
    assert np.array_equal(to_rgb_uint8((rgb / 255.0).astype(np.float32)), rgb)
    assert np.array_equal(to_rgb_uint8(rgb[::2, ::2]), rgb[::2, ::2])    # strided views


def test_torch_tensors():
    rgb = _rgb()
    assert np.array_equal(to_rgb_uint8(torch.from_numpy(rgb)), rgb)
    assert np.array_equal(to_rgb_uint8(torch.from_numpy(rgb).float() / 255), rgb)
    with pytest.raises(ValueError, match="channels-first"):
        to_rgb_uint8(torch.from_numpy(rgb).permute(2, 0, 1))


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "1", "YCbCr"])
def test_pil_modes(mode):
    pil = Image.open(ASTRONAUT).convert("RGB")
    out = to_rgb_uint8(pil.convert(mode))
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8
    # Pillow's own conversion back to RGB, alpha dropped
    assert np.array_equal(out, np.asarray(pil.convert(mode).convert("RGB")))
    if mode in ("RGBA", "CMYK"):
        assert np.abs(out.astype(int) - np.asarray(pil)).max() <= (0 if mode == "RGBA" else 1)


def test_pil_16bit_grey_png():
    grey = _rgb()[..., 1].astype(np.uint16) * 257
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")           # a real 16-bit PNG
    buf.seek(0)
    out = read_image(buf)
    assert np.array_equal(out, np.repeat((grey // 257).astype(np.uint8)[..., None], 3, axis=2))


def test_exif_orientation_is_applied():
    pil = Image.open(ASTRONAUT).convert("RGB").crop((0, 0, 512, 300))
    exif = Image.Exif()
    exif[0x0112] = 6                                         # "rotate 90 CW to display"
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", exif=exif, quality=95)
    buf.seek(0)
    out = read_image(buf)
    assert out.shape == (512, 300, 3)


def test_pixel_limit():
    with pytest.raises(ValueError, match="max_pixels=1000"):
        to_rgb_uint8(np.zeros((100, 100, 3), np.uint8), max_pixels=1000)
    big = Image.new("RGB", (8000, 7000))                      # 56 MP > the 50 MP default
    with pytest.raises(ValueError, match="over the limit"):
        to_rgb_uint8(big)
    assert to_rgb_uint8(np.zeros((100, 100, 3), np.uint8), max_pixels=10_000).shape == (100, 100, 3)


def test_bad_inputs_name_the_problem():
    with pytest.raises(TypeError, match="int64"):
        to_rgb_uint8(np.zeros((4, 4, 3), np.int64))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_rgb_uint8(np.full((4, 4, 3), 255.0))
    with pytest.raises(ValueError, match="NaN"):
        to_rgb_uint8(np.full((4, 4, 3), np.nan))
    with pytest.raises(ValueError, match="shape"):
        to_rgb_uint8(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        to_rgb_uint8(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(TypeError, match="read_image"):
        to_rgb_uint8(str(ASTRONAUT))
    with pytest.raises(TypeError, match="list"):
        to_rgb_uint8([[1, 2, 3]])
