"""Bounded fuzzing (hypothesis) of decode + detect + anonymise + encode
(identitydp_fast/io/image_codec.py and the Anonymizer): random bytes and mutated valid
PNG/JPEG/GIF/BMP/WebP/TIFF files never raise anything but ImageFileError from decoding
and encoding, and a decoded image always anonymises and writes back. About 20 s on one
CPU thread (max_examples bounds it; no deadline, no example database)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("dlib")

from identitydp_fast.io.image_codec import ImageFileError, decode_bytes, encode  # noqa: E402

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"
# Pillow warns about damaged metadata it skips; those files are still handled
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")
FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _seeds() -> list[bytes]:
    face = Image.open(ASTRONAUT).convert("RGB").resize((200, 200), Image.LANCZOS)
    small = face.resize((40, 40))
    out = []
    for img, fmt, kw in [(face, "JPEG", {"quality": 80}), (small, "PNG", {}), (small.convert("P"), "GIF", {}),
                         (small.convert("L"), "BMP", {}), (small.convert("RGBA"), "WEBP", {}),
                         (small, "TIFF", {"compression": "tiff_lzw"}), (small.convert("LA"), "PNG", {})]:
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        out.append(buf.getvalue())
    return out


SEEDS = _seeds()


@pytest.fixture(scope="module")
def anonymizer(tiny_model_path):
    """A real Anonymizer on a random-init fast-128 model (every stage runs)."""
    from identitydp_fast.anonymizer import Anonymizer
    return Anonymizer(model=tiny_model_path, epsilon=10.0)


def _check(data: bytes, anonymizer) -> None:
    try:
        decoded = decode_bytes(data, max_pixels=4_000_000)
    except ImageFileError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg
        return
    h, w = decoded.rgb.shape[:2]
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.shape == (h, w, 3) and h * w <= 4_000_000
    out, results = anonymizer.anonymize(decoded.rgb)
    assert out.shape == decoded.rgb.shape and out.dtype == np.uint8
    for r in results:
        assert np.isfinite(r.effective_epsilon)
    try:
        written = encode(decoded, out)
    except ImageFileError as exc:
        assert "\n" not in str(exc)
        return
    assert decode_bytes(written).rgb.shape == decoded.rgb.shape


@FUZZ
@given(data=st.binary(min_size=0, max_size=4096))
def test_random_bytes(anonymizer, data):
    _check(data, anonymizer)


@st.composite
def _mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "zero"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            n = draw(st.integers(1, 64))
            data[pos:pos + n] = bytes(len(data[pos:pos + n]))
    return bytes(data)


@FUZZ
@given(data=_mutated())
def test_mutated_valid_images(anonymizer, data):
    _check(data, anonymizer)


def test_seeds_decode_and_the_face_is_anonymised(anonymizer):
    """The fuzz seeds are valid, and the JPEG seed's face goes through the whole model."""
    for data in SEEDS:
        decode_bytes(data)
    decoded = decode_bytes(SEEDS[0])
    out, results = anonymizer.anonymize(decoded.rgb)
    assert len(results) == 1 and not np.array_equal(out, decoded.rgb)
