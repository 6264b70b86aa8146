"""Alignment (identitydp_fast/pipeline/align.py): similarity fits, inverses, the model
crop template, and dlib's identity chip reproduced on real faces (LFW from ../shared/data;
the astronaut in examples/ always)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from identitydp_fast.io.shared_data import default_data_root
import torch

from identitydp_fast.pipeline.align import (apply_affine, crop_template, crop_transform,
                                            dlib_chip_needs_pyramid, dlib_chip_pyramid_levels,
                                            dlib_chip_transform, dlib_face_chips, invert_affine,
                                            point_down, pyramid_down2, similarity_transform)
from identitydp_fast.pipeline.decode import read_image
from identitydp_fast.pipeline.detect import model_path
from identitydp_fast.reference.warp_affine import warp_affine

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "astronaut.png"
ASTRONAUT_LM = np.array([[255, 104], [238, 105], [195, 101], [212, 103], [224, 135]], float)


def _data_dir() -> Path:
    return default_data_root()


def _lfw_rows(n: int, stride: int = 397):
    """n LFW rows with one detected face, spread over the CSV."""
    csv_path = _data_dir() / "lfw_landmarks.csv"
    if not csv_path.is_file():
        pytest.skip(f"LFW landmarks not found at {csv_path} (set IDP_DATA to ../shared/data)")
    with open(csv_path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["faces"] == "1"]
    return rows[::stride][:n]


def _landmarks(row) -> np.ndarray:
    return np.array([float(row[f"{a}{i}"]) for i in range(5) for a in "xy"]).reshape(5, 2)


def _random_similarity(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    ang = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 2
    s = 0.3 + 2 * torch.rand(n, generator=g, dtype=torch.float64)
    t = 100 * torch.rand(n, 2, generator=g, dtype=torch.float64)
    lin = torch.stack([torch.stack([s * ang.cos(), -s * ang.sin()], -1),
                       torch.stack([s * ang.sin(), s * ang.cos()], -1)], 1)
    return torch.cat([lin, t.unsqueeze(-1)], -1)


def test_similarity_recovers_exact_transform_batched():
    m = _random_similarity(7)
    src = torch.tensor(ASTRONAUT_LM).expand(7, 5, 2)
    dst = apply_affine(m, src)
    got = similarity_transform(src, dst[0])          # (N, 5, 2) src against one (5, 2) dst
    assert got.shape == (7, 2, 3) and got.dtype == torch.float64
    back = similarity_transform(dst, src)            # (N, K, 2) both: recovers the inverse of m
    assert torch.allclose(back, invert_affine(m), atol=1e-9)


def test_similarity_matches_umeyama_svd_and_never_reflects():
    g = torch.Generator().manual_seed(3)
    src = torch.randn(20, 5, 2, generator=g, dtype=torch.float64) * 30
    dst = torch.randn(5, 2, generator=g, dtype=torch.float64) * 30
    dst[:, 0] *= -1                                   # a mirror would fit better: must not use it
    got = similarity_transform(src, dst)
    for i in range(20):
        x, y = src[i].numpy(), dst.numpy()
        mx, my = x.mean(0), y.mean(0)
        cov = (y - my).T @ (x - mx) / 5
        u, d, vt = np.linalg.svd(cov)
        s = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
        r = u @ s @ vt
        c = np.trace(np.diag(d) @ s) / ((x - mx) ** 2).sum(1).mean()
        want = np.hstack([c * r, (my - c * r @ mx)[:, None]])
        assert np.allclose(got[i].numpy(), want, atol=1e-9)
    assert bool((torch.linalg.det(got[:, :, :2]) >= 0).all())


def test_invert_affine_and_errors():
    m = _random_similarity(5, seed=2)
    eye = torch.eye(3, dtype=torch.float64)[:2]
    full = lambda a: torch.cat([a, torch.tensor([[[0, 0, 1.0]]], dtype=a.dtype).expand(a.shape[0], 1, 3)], 1)
    assert torch.allclose((full(m) @ full(invert_affine(m)))[:, :2], eye.expand(5, 2, 3), atol=1e-12)
    with pytest.raises(ValueError, match=r"matrices\[0\] is not invertible"):
        invert_affine(torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(torch.ones(5, 2), torch.rand(5, 2))
    with pytest.raises(ValueError, match="landmarks"):
        crop_transform(torch.rand(3, 4, 2))
    with pytest.raises(ValueError, match="non-finite"):
        crop_transform(torch.full((5, 2), float("nan")))


def test_crop_template_scales_with_size():
    t128, t256 = crop_template(128), crop_template(256)
    assert torch.allclose((t128 + 0.5) * 2, t256 + 0.5)
    eyes = t128[:4].mean(0)
    assert abs(float(eyes[0]) - 63.5) < 1e-9 and abs(float(eyes[1]) - (0.40 * 128 - 0.5)) < 1e-9
    assert 0.30 < float(t128[0, 0] - t128[2, 0]) / 128 < 0.38   # outer eye corners ~34% apart
    # the transform puts the astronaut's landmarks on the template (to a few pixels)
    m = crop_transform(ASTRONAUT_LM, 256)
    on_crop = apply_affine(invert_affine(m), torch.tensor(ASTRONAUT_LM)[None])[0]
    assert float((on_crop - t256).norm(dim=1).max()) < 6.0


def test_chip_matches_dlib_on_astronaut():
    """dlib's own chip of the astronaut, bit for bit (always runs: examples/ ships)."""
    dlib = pytest.importorskip("dlib")
    img = read_image(ASTRONAUT)
    shape = dlib.full_object_detection(dlib.rectangle(175, 76, 265, 166),
                                       [dlib.point(int(x), int(y)) for x, y in ASTRONAUT_LM])
    want = dlib.get_face_chip(img, shape, 150, 0.25)
    details = dlib.get_face_chip_details(shape, 150, 0.25)
    m = dlib_chip_transform(ASTRONAUT_LM)
    # the rectangle and angle dlib reports: chip pixels 0 and size - 1 map to its corners,
    # the chip's centre pixel (size - 1)/2 to its centre
    centre = apply_affine(m, torch.tensor([[[74.5, 74.5]]], dtype=torch.float64))[0, 0]
    rect = details.rect
    assert abs(float(centre[0]) - (rect.left() + rect.right()) / 2) < 1e-9
    assert abs(float(centre[1]) - (rect.top() + rect.bottom()) / 2) < 1e-9
    assert abs(float(torch.atan2(m[0, 1, 0], m[0, 0, 0])) - details.angle) < 1e-12
    assert abs(float(torch.hypot(m[0, 0, 0], m[0, 1, 0])) * 149 - (rect.right() - rect.left())) < 1e-9
    got = dlib_face_chips(img, ASTRONAUT_LM[None])[0].numpy()
    assert np.array_equal(got, want)


def test_chip_matches_dlib_on_lfw():
    """>= 20 LFW faces: our chips against dlib.get_face_chip (pixels) and dlib's descriptor
    of our chip against its descriptor of its own chip."""
    dlib = pytest.importorskip("dlib")
    rows = _lfw_rows(24)
    assert len(rows) >= 20
    data = _data_dir() / "lfw"
    theirs, ours = [], []
    for row in rows:
        img = read_image(data / row["path"])
        lm = _landmarks(row)
        box = dlib.rectangle(*(int(row[k]) for k in ("left", "top", "right", "bottom")))
        shape = dlib.full_object_detection(box, [dlib.point(int(x), int(y)) for x, y in lm])
        theirs.append(np.asarray(dlib.get_face_chip(img, shape, 150, 0.25)))
        ours.append(dlib_face_chips(img, lm[None])[0].numpy())
        assert not bool(dlib_chip_needs_pyramid(dlib_chip_transform(lm))[0])
    diff = np.abs(np.stack(ours).astype(np.float64) - np.stack(theirs)).mean()
    assert diff < 1.0, f"mean abs pixel difference {diff}"
    net = dlib.face_recognition_model_v1(str(model_path("resnet")))
    d_ours = np.array(net.compute_face_descriptor(ours))
    d_theirs = np.array(net.compute_face_descriptor(theirs))
    assert np.abs(d_ours - d_theirs).max() < 1e-3


def test_landmarks_outside_the_image_fill_zeros():
    """A face mostly outside the frame: the chip exists and reads 0 where the image ends."""
    img = read_image(ASTRONAUT)
    lm = ASTRONAUT_LM - np.array([230.0, 0.0])               # most of the face left of x = 0
    chip = dlib_face_chips(img, lm[None])[0].numpy()
    assert chip.shape == (150, 150, 3)
    assert chip[:, :20].max() == 0 and chip[:, -20:].max() > 0
    m = crop_transform(lm, 128)
    crop = warp_affine(torch.from_numpy(img)[None], m, 128, 128, mean=[10.0] * 3)
    assert float(crop[0, :, :, :10].max()) == -10.0          # 0 before normalisation


def _upscaled_astronaut(k: float):
    """The astronaut resized by k (PIL bilinear) and its landmarks, rounded as dlib keeps them."""
    from PIL import Image
    img = read_image(ASTRONAUT)
    h, w = img.shape[:2]
    big = np.array(np.asarray(Image.fromarray(img).resize(
        (round(w * k), round(h * k)), Image.BILINEAR)))
    return big, np.round(ASTRONAUT_LM * k + (k - 1) / 2)


def _dlib_chip(dlib, img, lm):
    shape = dlib.full_object_detection(dlib.rectangle(0, 0, 10, 10),
                                       [dlib.point(int(x), int(y)) for x, y in lm])
    return np.asarray(dlib.get_face_chip(img, shape, 150, 0.25))


def test_pyramid_down2_matches_dlib():
    """pyramid_down2 against dlib.pyramid_down(2) on RGB images of odd and even sizes, and
    point_down against its point mapping."""
    dlib = pytest.importorskip("dlib")
    pyr = dlib.pyramid_down(2)
    rs = np.random.RandomState(0)
    for h, w in [(9, 9), (10, 11), (21, 30), (57, 64), (100, 77)]:
        img = (rs.rand(h, w, 3) * 256).astype(np.uint8)
        want = np.asarray(pyr(img))
        got = pyramid_down2(img).numpy()
        assert got.shape == want.shape == ((h - 3) // 2, (w - 3) // 2, 3)
        assert np.array_equal(got, want)
    assert pyramid_down2(np.zeros((8, 20, 3), np.uint8)).shape == (0, 0, 3)
    for x, y in [(0.0, 0.0), (10.0, 20.0), (-3.5, 7.25)]:
        q = pyr.point_down(dlib.dpoint(x, y))
        assert point_down(torch.tensor([x, y]), 1).tolist() == [q.x, q.y]


def test_chip_matches_dlib_on_large_faces():
    """Faces large enough for dlib to sample from its image pyramid (1 and 2 levels down):
    bit-identical chips; the direct warp (no pyramid) is visibly off for them."""
    dlib = pytest.importorskip("dlib")
    for k, levels in [(2, 0), (2.5, 1), (3, 1), (5, 2)]:
        img, lm = _upscaled_astronaut(k)
        m = dlib_chip_transform(lm)
        assert int(dlib_chip_pyramid_levels(m)[0]) == levels
        assert bool(dlib_chip_needs_pyramid(m)[0]) == (levels > 0)
        want = _dlib_chip(dlib, img, lm)
        got = dlib_face_chips(img, lm[None])[0].numpy()
        assert np.array_equal(got, want), f"x{k}: mean abs diff {np.abs(got - want.astype(float)).mean()}"
        if levels:
            direct = warp_affine(torch.from_numpy(img)[None], m, 150, 150, truncate=True)
            direct = direct[0].permute(1, 2, 0).numpy()
            assert np.abs(direct - want).mean() > 1.0


def test_chip_matches_dlib_random_faces_and_borders():
    """Random scales (0 to 3 pyramid levels), rotations and positions, faces partly outside
    the frame and frames of odd sizes: bit-identical to dlib.get_face_chip."""
    dlib = pytest.importorskip("dlib")
    big, _ = _upscaled_astronaut(3)
    rs = np.random.RandomState(1)
    seen = set()
    for it in range(80):
        img = big if it % 2 else np.ascontiguousarray(
            big[rs.randint(0, 300):, rs.randint(0, 300):][:rs.randint(200, 1200), :rs.randint(200, 1200)])
        h, w = img.shape[:2]
        s, a = np.exp(rs.uniform(np.log(0.5), np.log(12))), rs.uniform(-0.6, 0.6)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        lm = np.round((ASTRONAUT_LM - ASTRONAUT_LM.mean(0)) @ rot.T * s
                      + [rs.uniform(-50, w + 50), rs.uniform(-50, h + 50)])
        seen.add(int(dlib_chip_pyramid_levels(dlib_chip_transform(lm))[0]))
        want = _dlib_chip(dlib, img, lm)
        got = dlib_face_chips(img, lm[None])[0].numpy()
        assert np.array_equal(got, want), f"case {it}"
    assert seen >= {0, 1, 2}
