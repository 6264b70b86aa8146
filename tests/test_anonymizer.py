"""The Anonymizer API (identitydp_fast/anonymizer.py and identitydp_fast/pipeline/).

No trained weights are needed: a random-init fast-128 AEI-Net with DP statistics set from
random descriptors is saved to a temporary file and used as the model. Images: the
public-domain examples/astronaut.png (two HOG detections: her face at score 1.16 and her
mission patch at 0.12; most tests pin detector="hog" for those two faces; the default CNN
detector finds her face only), synthetic images, and LFW when ../shared/data is present.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import identitydp_fast
from identitydp_fast import Anonymizer, FaceRecord, FaceResult, anonymizer as anon_mod
from identitydp_fast.models.weights import save_model
from identitydp_fast.pipeline import blend, generate
from identitydp_fast.pipeline import decode as decode_stage
from identitydp_fast.pipeline.align import crop_transform, dlib_face_chips, invert_affine
from identitydp_fast.pipeline.blend import paste_faces
from identitydp_fast.pipeline.decode import read_image
from identitydp_fast.privacy import keys as keys_mod
from identitydp_fast.privacy.accounting import MAX_EPSILON, check_epsilon
from identitydp_fast.reference.aei_net import AEINet
from identitydp_fast.reference.warp_affine import paste_back, warp_affine
from identitydp_fast.io.shared_data import default_data_root

ROOT = Path(__file__).resolve().parents[1]
ASTRO = read_image(ROOT / "examples" / "astronaut.png")            # (512, 512, 3)
SIGMA = 4.0                                                        # stored in the test model
K1, K2 = bytes(range(32)), bytes(range(1, 33))
# a 180 x 180 cut around her face: the small image most tests use (faces passed explicitly)
SMALL_ORIGIN = (130, 40)                                           # (x, y) of the cut
SMALL = np.ascontiguousarray(ASTRO[40:220, 130:310])


def _random_model(seed: int = 0) -> AEINet:
    torch.manual_seed(seed)
    model = AEINet("fast-128").eval()
    gen = torch.Generator().manual_seed(seed)
    shared = torch.randn(128, generator=gen)
    desc = 2.5 * shared / shared.norm() + 0.12 * torch.randn(200, 128, generator=gen)  # dlib-like
    model.bottleneck.set_identity_statistics(desc, clip=5.0)
    return model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny-fast-128.safetensors"
    save_model(_random_model(), path, summary={"hparams": {"degrade_sigma": SIGMA}})
    return path


@pytest.fixture(scope="module")
def anon(model_path):
    return Anonymizer(model_path, detector="hog")


@pytest.fixture(scope="module")
def anon_ref(model_path):
    return Anonymizer(model_path, backend="reference", detector="hog")


@pytest.fixture(scope="module")
def astro_faces(anon):
    faces = anon.detect(ASTRO)
    assert len(faces) == 2, [f.score for f in faces]
    return faces


@pytest.fixture(scope="module")
def small_faces(astro_faces):
    """Her face in SMALL's coordinates (the caller-supplied path)."""
    f = max(astro_faces, key=lambda r: r.score)
    dx, dy = SMALL_ORIGIN
    return [FaceRecord(box=(f.box[0] - dx, f.box[1] - dy, f.box[2] - dx, f.box[3] - dy),
                       landmarks=f.landmarks - (dx, dy), score=float("nan"))]


def union_mask(shape, faces, anonymizer) -> np.ndarray:
    """(H, W) bool: frame pixels where any face's paste-back mask is > 0 (float64 warp)."""
    h, w = shape[:2]
    s = anonymizer.crop_size
    lm = np.stack([f.landmarks for f in faces])
    inv = invert_affine(crop_transform(lm, s))                       # frame -> crop
    masks = warp_affine(anonymizer.paste_mask[None, :, :, None].expand(len(faces), s, s, 1),
                        inv, h, w)[:, 0]
    return (masks > 0).any(dim=0).numpy()


def assert_only_faces_changed(img_in, img_out, faces, anonymizer):
    """Bit-identical outside the union of pasted masks, and really changed inside."""
    u = union_mask(np.shape(img_in), faces, anonymizer)
    a, b = np.asarray(img_in), np.asarray(img_out)
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a[~u], b[~u])
    changed = (a != b).reshape(a.shape[0], a.shape[1], -1).any(axis=2)
    assert changed.sum() > 0.3 * u.sum(), (changed.sum(), u.sum())
    return changed


# ---- construction, model files, validation ---------------------------------------------

def test_exports_and_constants():
    from identitydp_fast.evaluation import harness

    assert identitydp_fast.Anonymizer is Anonymizer and identitydp_fast.FaceResult is FaceResult
    pkg = Path(identitydp_fast.__file__).resolve().parent
    assert generate.DEFAULT_MODEL_PATH == pkg / "weights" / "prior-256.safetensors"
    assert set(generate.packaged_models()) == {"fast-128", "prior-256"}
    assert blend.PASTE_FEATHER == harness.MASK_FEATHER  # the harness's "outside the face"
    assert 0 < anon_mod.DEFAULT_EPSILON <= MAX_EPSILON


def test_packaged_weights_would_ship():
    """Nothing git-ignores the default weights file (scikit-build-core leaves ignored files
    out of the wheel), and the wheel maps the whole package folder."""
    import tomllib  # python >= 3.11; the project's CI runs 3.12

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["scikit-build"]
    assert cfg["wheel"]["packages"]["identitydp_fast"] == "identitydp_fast"
    assert "exclude" not in cfg["wheel"]
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    rel = generate.DEFAULT_MODEL_PATH.relative_to(ROOT)
    res = subprocess.run(["git", "check-ignore", "-q", str(rel)], cwd=ROOT)
    assert res.returncode == 1, f"{rel} is git-ignored and would be left out of the wheel"


def test_missing_default_weights(monkeypatch, tmp_path, model_path):
    missing = tmp_path / "weights" / "fast-128.safetensors"
    monkeypatch.setattr(generate, "DEFAULT_MODEL_PATH", missing)
    monkeypatch.delenv(generate.WEIGHTS_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="model=PATH") as exc:
        Anonymizer()
    assert str(missing) in str(exc.value)
    monkeypatch.setenv(generate.WEIGHTS_ENV, str(tmp_path / "elsewhere.safetensors"))
    with pytest.raises(FileNotFoundError, match="IDP_WEIGHTS"):
        Anonymizer()
    monkeypatch.setenv(generate.WEIGHTS_ENV, str(model_path))
    a = Anonymizer(backend="reference")
    assert a.model_path == Path(model_path) and a.degrade_sigma == SIGMA


def test_bad_model_files(tmp_path, model_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Anonymizer(tmp_path / "nope.safetensors")
    with pytest.raises(ValueError, match="not a file"):
        Anonymizer(tmp_path)
    with pytest.raises(TypeError, match="model must be"):
        Anonymizer(model=123)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(ValueError, match=str(garbage)):
        Anonymizer(garbage)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(Path(model_path).read_bytes()[:200_000])
    with pytest.raises(ValueError, match=str(truncated)):
        Anonymizer(truncated)
    from safetensors.torch import save_file
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(3)}, str(foreign))
    with pytest.raises(ValueError, match="not an identitydp-fast"):
        Anonymizer(foreign)
    broken = _random_model(1)
    with torch.no_grad():
        broken.generator.blocks[0].conv1.weight[0, 0, 0, 0] = float("nan")
    nan_file = tmp_path / "nan.safetensors"
    save_model(broken, nan_file)
    with pytest.raises(ValueError, match="NaN"):
        Anonymizer(nan_file)
    bad_sigma = tmp_path / "bad_sigma.safetensors"
    save_model(_random_model(2), bad_sigma, summary={"hparams": {"degrade_sigma": -1}})
    with pytest.raises(ValueError, match="degrade_sigma"):
        Anonymizer(bad_sigma)


def test_degrade_sigma_default_without_summary():
    from identitydp_fast.pipeline.attributes import default_sigma

    a = Anonymizer(model=_random_model(3), backend="reference")   # an in-memory model
    assert a.degrade_sigma == default_sigma(128) and a.model_path is None


@pytest.mark.parametrize("eps,err", [(0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
                                     (float("inf"), ValueError), (MAX_EPSILON * 1.001, ValueError),
                                     (True, TypeError), ("10", TypeError), (None, TypeError)])
def test_epsilon_validation(anon, eps, err):
    with pytest.raises(err, match="epsilon"):
        check_epsilon(eps)
    if eps is not None:  # None per call means "the Anonymizer's epsilon"
        with pytest.raises(err, match="epsilon"):
            anon.anonymize(SMALL, faces=[], epsilon=eps)
        with pytest.raises(err, match="epsilon"):
            anon.release_identities(SMALL, faces=[], epsilon=eps)
    assert check_epsilon(MAX_EPSILON) == MAX_EPSILON


def test_constructor_validation(model_path):
    with pytest.raises(ValueError, match="epsilon"):
        Anonymizer(model_path, epsilon=0)
    with pytest.raises(ValueError, match="detector"):
        Anonymizer(model_path, detector="cnn")
    with pytest.raises(ValueError, match="upsample"):
        Anonymizer(model_path, upsample=5)
    with pytest.raises(ValueError, match="min_size"):
        Anonymizer(model_path, min_size=-1)
    with pytest.raises(ValueError, match="min_score"):
        Anonymizer(model_path, min_score=float("nan"))
    with pytest.raises(ValueError, match="backend"):
        Anonymizer(model_path, backend="fastest")
    with pytest.raises(ValueError, match="device"):
        Anonymizer(model_path, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            Anonymizer(model_path, device="cuda")


# ---- the pipeline ----------------------------------------------------------------------

def test_astronaut_end_to_end(anon, astro_faces):
    out, results = anon.anonymize(ASTRO, key=K1)
    assert isinstance(out, np.ndarray) and out.shape == ASTRO.shape and out.dtype == np.uint8
    assert len(results) == 2
    for r, f in zip(results, astro_faces):
        assert isinstance(r, FaceResult)
        assert r.box == f.box and np.array_equal(r.landmarks, f.landmarks) and r.score == f.score
        assert r.epsilon == anon.epsilon == anon_mod.DEFAULT_EPSILON
        assert r.epsilon <= r.effective_epsilon < r.epsilon + 1e-3 and 0 <= r.delta < 1e-15
        assert r.key_supplied and r.key_id == keys_mod.key_id(K1)
    assert_only_faces_changed(ASTRO, out, astro_faces, anon)
    # FaceResult: frozen, read-only landmarks, JSON-ready
    with pytest.raises(dataclasses.FrozenInstanceError):
        results[0].epsilon = 1.0
    with pytest.raises(ValueError):
        results[0].landmarks[0, 0] = 0
    json.dumps(results[0].to_dict())


def test_min_score_drops_the_mission_patch(anon, astro_faces):
    scores = sorted(f.score for f in astro_faces)
    assert scores[0] < 0.3 < scores[1]            # the patch, then her face
    strict = Anonymizer(model=anon.model, detector="hog", min_score=0.3)
    faces = strict.detect(ASTRO)
    assert [f.score for f in faces] == [scores[1]]
    out, results = strict.anonymize(ASTRO, key=K1)
    assert len(results) == 1
    assert_only_faces_changed(ASTRO, out, faces, strict)


def test_default_detector_skips_the_mission_patch(anon):
    from identitydp_fast.pipeline import detect

    default = Anonymizer(model=anon.model)
    assert default.detector == detect.DEFAULT_DETECTOR
    assert default.min_score == detect.DEFAULT_MIN_SCORE[detect.DEFAULT_DETECTOR]
    faces = default.detect(ASTRO)
    assert len(faces) == 1 and faces[0].score >= default.min_score
    out, results = default.anonymize(ASTRO, key=K1)
    assert len(results) == 1
    assert_only_faces_changed(ASTRO, out, faces, default)


def test_keys_reproducible_and_fresh(anon, small_faces):
    a, ra = anon.anonymize(SMALL, small_faces, key=K1)
    b, _ = anon.anonymize(SMALL, small_faces, key=K1.hex())
    c, _ = anon.anonymize(SMALL, small_faces, key=K2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d, rd = anon.anonymize(SMALL, small_faces)
    e, re_ = anon.anonymize(SMALL, small_faces)
    assert not rd[0].key_supplied and not re_[0].key_supplied and ra[0].key_supplied
    assert rd[0].key_id != re_[0].key_id
    assert not np.array_equal(d, e)


def test_faces_get_independent_noise(anon, small_faces):
    f = small_faces[0]
    two = anon.release_identities(SMALL, [f, f], key=K1)
    one = anon.release_identities(SMALL, [f], key=K1)
    assert two.shape == (2, 128) and two.dtype == torch.float32
    assert float(torch.nn.functional.cosine_similarity(two[0], two[1], dim=0)) < 0.99
    # face i's noise depends only on (key, i): the same noise up to float rounding of the
    # descriptor (the encoder's convolutions round differently for batches of 1 and 2)
    torch.testing.assert_close(two[0], one[0], rtol=0, atol=1e-5)
    # the same face at epsilon 5000 (tiny noise) stays together
    hi = anon.release_identities(SMALL, [f, f], key=K1, epsilon=5000)
    assert float(torch.nn.functional.cosine_similarity(hi[0], hi[1], dim=0)) > 0.99


def test_render_is_anonymize_split(anon, small_faces):
    out, results = anon.anonymize(SMALL, small_faces, key=K1)
    vec = anon.release_identities(SMALL, small_faces, key=K1)
    out2, results2 = anon.render(SMALL, small_faces, vec)
    np.testing.assert_array_equal(out, out2)
    assert results2[0].epsilon == results[0].epsilon
    assert results2[0].effective_epsilon == results[0].effective_epsilon
    assert results2[0].key_supplied and results2[0].key_id == results[0].key_id
    # a release that went through numpy (video tracks) is still recognised
    out3, results3 = anon.render(SMALL, small_faces, np.asarray(vec).astype(np.float64))
    np.testing.assert_array_equal(out, out3)
    assert results3[0].epsilon == anon.epsilon
    # foreign vectors: raw descriptors (a face swap), an edited release -> no guarantee claimed
    raw = anon.describe(SMALL, small_faces)
    out4, results4 = anon.render(SMALL, small_faces, raw)
    assert math.isnan(results4[0].epsilon) and math.isnan(results4[0].delta)
    assert not results4[0].key_supplied and results4[0].key_id == ""
    assert_only_faces_changed(SMALL, out4, small_faces, anon)
    _, results5 = anon.render(SMALL, small_faces, vec * 1.5)
    assert math.isnan(results5[0].effective_epsilon)


def test_render_validates_identities(anon, small_faces):
    with pytest.raises(ValueError, match="N = len"):
        anon.render(SMALL, small_faces, torch.randn(2, 128))
    with pytest.raises(ValueError, match="128"):
        anon.render(SMALL, small_faces, torch.randn(1, 64))
    with pytest.raises(ValueError, match="NaN"):
        anon.render(SMALL, small_faces, torch.full((1, 128), float("nan")))
    with pytest.raises(ValueError, match="zero"):
        anon.render(SMALL, small_faces, torch.zeros(1, 128))
    with pytest.raises(TypeError, match="floating"):
        anon.render(SMALL, small_faces, torch.ones(1, 128, dtype=torch.int64))
    with pytest.raises(TypeError):
        anon.render(SMALL, small_faces, "vectors")
    out, res = anon.render(SMALL, [], np.zeros((0, 128), np.float32))
    assert res == [] and np.array_equal(out, SMALL)


def test_faces_cut_by_the_border(anon, astro_faces):
    f = max(astro_faces, key=lambda r: r.score)
    # cut so that the left and top of her face fall outside: landmarks stay valid, outside
    img = np.ascontiguousarray(ASTRO[110:, 215:])
    shifted = FaceRecord(box=(0, 0, f.box[2] - 215, f.box[3] - 110),
                         landmarks=f.landmarks - (215, 110), score=float("nan"))
    assert (shifted.landmarks < 0).any()
    gone = FaceRecord(box=(0, 0, 0, 0), landmarks=f.landmarks - (2000, 2000), score=float("nan"))
    out, results = anon.anonymize(img, [shifted, gone], key=K1)
    assert len(results) == 2 and out.shape == img.shape
    changed = assert_only_faces_changed(img, out, [shifted], anon)
    assert changed[:5, :5].any()                       # pasted right up to the corner
    # bottom/right border: the same face near the far corner of a small canvas
    canvas = np.ascontiguousarray(ASTRO[:150, :240])
    near = FaceRecord(box=f.box, landmarks=f.landmarks, score=f.score)
    out2, _ = anon.anonymize(canvas, [near], key=K2)
    assert_only_faces_changed(canvas, out2, [near], anon)


def test_no_face_image(anon):
    yy, xx = np.mgrid[0:120, 0:160]
    img = np.stack([xx * 255 // 159, yy * 255 // 119, np.full_like(xx, 90)], -1).astype(np.uint8)
    out, results = anon.anonymize(img, key=K1)
    assert results == [] and out is not img
    np.testing.assert_array_equal(out, img)
    pil = Image.fromarray(img).convert("L")
    out_pil, results = anon.anonymize(pil)
    assert results == [] and out_pil.mode == "L" and out_pil is not pil
    np.testing.assert_array_equal(np.asarray(out_pil), np.asarray(pil))
    assert anon.release_identities(img).shape == (0, 128)


# ---- input kinds -----------------------------------------------------------------------

def test_input_kinds_numpy(anon, small_faces):
    ref, _ = anon.anonymize(SMALL, small_faces, key=K1)
    changed = (ref != SMALL).any(axis=2)
    rng = np.random.default_rng(0)

    # grey (H, W) and (H, W, 1): the model sees R = G = B; changed pixels get Pillow's luma
    grey = decode_stage.luma(SMALL)
    grey_rgb_out, _ = anon.anonymize(np.repeat(grey[:, :, None], 3, axis=2), small_faces, key=K1)
    g_changed = (grey_rgb_out != grey[:, :, None]).any(axis=2)
    expect = np.where(g_changed, decode_stage.luma(grey_rgb_out), grey)
    out, _ = anon.anonymize(grey, small_faces, key=K1)
    assert out.shape == grey.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expect)
    out1, _ = anon.anonymize(grey[:, :, None], small_faces, key=K1)
    np.testing.assert_array_equal(out1[:, :, 0], expect)

    # RGBA: colour as for RGB, alpha untouched everywhere
    alpha = rng.integers(0, 256, SMALL.shape[:2], dtype=np.uint8)
    rgba = np.dstack([SMALL, alpha])
    out, _ = anon.anonymize(rgba, small_faces, key=K1)
    np.testing.assert_array_equal(out[..., 3], alpha)
    np.testing.assert_array_equal(out[..., :3], ref)

    # uint16: unchanged pixels keep all 16 bits, changed ones are the 8-bit result * 257
    low = rng.integers(-100, 100, SMALL.shape)
    u16 = np.clip(SMALL.astype(np.int64) * 257 + low, 0, 65535).astype(np.uint16)
    out, _ = anon.anonymize(u16, small_faces, key=K1)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out[~changed], u16[~changed])
    np.testing.assert_array_equal(out[changed], ref[changed].astype(np.uint16) * 257)

    # float in [0, 1]
    f32 = (SMALL / 255.0 + rng.uniform(-1e-3, 1e-3, SMALL.shape)).clip(0, 1).astype(np.float32)
    out, _ = anon.anonymize(f32, small_faces, key=K1)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[~changed], f32[~changed])
    np.testing.assert_allclose(out[changed], ref[changed] / 255.0, rtol=0, atol=1e-7)


def test_input_kinds_torch(anon, small_faces):
    ref, _ = anon.anonymize(SMALL, small_faces, key=K1)
    t = torch.from_numpy(SMALL.copy())
    out, results = anon.anonymize(t, small_faces, key=K1)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8 and out.device == t.device
    np.testing.assert_array_equal(out.numpy(), ref)
    assert torch.equal(t, torch.from_numpy(SMALL))                 # input untouched
    tb = torch.from_numpy(SMALL.astype(np.float32) / 255).to(torch.bfloat16)
    outb, _ = anon.anonymize(tb, small_faces, key=K1)
    assert outb.dtype == torch.bfloat16
    same = torch.from_numpy(~(ref != SMALL).any(axis=2))
    assert torch.equal(outb[same], tb[same])


@pytest.mark.parametrize("mode,out_mode", [("RGB", "RGB"), ("L", "L"), ("RGBA", "RGBA"),
                                           ("LA", "LA"), ("P", "RGB"), ("CMYK", "RGB"),
                                           ("1", "L"), ("I;16", "I;16"), ("I", "I"), ("F", "F")])
def test_input_kinds_pil(anon, small_faces, mode, out_mode):
    base = Image.fromarray(SMALL)
    if mode == "RGBA":
        img = base.copy()
        img.putalpha(Image.fromarray(np.random.default_rng(1).integers(0, 256, SMALL.shape[:2], dtype=np.uint8)))
    elif mode == "LA":
        img = base.convert("LA")
    elif mode in ("I;16", "I"):
        img = Image.fromarray((decode_stage.luma(SMALL).astype(np.int32) * 257).astype(
            np.uint16 if mode == "I;16" else np.int32))
    elif mode == "F":
        img = Image.fromarray(decode_stage.luma(SMALL).astype(np.float32) / 255)
    else:
        img = base.convert(mode)
    assert img.mode == mode
    out, results = anon.anonymize(img, small_faces, key=K1)
    assert isinstance(out, Image.Image) and out.mode == out_mode and out.size == img.size
    assert len(results) == 1
    kept = img if out_mode == mode else img.convert(out_mode)
    assert_only_faces_changed(np.asarray(kept), np.asarray(out), small_faces, anon)
    if "A" in mode:
        np.testing.assert_array_equal(np.asarray(out)[..., -1], np.asarray(img)[..., -1])


def test_pil_exif_orientation_applied(anon, small_faces):
    """A PIL image with EXIF orientation 3 (rotated 180) is anonymised upright."""
    rotated = Image.fromarray(np.ascontiguousarray(SMALL[::-1, ::-1]))
    exif = Image.Exif()
    exif[0x0112] = 3
    rotated.info["exif"] = exif.tobytes()
    rotated.getexif()[0x0112] = 3
    out, _ = anon.anonymize(rotated, small_faces, key=K1)
    ref, _ = anon.anonymize(SMALL, small_faces, key=K1)
    np.testing.assert_array_equal(np.asarray(out), ref)
    assert 0x0112 not in out.getexif()


def test_bad_inputs(anon, small_faces):
    with pytest.raises(TypeError, match="dtype"):
        anon.anonymize(SMALL.astype(np.int32))
    with pytest.raises(ValueError, match="shape"):
        anon.anonymize(np.zeros((20, 20, 5), np.uint8))
    with pytest.raises(ValueError, match="channels-first"):
        anon.anonymize(torch.zeros(3, 40, 40, dtype=torch.uint8))
    with pytest.raises(ValueError, match="empty"):
        anon.anonymize(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        anon.anonymize(SMALL.astype(np.float32))
    with pytest.raises(TypeError, match="read_image"):
        anon.anonymize("examples/astronaut.png")
    with pytest.raises(TypeError, match="list of FaceRecord"):
        anon.anonymize(SMALL, faces=small_faces[0])
    with pytest.raises(TypeError, match=r"faces\[0\]"):
        anon.anonymize(SMALL, faces=[(0, 0, 10, 10)])
    with pytest.raises(ValueError, match="32 bytes"):
        anon.anonymize(SMALL, small_faces, key=b"short")
    with pytest.raises(TypeError, match="key"):
        anon.anonymize(SMALL, small_faces, key=12345)
    with pytest.raises(ValueError, match="hex"):
        anon.anonymize(SMALL, small_faces, key="zz" * 32)


# ---- aligned crops, warmup, backends, threads --------------------------------------------

def _aligned_crops(faces, size=128) -> np.ndarray:
    m = crop_transform(np.stack([f.landmarks for f in faces]), size)
    img = torch.from_numpy(ASTRO).unsqueeze(0).expand(len(faces), -1, -1, -1)
    crops = warp_affine(img, m, size, size)
    return torch.floor(crops + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_anonymize_aligned(anon, astro_faces):
    crops = _aligned_crops(astro_faces)                      # (2, 128, 128, 3)
    out = anon.anonymize_aligned(crops, key=K1)
    assert out.shape == crops.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, anon.anonymize_aligned(crops, key=K1))
    outside = (anon.paste_mask == 0).numpy()
    np.testing.assert_array_equal(out[:, outside], crops[:, outside])
    assert (out != crops).any(axis=3)[:, ~outside].mean() > 0.3
    raw, results = anon.anonymize_aligned(crops, key=K1, blend=False, return_results=True)
    inside = anon.paste_mask.numpy() == 1
    np.testing.assert_array_equal(raw[:, inside], out[:, inside])
    assert (raw[:, outside] != crops[:, outside]).any()
    assert len(results) == 2 and results[0].box == (0, 0, 127, 127) and results[0].key_supplied
    assert not np.array_equal(out, anon.anonymize_aligned(crops, key=K2))
    tout = anon.anonymize_aligned(torch.from_numpy(crops), key=K1)
    assert isinstance(tout, torch.Tensor)
    np.testing.assert_array_equal(tout.numpy(), out)
    assert anon.anonymize_aligned(crops[:0]).shape == (0, 128, 128, 3)
    with pytest.raises(ValueError, match="crop size is 128"):
        anon.anonymize_aligned(np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="batch axis"):
        anon.anonymize_aligned(crops[0])
    with pytest.raises(TypeError, match="uint8"):
        anon.anonymize_aligned(crops.astype(np.float32))
    # the identity comes from a chip cut from the crop at the template's landmarks
    from identitydp_fast.pipeline.align import crop_template
    chips = dlib_face_chips(crops[0], crop_template(128)[None])
    assert chips.shape == (1, 150, 150, 3) and chips.float().std() > 10


def test_warmup(anon):
    before = len(anon._ledger)
    anon.warmup()
    assert len(anon._ledger) == before     # a warm-up releases nothing anyone sees


def test_pipeline_is_the_reference_composition(anon_ref, model_path, small_faces):
    """backend='reference' output == the stages composed by hand (oracle), and the stored
    degrade sigma really is the one used."""
    from identitydp_fast.pipeline.identity import IdentityEncoder
    from identitydp_fast.pipeline.attributes import degrade_inner_face
    from identitydp_fast.pipeline.release import release

    model = anon_ref.model
    lm = small_faces[0].landmarks[None]
    m = crop_transform(lm, 128)
    crop = warp_affine(torch.from_numpy(SMALL)[None], m, 128, 128, mean=(127.5,) * 3,
                       scale=1 / 127.5).float()
    desc = IdentityEncoder("reference")(dlib_face_chips(SMALL, lm))
    released, _ = release(model.bottleneck, desc, 10.0, key=K1, backend="reference")  # + typical

    def render(sigma):
        with torch.no_grad():
            y = model(degrade_inner_face(crop, sigma), released)
        pixels = ((y + 1) * 127.5).clamp(0, 255)[0].permute(1, 2, 0)
        return paste_back(SMALL, pixels.double(), m[0], anon_ref.paste_mask)

    out, _ = anon_ref.anonymize(SMALL, small_faces, key=K1, epsilon=10.0)
    assert anon_ref.degrade_sigma == SIGMA
    np.testing.assert_array_equal(out, render(SIGMA))
    assert np.abs(out.astype(int) - render(0.0).astype(int)).max() > 0


def test_engine_backend_matches_reference(anon, anon_ref, astro_faces):
    if anon.backend == "reference":
        pytest.skip("identitydp_fast._C is not built: 'auto' is the reference here")
    a, _ = anon.anonymize(ASTRO, astro_faces, key=K1)
    b, _ = anon_ref.anonymize(ASTRO, astro_faces, key=K1)
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 3 and diff.mean() < 0.05, (diff.max(), diff.mean())
    u = union_mask(ASTRO.shape, astro_faces, anon)
    assert diff[~u].max() == 0


def test_paste_kernel_matches_reference(anon, astro_faces):
    if anon._geometry_backend == "reference":
        pytest.skip("identitydp_fast._C is not built")
    gen = torch.Generator().manual_seed(0)
    crops = torch.rand(2, 128, 128, 3, generator=gen, dtype=torch.float64) * 255
    m = crop_transform(np.stack([f.landmarks for f in astro_faces]), 128)
    a = paste_faces(ASTRO, crops, m, anon.paste_mask, "cpu")
    b = paste_faces(ASTRO, crops, m, anon.paste_mask, "reference")
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1
    u = union_mask(ASTRO.shape, astro_faces, anon)
    np.testing.assert_array_equal(a[~u], ASTRO[~u])


def test_threads_give_serial_results(anon):
    """4 threads x 3 calls (detection included) == the same calls run serially."""
    images = [SMALL, np.ascontiguousarray(SMALL[:, ::-1]), np.ascontiguousarray(ASTRO[20:260, 100:340])]
    jobs = [(images[i % 3], bytes([i]) * 32) for i in range(12)]
    serial = [anon.anonymize(img, key=k) for img, k in jobs]
    assert all(len(r) >= 1 for _, r in serial)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda job: anon.anonymize(job[0], key=job[1]), jobs))
    for (o1, r1), (o2, r2) in zip(serial, threaded):
        np.testing.assert_array_equal(o1, o2)
        assert [r.box for r in r1] == [r.box for r in r2]
        assert [r.key_id for r in r1] == [r.key_id for r in r2]
    # detection alone, many times: dlib's HOG detector crashed the process when called
    # from several threads at once (without the Anonymizer's lock)
    boxes = [[f.box for f in anon.detect(img)] for img in images]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        found = list(pool.map(lambda i: [f.box for f in anon.detect(images[i % 3])], range(60)))
    assert found == [boxes[i % 3] for i in range(60)]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_device_matches_cpu(model_path, anon, astro_faces):
    gpu = Anonymizer(model_path, device="cuda")
    gpu.warmup()
    a, ra = gpu.anonymize(ASTRO, astro_faces, key=K1)
    b, rb = anon.anonymize(ASTRO, astro_faces, key=K1)
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 3 and diff.mean() < 0.05, (gpu.backend, diff.max(), diff.mean())
    assert [r.effective_epsilon for r in ra] == [r.effective_epsilon for r in rb]
    u = union_mask(ASTRO.shape, astro_faces, anon)
    assert diff[~u].max() == 0
    t, _ = gpu.anonymize(torch.from_numpy(ASTRO).cuda(), astro_faces, key=K1)
    assert t.is_cuda and np.array_equal(t.cpu().numpy(), a)


def test_half_precision_and_graph_options_checked(model_path):
    with pytest.raises(ValueError, match="needs backend='triton'"):
        Anonymizer(model_path, backend="cpu", dtype=torch.float16)
    with pytest.raises(ValueError, match="dtype must be"):
        Anonymizer(model_path, dtype=torch.float64)
    with pytest.raises(ValueError, match="cuda_graph_batches needs device='cuda'"):
        Anonymizer(model_path, cuda_graph_batches=(1,))


def test_half_precision_triton(model_path, anon, small_faces):
    """fp16 through the Triton kernels (the CPU interpreter here): same faces, close pixels
    (the bound of tests/test_aei_net_engine.py, 3e-2 on [-1, 1], is ~4 grey levels)."""
    if "triton" not in __import__("identitydp_fast").backends():
        pytest.skip("triton is not installed")
    half = Anonymizer(model_path, backend="triton", dtype=torch.float16)
    a, ra = half.anonymize(SMALL, small_faces, key=K1)
    b, rb = anon.anonymize(SMALL, small_faces, key=K1)
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 8 and diff.mean() < 1.0, (diff.max(), diff.mean())
    assert [r.effective_epsilon for r in ra] == [r.effective_epsilon for r in rb]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_cuda_graph_path_matches_eager(model_path, astro_faces, backend):
    eager = Anonymizer(model_path, device="cuda", backend=backend)
    graphed = Anonymizer(model_path, device="cuda", backend=backend, cuda_graph_batches=(1, 2))
    for faces in (astro_faces[:1], astro_faces):     # 1 and 2 faces: both graphs replayed
        a, _ = eager.anonymize(ASTRO, faces, key=K1)
        b, _ = graphed.anonymize(ASTRO, faces, key=K1)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


# ---- shared data ---------------------------------------------------------------------------

def test_lfw_images(anon):
    lfw = default_data_root() / "lfw"
    if not lfw.is_dir():
        pytest.skip(f"shared LFW data not found at {lfw} (set IDP_DATA)")
    paths = sorted(lfw.rglob("*.jpg"))[:3]
    assert paths, f"no LFW images under {lfw}"
    for p in paths:
        img = read_image(p)
        out, results = anon.anonymize(img, key=K1)
        assert results, f"no face found in {p}"
        assert_only_faces_changed(img, out, [FaceRecord(r.box, r.landmarks, r.score) for r in results], anon)


def test_the_results_of_anonymize_are_accepted_as_faces(anon, small_faces):
    """README: ``v = anon.release_identities(img, faces)`` with the faces anonymize returned
    (FaceResult) raised TypeError; they are taken as the faces they describe."""
    _, results = anon.anonymize(SMALL, small_faces, key=K1)
    assert all(isinstance(r, FaceResult) for r in results)
    v_results = anon.release_identities(SMALL, results, key=K2)
    v_records = anon.release_identities(SMALL, small_faces, key=K2)
    assert torch.equal(v_results, v_records)
    out_a, _ = anon.render(SMALL, results, v_results)
    out_b, _ = anon.render(SMALL, small_faces, v_records)
    np.testing.assert_array_equal(out_a, out_b)
    with pytest.raises(TypeError, match=r"faces\[0\] must be a FaceRecord or FaceResult"):
        anon.release_identities(SMALL, [object()])
