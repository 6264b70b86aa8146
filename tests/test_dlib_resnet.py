"""dlib's face-recognition ResNet in PyTorch (identitydp_fast/reference/dlib_resnet.py)
against dlib's own ``compute_face_descriptor`` on real face chips, its residual join
(identitydp_fast/reference/residual_add.py), float64, and IdentityEncoder's input checks.

Accuracy: both run the same float32 network and differ only in the order of float32
sums; the measured gap is ~3e-7 on descriptors of norm ~1.4, the bound asserted 1e-5.
"""
from __future__ import annotations

import csv
import importlib.util
import pathlib

import numpy as np
import pytest

from identitydp_fast.io.shared_data import default_data_root
import torch

from identitydp_fast.pipeline.identity import IdentityEncoder
from identitydp_fast.reference.residual_add import residual_add_relu

ROOT = pathlib.Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "astronaut.png"
TOL = 1e-5  # max abs diff to dlib, and float32 vs float64
N_LFW = 45


def _data_dir() -> pathlib.Path:
    return default_data_root()


# -- fixtures ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_path() -> pathlib.Path:
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models is not installed (pip install face-recognition-models): "
                    "no dlib model file")
    from identitydp_fast.models.dlib_resnet import find_model_file
    return find_model_file()


@pytest.fixture(scope="module")
def weights(model_path):
    from identitydp_fast.models.dlib_resnet import load_dlib_resnet_weights
    return load_dlib_resnet_weights(model_path)


@pytest.fixture(scope="module")
def net(weights):
    from identitydp_fast.reference.dlib_resnet import DlibResNet
    return DlibResNet(weights).eval()


@pytest.fixture(scope="module")
def dlib(model_path):
    return pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin): "
                                              "nothing to compare the port against")


@pytest.fixture(scope="module")
def dlib_net(dlib, model_path):
    return dlib.face_recognition_model_v1(str(model_path))


@pytest.fixture(scope="module")
def astronaut_chips(dlib) -> list[np.ndarray]:
    """Every face dlib finds in examples/astronaut.png as a 150x150 chip, plus its mirror
    image and 3 jittered copies: 10 chips (uint8 (150, 150, 3) RGB)."""
    if not ASTRONAUT.is_file():
        pytest.skip(f"{ASTRONAUT.relative_to(ROOT)} is missing: no shipped face image to test on")
    from identitydp_fast.models.dlib_resnet import find_model_file
    img = dlib.load_rgb_image(str(ASTRONAUT))
    predictor = dlib.shape_predictor(str(find_model_file("shape_predictor_5_face_landmarks.dat")))
    chips = []
    for box in dlib.get_frontal_face_detector()(img, 1):
        chip = dlib.get_face_chip(img, predictor(img, box), size=150, padding=0.25)
        chips += [chip, np.ascontiguousarray(chip[:, ::-1])] + list(dlib.jitter_image(chip, 3))
    assert chips, "dlib found no face in the astronaut image"
    return chips


def _ours(net, chips: list[np.ndarray], dtype=torch.float32) -> np.ndarray:
    x = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).to(dtype)  # (N, 3, 150, 150)
    with torch.no_grad():
        return net.to(dtype)(x).to(torch.float64).numpy()


def _theirs(dlib_net, chips: list[np.ndarray]) -> np.ndarray:
    return np.array([np.array(dlib_net.compute_face_descriptor(c)) for c in chips])


# -- against dlib -------------------------------------------------------------------------

def test_matches_dlib_on_shipped_image(net, dlib_net, astronaut_chips):
    ours, theirs = _ours(net, astronaut_chips), _theirs(dlib_net, astronaut_chips)
    assert ours.shape == theirs.shape == (len(astronaut_chips), 128)
    err = np.abs(ours - theirs).max()
    assert err <= TOL, f"max abs diff to dlib {err:.3g} > {TOL}"
    norms = np.linalg.norm(theirs, axis=1)
    assert ((norms > 0.8) & (norms < 2.0)).all(), norms  # dlib's scale, not normalised


def test_matches_dlib_on_lfw(net, dlib, dlib_net):
    """N_LFW faces spread over LFW, chipped from the recorded box + 5 landmarks."""
    data = _data_dir()
    table = data / "lfw_landmarks.csv"
    if not table.is_file():
        pytest.skip(f"no LFW data at {data} (set IDP_DATA to the shared data folder)")
    with open(table, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["faces"] not in ("", "0") and r["left"]]
    rows = rows[::max(1, len(rows) // N_LFW)][:N_LFW]
    chips = []
    for r in rows:
        box = dlib.rectangle(*(int(r[k]) for k in ("left", "top", "right", "bottom")))
        points = [dlib.point(int(r[f"x{i}"]), int(r[f"y{i}"])) for i in range(5)]
        img = dlib.load_rgb_image(str(data / "lfw" / r["path"]))
        chips.append(dlib.get_face_chip(img, dlib.full_object_detection(box, points),
                                        size=150, padding=0.25))
    assert len(chips) >= 40
    ours, theirs = _ours(net, chips), _theirs(dlib_net, chips)
    err = np.abs(ours - theirs).max(axis=1)
    worst = int(err.argmax())
    assert err.max() <= TOL, f"max abs diff to dlib {err.max():.3g} > {TOL} on {rows[worst]['path']}"


# -- float64, the residual join, the swap hook ---------------------------------------------

def _synthetic_chips(n: int) -> list[np.ndarray]:
    """Smooth random images (a face-like dynamic range without a data file)."""
    gen = torch.Generator().manual_seed(7)
    low = torch.rand(n, 3, 10, 10, generator=gen) * 255
    x = torch.nn.functional.interpolate(low, size=(150, 150), mode="bilinear", align_corners=False)
    return list(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())


def test_float64_agrees_with_float32(weights):
    from identitydp_fast.reference.dlib_resnet import DlibResNet
    model = DlibResNet(weights).eval()
    chips = _synthetic_chips(2)
    if ASTRONAUT.is_file() and importlib.util.find_spec("dlib") is not None:
        import dlib as _dlib
        chips.append(np.ascontiguousarray(_dlib.load_rgb_image(str(ASTRONAUT))[76:226, 175:325]))
    f32 = _ours(model, chips, torch.float32)
    x64 = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).double()
    with torch.no_grad():
        y64 = model.double()(x64)
    assert y64.dtype == torch.float64
    err = np.abs(f32 - y64.numpy()).max()
    assert err <= TOL, f"float32 vs float64 max abs diff {err:.3g} > {TOL}"


def test_residual_add_zero_fills_bottom_right_and_channels():
    """dlib's add_prev: the larger shape wins, the smaller operand is zero-padded at the
    trailing channels, bottom rows and right columns (never cropped, never centred)."""
    main = torch.arange(1, 1 + 2 * 3 * 3, dtype=torch.float64).view(1, 2, 3, 3)
    short = -torch.ones(1, 1, 4, 4, dtype=torch.float64) * 0.5
    out = residual_add_relu(main, short, pool_shortcut=False)
    assert out.shape == (1, 2, 4, 4) and out.dtype == torch.float64
    want = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    want[:, :, :3, :3] += main
    want[:, :1] += short
    torch.testing.assert_close(out, want.clamp_min(0), rtol=0, atol=0)
    assert out[0, 0, 3, 3] == 0 and out[0, 1, 3, 0] == 0  # shortcut-only / nothing


@pytest.mark.parametrize("main_shape, short_shape, pool, out_shape", [
    ((2, 64, 17, 17), (2, 32, 35, 35), True, (2, 64, 17, 17)),   # first down block
    ((2, 256, 3, 3), (2, 128, 8, 8), True, (2, 256, 4, 4)),      # main 3x3, shortcut 4x4
    ((2, 256, 1, 1), (2, 256, 4, 4), True, (2, 256, 2, 2)),      # main 1x1, shortcut 2x2
    ((2, 32, 35, 35), (2, 32, 35, 35), False, (2, 32, 35, 35)),
])
def test_residual_add_shapes_and_pooling(main_shape, short_shape, pool, out_shape):
    gen = torch.Generator().manual_seed(1)
    main = torch.randn(main_shape, generator=gen, dtype=torch.float64)
    short = torch.randn(short_shape, generator=gen, dtype=torch.float64)
    out = residual_add_relu(main, short, pool)
    assert out.shape == out_shape
    s = torch.nn.functional.avg_pool2d(short, 2, 2) if pool else short
    want = torch.zeros(out_shape, dtype=torch.float64)
    want[:, :main.shape[1], :main.shape[2], :main.shape[3]] += main
    want[:, :s.shape[1], :s.shape[2], :s.shape[3]] += s
    torch.testing.assert_close(out, want.relu(), rtol=0, atol=1e-15)
    torch.testing.assert_close(residual_add_relu(main.float(), short.float(), pool),
                               want.relu().float(), rtol=1e-6, atol=1e-6)


def test_residual_add_rejects_bad_operands():
    x = torch.zeros(1, 2, 3, 3)
    with pytest.raises(ValueError, match=r"same batch size N, got 1 and 2"):
        residual_add_relu(x, torch.zeros(2, 2, 3, 3), False)
    with pytest.raises(ValueError, match=r"must be 4-D"):
        residual_add_relu(x, torch.zeros(2, 3, 3), False)
    with pytest.raises(TypeError, match=r"one floating dtype"):
        residual_add_relu(x, x.double(), False)


def test_every_add_prev_goes_through_the_hook(weights):
    """The engine swaps the residual join: all 14 of them, 4 with a pooled shortcut."""
    from identitydp_fast.reference.dlib_resnet import DlibResNet
    calls = []

    def hook(main, shortcut, pool):
        calls.append(pool)
        return residual_add_relu(main, shortcut, pool)

    model = DlibResNet(weights, residual_add=hook).eval()
    with torch.no_grad():
        model(torch.full((1, 3, 150, 150), 128.0))
    assert len(calls) == 14 and sum(calls) == 4


# -- IdentityEncoder ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def encoder(model_path):
    return IdentityEncoder(backend="reference")


def test_encoder_layouts_agree(encoder, net):
    chips = np.stack(_synthetic_chips(2))                                  # (2, 150, 150, 3) uint8
    a = encoder(chips)
    b = encoder(torch.from_numpy(chips))
    c = encoder(torch.from_numpy(chips).permute(0, 3, 1, 2).double())     # (2, 3, 150, 150) float64
    assert a.dtype == torch.float32 and a.shape == (2, 128)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, c, rtol=0, atol=0)
    torch.testing.assert_close(a, torch.from_numpy(_ours(net.float(), list(chips))).float(),
                               rtol=0, atol=0)
    assert encoder(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)
    assert encoder.backend == "reference"


_GOOD = np.zeros((2, 150, 150, 3), np.uint8)


@pytest.mark.parametrize("chips, error, message", [
    ([[0]], TypeError, r"numpy array or torch tensor, got list"),
    (_GOOD[0], ValueError, r"uint8 chips must have shape \(N, 150, 150, 3\) RGB, got \(150, 150, 3\) "
                           r"\(add a batch axis"),
    (np.zeros((2, 160, 160, 3), np.uint8), ValueError, r"got \(2, 160, 160, 3\)"),
    (np.zeros((2, 150, 150, 4), np.uint8), ValueError, r"got \(2, 150, 150, 4\)"),
    (np.zeros((2, 3, 150, 150), np.uint8), ValueError, r"uint8 chips are channels-last"),
    (np.zeros((2, 150, 150, 3), np.float32), ValueError, r"float chips are channels-first"),
    (np.zeros((2, 3, 150, 150), np.int32), TypeError, r"uint8 or floating point, got numpy dtype int32"),
    (torch.zeros(2, 3, 150, 150, dtype=torch.int64), TypeError, r"got dtype torch.int64"),
    (torch.full((1, 3, 150, 150), float("nan")), ValueError, r"NaN or inf"),
    (torch.full((1, 3, 150, 150), -1.0), ValueError, r"\[0, 255\], got range \[-1, -1\]"),
])
def test_encoder_rejects_bad_chips(encoder, chips, error, message):
    with pytest.raises(error, match=message):
        encoder(chips)


def test_encoder_rejects_unknown_backend():
    with pytest.raises(ValueError, match=r"backend='tpu' has no identity encoder; choose one of "
                                         r"\['cpu', 'cuda', 'reference', 'triton'\] or 'auto'"):
        IdentityEncoder(backend="tpu")
