"""identitydp_fast.training.data: the identity split, the crop cache, CropDataset and the
identity statistics. Tests on real faces need ../shared/data (or $IDP_DATA) and skip
with the reason when it is absent; the statistics test runs anywhere."""
from __future__ import annotations

import csv
import importlib.util
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from identitydp_fast.io.shared_data import default_data_root
import torch

from identitydp_fast.training.data import (CropDataset, build_crop_cache, identity_statistics,
                                           split_lfw_identities, suggested_clip)

N_LIMIT = 40


def _data_dir() -> Path:
    return default_data_root()


@pytest.fixture(scope="module")
def data() -> Path:
    d = _data_dir()
    if not (d / "lfw_landmarks.csv").is_file() or not (d / "lfw").is_dir():
        pytest.skip(f"no LFW data at {d} (set IDP_DATA to the shared data folder)")
    return d


@pytest.fixture(scope="module")
def cache(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("crop_cache")
    report = build_crop_cache(data, out, size=128, sets=("lfw",), limit=N_LIMIT,
                              backend="cpu", verbose=False)
    return out, report


def test_split_is_disjoint_and_holds_out_people_with_5_images(data):
    csv_path = data / "lfw_landmarks.csv"
    train, held = split_lfw_identities(csv_path)
    with open(csv_path, newline="") as f:
        counts = Counter(r["path"].split("/")[0] for r in csv.DictReader(f)
                         if r["faces"] not in ("", "0") and r["x0"] != "")
    assert set(train).isdisjoint(held)
    assert set(train) | set(held) == set(counts)
    assert set(held) == {p for p, n in counts.items() if n >= 5}
    assert held and train and train == sorted(train) and held == sorted(held)
    assert split_lfw_identities(csv_path) == (train, held)  # deterministic


def test_missing_data_root_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="data folder not found"):
        build_crop_cache(tmp_path / "nowhere", tmp_path / "out", verbose=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not found"):
        build_crop_cache(tmp_path / "empty", tmp_path / "out", sets=("lfw",), verbose=False)


def test_cache_files_and_split(cache, data):
    out, report = cache
    assert report["built"] == ["lfw"] and report["images"] == N_LIMIT
    meta = json.loads((out / "lfw.json").read_text())
    _, held = split_lfw_identities(data / "lfw_landmarks.csv")
    for split, info in meta["splits"].items():
        crops = np.load(out / f"lfw_{split}_crops.npy")
        descs = np.load(out / f"lfw_{split}_descriptors.npy")
        assert crops.dtype == np.uint8 and crops.shape == (info["count"], 128, 128, 3)
        assert descs.dtype == np.float32 and descs.shape == (info["count"], 128)
        for e in info["entries"]:
            assert e["label"] == e["path"].split("/")[0]
            assert (e["label"] in held) == (split == "heldout")
    assert sum(i["count"] for i in meta["splits"].values()) == N_LIMIT
    assert not list(out.glob("*.tmp*"))


def test_crops_are_the_inference_alignment(cache, data):
    """Landmarks land on the crop template; crop pixels equal a fresh reference warp."""
    from identitydp_fast.pipeline.align import crop_template, crop_transform
    from identitydp_fast.pipeline.decode import read_image
    from identitydp_fast.ops.warp_affine import warp_affine

    out, _ = cache
    ds = CropDataset(out, "train")
    err = np.linalg.norm(ds.landmarks - crop_template(128).numpy()[None], axis=-1)
    assert err.mean() < 2.0, f"mean landmark error {err.mean():.2f} px in the crop"
    meta = json.loads((out / "lfw.json").read_text())
    rows = {r["path"]: r for r in csv.DictReader(open(data / "lfw_landmarks.csv", newline=""))}
    for k in (0, len(ds) - 1):
        rel = ds.paths[k].split("/", 1)[1]
        lm = np.array([[float(rows[rel][f"x{i}"]), float(rows[rel][f"y{i}"])] for i in range(5)])
        img = torch.from_numpy(read_image(str(data / "lfw" / rel)))[None]
        ref = warp_affine(img, crop_transform(lm, 128), 128, 128, backend="reference")
        ref = ref.round().clamp(0, 255).to(torch.uint8)[0]
        diff = (ds[k][0].int() - ref.int()).abs().max()
        assert int(diff) <= 1, f"{rel}: cached crop differs from the warp by {int(diff)}"
    assert meta["size"] == 128


def test_descriptors_match_dlib(cache, data):
    dlib = pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin)")
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models is not installed: no dlib model file")
    from identitydp_fast.models.dlib_resnet import find_model_file

    net = dlib.face_recognition_model_v1(str(find_model_file()))
    out, _ = cache
    rows = {r["path"]: r for r in csv.DictReader(open(data / "lfw_landmarks.csv", newline=""))}
    ds = CropDataset(out, "heldout")
    descs = ds.descriptors
    from identitydp_fast.pipeline.decode import read_image

    same_pixels = own_decode = 0.0
    for k in range(0, len(ds), 3):
        r = rows[ds.paths[k].split("/", 1)[1]]
        box = dlib.rectangle(*(int(r[c]) for c in ("left", "top", "right", "bottom")))
        shape = dlib.full_object_detection(
            box, [dlib.point(int(r[f"x{i}"]), int(r[f"y{i}"])) for i in range(5)])
        path = str(data / "lfw" / r["path"])
        # dlib end to end (its own JPEG decoder: up to ~13 grey levels off Pillow's)
        theirs = np.array(net.compute_face_descriptor(
            dlib.get_face_chip(dlib.load_rgb_image(path), shape, size=150, padding=0.25)))
        own_decode = max(own_decode, float(np.linalg.norm(descs[k] - theirs)))
        # dlib's chip + network on the pixels the project decodes (Pillow): exact
        theirs = np.array(net.compute_face_descriptor(
            dlib.get_face_chip(np.ascontiguousarray(read_image(path)), shape, size=150,
                               padding=0.25)))
        same_pixels = max(same_pixels, float(np.linalg.norm(descs[k] - theirs)))
    assert same_pixels < 1e-4, f"dlib distance to dlib on the same pixels {same_pixels:.2g}"
    assert own_decode < 0.03, f"dlib distance to dlib end to end {own_decode:.2g} (same < 0.6)"


def test_second_build_does_no_work(cache, data, monkeypatch):
    out, _ = cache
    import identitydp_fast.training.data as mod

    def boom(*a, **k):
        raise AssertionError("a complete cache was rebuilt")
    monkeypatch.setattr(mod, "_build_split", boom)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    rep = build_crop_cache(data, out, size=128, sets=("lfw",), limit=N_LIMIT, verbose=False)
    assert rep["built"] == [] and rep["skipped"] == ["lfw"] and rep["images"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    with pytest.raises(ValueError, match="already holds"):
        build_crop_cache(data, out, size=64, sets=("lfw",), limit=N_LIMIT, verbose=False)


def test_crop_dataset_shapes_and_dtypes(cache):
    out, _ = cache
    train, held = CropDataset(out, "train"), CropDataset(out, "heldout", as_float=True)
    assert len(train) + len(held) == N_LIMIT
    crop, desc, label = train[0]
    assert crop.shape == (3, 128, 128) and crop.dtype == torch.uint8
    assert desc.shape == (128,) and desc.dtype == torch.float32
    assert isinstance(label, int) and 0 <= label < len(train.names)
    fcrop, _, _ = held[-1]
    assert fcrop.dtype == torch.float32 and -1.0 <= float(fcrop.min()) <= float(fcrop.max()) <= 1.0
    assert train.landmarks.shape == (len(train), 5, 2) and train.labels.shape == (len(train),)
    assert set(train.names).isdisjoint(held.names)
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=4)))
    assert batch[0].shape == (4, 3, 128, 128) and batch[1].shape == (4, 128)
    norms = np.linalg.norm(train.descriptors, axis=1)
    assert ((norms > 0.8) & (norms < 2.0)).all()
    with pytest.raises(ValueError, match="no 'valid' split"):
        CropDataset(out, "valid")


def test_identity_statistics_on_synthetic_data():
    gen = torch.Generator().manual_seed(0)
    centre = torch.randn(128, generator=gen)
    e = (centre + 0.3 * torch.randn(5000, 128, generator=gen)) * 1.5
    s = identity_statistics(e.numpy())
    u = e.double() / e.double().norm(dim=1, keepdim=True)
    mu = u.mean(0)
    assert np.allclose(s["mean_unit"], mu.numpy(), atol=1e-12)
    assert s["mean_unit_norm"] == pytest.approx(float(mu.norm()))
    r = (u - mu).abs().sum(1)
    q = s["residual_l1_quantiles"]
    assert list(q) == ["0.5", "0.9", "0.99", "0.999", "max"]
    assert q["0.5"] == pytest.approx(float(r.median()), rel=1e-3)
    assert q["max"] == pytest.approx(float(r.max()))
    assert q["0.5"] <= q["0.9"] <= q["0.99"] <= q["0.999"] <= q["max"]
    assert s["norm_mean"] == pytest.approx(float(e.double().norm(dim=1).mean()))
    assert s["count"] == 5000
    clip = suggested_clip(s)
    assert clip >= q["0.99"] and clip - q["0.99"] < 0.5 and (clip * 2) == int(clip * 2)
    with pytest.raises(ValueError):
        identity_statistics(np.zeros((0, 128)))
    with pytest.raises(ValueError):
        identity_statistics(np.zeros((3, 128)))
