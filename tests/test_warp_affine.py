"""The reference warp op (identitydp_fast/reference/warp_affine.py): exactness on
identity and integer shifts, bilinear values, float64 vs float32, zeros outside, and
warp -> paste_back round trip on a real face."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from identitydp_fast.pipeline.align import crop_face_ellipse, crop_transform
from identitydp_fast.pipeline.decode import read_image
from identitydp_fast.reference.warp_affine import feathered_ellipse, paste_back, warp_affine

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"
# landmarks of the astronaut's face (dlib HOG + shape_predictor_5, upsample 1)
ASTRONAUT_LM = np.array([[255, 104], [238, 105], [195, 101], [212, 103], [224, 135]], float)


def _images(n, h, w, c, dtype=torch.uint8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, h, w, c), generator=g, dtype=torch.int64).to(dtype)


def _eye(n, dtype=torch.float32):
    return torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=dtype).expand(n, 2, 3).clone()


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 97, 33, 3), (3, 16, 1025, 4)])
def test_identity_reproduces_image(shape):
    n, h, w, c = shape
    img = _images(n, h, w, c)
    out = warp_affine(img, _eye(n), h, w)
    assert out.dtype == torch.float32 and out.shape == (n, c, h, w)
    assert torch.equal(out, img.permute(0, 3, 1, 2).float())


@pytest.mark.parametrize("dx,dy", [(3, -2), (-5, 7), (0, 1)])
def test_integer_translation_shifts_exactly(dx, dy):
    img = _images(2, 40, 50, 3)
    m = _eye(2)
    m[:, 0, 2], m[:, 1, 2] = dx, dy          # output (c, r) reads input (c + dx, r + dy)
    out = warp_affine(img, m, 40, 50)
    want = torch.zeros(2, 3, 40, 50)
    src = img.permute(0, 3, 1, 2).float()
    r0, r1 = max(0, -dy), min(40, 40 - dy)
    c0, c1 = max(0, -dx), min(50, 50 - dx)
    want[:, :, r0:r1, c0:c1] = src[:, :, r0 + dy:r1 + dy, c0 + dx:c1 + dx]
    assert torch.equal(out, want)


def test_bilinear_value_mean_scale_and_layout():
    img = torch.tensor([[[0.0], [10.0]], [[20.0], [30.0]]]).unsqueeze(0)  # (1, 2, 2, 1)
    m = torch.tensor([[[1.0, 0, 0.25], [0, 1.0, 0.5]]])
    out = warp_affine(img, m, 1, 1, mean=[5.0], scale=0.5)
    # (1 - .5)((1 - .25) 0 + .25 10) + .5((1 - .25) 20 + .25 30) = 12.5
    assert out.shape == (1, 1, 1, 1) and float(out) == pytest.approx((12.5 - 5.0) * 0.5)
    trunc = warp_affine(img, m, 1, 1, mean=[5.0], scale=0.5, truncate=True)
    assert float(trunc) == pytest.approx((12.0 - 5.0) * 0.5)


def test_float64_and_float32_agree():
    img = _images(2, 64, 80, 3)
    g = torch.Generator().manual_seed(1)
    ang = torch.rand(2, generator=g) - 0.5
    s = 0.6 + torch.rand(2, generator=g)
    m = torch.stack([torch.stack([s * ang.cos(), -s * ang.sin(), 10 + 5 * torch.rand(2, generator=g)], -1),
                     torch.stack([s * ang.sin(), s * ang.cos(), 3 + 5 * torch.rand(2, generator=g)], -1)], 1)
    mean, scale = [122.782, 117.001, 104.298], 1 / 256
    o64 = warp_affine(img.double(), m.double(), 50, 70, mean, scale)
    o32 = warp_affine(img, m.float(), 50, 70, mean, scale)
    assert o64.dtype == torch.float64 and o32.dtype == torch.float32
    # float32 coordinates near x ~ 100 are off by ~1e-5 px: ~3e-3 grey levels at an edge
    assert float((o64 - o32.double()).abs().max()) < 255 * 3e-5 * scale * 10 + 1e-6


def test_outside_reads_zero_before_normalisation():
    img = torch.full((1, 8, 8, 3), 200, dtype=torch.uint8)
    m = _eye(1)
    m[0, 0, 2] = 100.0                                    # entirely to the right of the image
    out = warp_affine(img, m, 4, 4, mean=[1.0, 2.0, 3.0], scale=2.0)
    assert torch.equal(out, ((torch.zeros(1, 3, 4, 4) - torch.tensor([1.0, 2, 3]).view(1, 3, 1, 1)) * 2))
    # non-finite matrices read zeros too instead of failing deep inside
    m[0, 0, 0] = float("nan")
    assert torch.equal(warp_affine(img, m, 4, 4), torch.zeros(1, 3, 4, 4))
    # half a pixel past the last column: the in-image tap keeps its weight, the other reads 0
    m = _eye(1)
    m[0, 0, 2] = 7.5
    assert float(warp_affine(img, m, 1, 1)[0, 0, 0, 0]) == pytest.approx(100.0)


def test_bad_arguments_name_the_problem():
    img = _images(1, 4, 4, 3)
    with pytest.raises(ValueError, match="matrices"):
        warp_affine(img, torch.zeros(2, 2, 3), 4, 4)
    with pytest.raises(ValueError, match="out_h"):
        warp_affine(img, _eye(1), 0, 4)
    with pytest.raises(ValueError, match="mean"):
        warp_affine(img, _eye(1), 4, 4, mean=[1.0, 2.0])
    with pytest.raises(TypeError, match="uint8 or floating"):
        warp_affine(img.to(torch.int32), _eye(1), 4, 4)
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        warp_affine(img[0], _eye(1), 4, 4)


def test_feathered_ellipse():
    m = feathered_ellipse(65, 65, feather=0.2)
    assert float(m[32, 32]) == 1.0 and float(m[0, 0]) == 0.0 and float(m[32, 0]) < 0.05
    with pytest.raises(ValueError, match="feather"):
        feathered_ellipse(8, 8, feather=0.0)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * math.log10(255.0 ** 2 / max(mse, 1e-12))


@pytest.mark.parametrize("size", [128, 256])
def test_warp_then_paste_back_reproduces_the_face(size):
    frame = read_image(ASTRONAUT)
    m = crop_transform(ASTRONAUT_LM, size)[0]                      # crop -> frame
    crop = warp_affine(torch.from_numpy(frame)[None], m[None], size, size)[0].permute(1, 2, 0)
    (cx, cy), (rx, ry) = crop_face_ellipse(size)
    mask = feathered_ellipse(size, size, (cx, cy), (rx, ry), feather=0.15)
    out = paste_back(np.zeros_like(frame), crop, m, mask)        # into a black frame
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == frame.shape
    # where the warped mask is 1 (inside the face ellipse), the frame comes back
    inv_mask = paste_back(np.zeros_like(frame), torch.full((size, size, 3), 255.0), m, mask)
    inside = inv_mask[..., 0] == 255
    assert inside.sum() > 5000
    psnr = _psnr(out[inside], frame[inside])
    assert psnr > 30.0, psnr
    # outside the footprint the frame is untouched; the original frame is not modified
    assert out[:40].max() == 0 and out[-40:].max() == 0


def test_paste_back_outside_frame_and_bad_matrix():
    frame = np.full((32, 32, 3), 7, np.uint8)
    m = torch.tensor([[1.0, 0, 1000.0], [0, 1.0, 0]])
    assert np.array_equal(paste_back(frame, np.zeros((8, 8, 3), np.uint8), m), frame)
    with pytest.raises(ValueError, match="not invertible"):
        paste_back(frame, np.zeros((8, 8, 3), np.uint8), torch.zeros(2, 3))
