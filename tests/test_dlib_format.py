"""dlib's serialisation reader (identitydp_fast/models/dlib_format.py) and the ResNet
weight loader (identitydp_fast/models/dlib_resnet.py): hand-written byte strings for
every encoding, truncation and corruption -> DlibFormatError naming the offset."""
from __future__ import annotations

import importlib.util
import math
import re
import struct

import numpy as np
import pytest

from identitydp_fast.models import dlib_resnet
from identitydp_fast.models.dlib_format import DlibFormatError, DlibReader
from identitydp_fast.models.dlib_resnet import find_model_file, load_dlib_resnet_weights


def _reader(data: bytes) -> DlibReader:
    return DlibReader(data)


# -- integers ---------------------------------------------------------------------------

@pytest.mark.parametrize("data, value", [
    (b"\x01\x00", 0), (b"\x81\x00", 0), (b"\x01\x05", 5), (b"\x81\x05", -5),
    (b"\x01\xff", 255), (b"\x02\x00\x01", 256), (b"\x82\x80\x12", -4736),
    (b"\x08" + b"\xff" * 7 + b"\x7f", 2**63 - 1), (b"\x88" + b"\x00" * 7 + b"\x80", -2**63),
])
def test_int(data, value):
    r = _reader(data)
    assert r.read_int("x") == value
    assert r.remaining == 0


def test_int_unsigned_and_width_limits():
    assert _reader(b"\x08" + b"\xff" * 8).read_int("x", signed=False) == 2**64 - 1
    with pytest.raises(DlibFormatError, match=r"byte offset 0: expected x; value .* does not fit"):
        _reader(b"\x08" + b"\xff" * 8).read_int("x")  # > int64 max
    with pytest.raises(DlibFormatError, match=r"negative value for an unsigned field"):
        _reader(b"\x81\x01").read_int("x", signed=False)
    with pytest.raises(DlibFormatError, match=r"gives 3 value bytes, allowed 1\.\.2"):
        _reader(b"\x03\x01\x02\x03").read_int("x", nbytes=2)


@pytest.mark.parametrize("ctrl", [b"\x00", b"\x09", b"\x0f", b"\x11", b"\x41"])
def test_int_bad_control_byte(ctrl):
    with pytest.raises(DlibFormatError, match=r"byte offset 2: expected count; control byte"):
        r = _reader(b"\x01\x07" + ctrl + b"\x00" * 9)
        r.read_int("first")
        r.read_int("count")


def test_int_truncated():
    for data in (b"", b"\x02", b"\x02\x01", b"\x08" + b"\x00" * 7):
        with pytest.raises(DlibFormatError, match=r"byte offset 0: expected n; .*truncated"):
            _reader(data).read_int("n")


# -- floats, bools, strings ---------------------------------------------------------------

@pytest.mark.parametrize("data, value", [
    (b"\x01\x00\x01\x00", 0.0),
    (b"\x01\x10\x81\x04", 1.0),                      # dlib writes 1.0f as 16 * 2^-4
    (b"\x81\x03\x81\x01", -1.5),
    (b"\x03\x0a\xd7\xa3\x81\x1c", 10737418 * 2.0**-28),  # the model file's margin, 0.04f
    (b"\x01\x00\x02\x00\x7d", math.inf),             # exponent 32000
    (b"\x01\x00\x02\x01\x7d", -math.inf),            # 32001
    (b"\x01\x07\x02\x00\x04", math.inf),              # overflows a double: inf, like C ldexp
])
def test_float(data, value):
    r = _reader(data)
    assert r.read_float("f") == value
    assert r.remaining == 0


def test_float_nan_and_bad_exponent():
    assert math.isnan(_reader(b"\x01\x00\x02\x02\x7d").read_float("f"))  # 32002
    with pytest.raises(DlibFormatError, match=r"float exponent 32003"):
        _reader(b"\x01\x00\x02\x03\x7d").read_float("f")
    with pytest.raises(DlibFormatError, match=r"expected f \(float exponent\).*gives 3 value bytes"):
        _reader(b"\x01\x00\x03\x00\x00\x01").read_float("f")  # exponent is an int16


def test_bool_and_string():
    r = _reader(b"10\x01\x05con_4\x01\x00")
    assert r.read_bool("a") is True and r.read_bool("b") is False
    assert r.read_string("s") == "con_4"
    assert r.read_string("empty") == ""
    r.expect_end()
    with pytest.raises(DlibFormatError, match=r"byte offset 0: expected flag \(a bool.*0x01"):
        _reader(b"\x01").read_bool("flag")
    with pytest.raises(DlibFormatError, match=r"byte offset 0: expected type = 'relu_'; found 'con_4'"):
        _reader(b"\x01\x05con_4").expect_string("relu_", "type")
    with pytest.raises(DlibFormatError, match=r"byte offset 0: expected s \(9-byte string\).*truncated"):
        _reader(b"\x01\x09con_4").read_string("s")


# -- tensors ----------------------------------------------------------------------------

def _tensor_bytes(shape, values) -> bytes:
    dims = b"".join(b"\x01" + bytes([d]) for d in shape)
    return b"\x01\x02" + dims + struct.pack(f"<{len(values)}f", *values)


def test_tensor_and_alias():
    r = _reader(_tensor_bytes((1, 2, 1, 3), [1, 2, 3, 4, 5, -0.5]) + _tensor_bytes((0, 0, 0, 0), [])
                + b"\x01\x01\x01\x01\x01\x20\x01\x01\x01\x01")
    t = r.read_tensor("t")
    assert t.dtype == np.float32 and t.shape == (1, 2, 1, 3)
    assert t.reshape(-1).tolist() == [1, 2, 3, 4, 5, -0.5]
    assert r.read_tensor("empty").shape == (0, 0, 0, 0)
    assert r.read_alias_tensor("a") == (1, 32, 1, 1)
    r.expect_end()


def test_tensor_errors():
    with pytest.raises(DlibFormatError, match=r"byte offset 0: expected w tensor version = 2; found 1"):
        _reader(b"\x01\x01" + b"\x01\x00" * 4).read_tensor("w")
    with pytest.raises(DlibFormatError, match=r"negative tensor shape \(1, -2, 1, 1\)"):
        _reader(b"\x01\x02\x01\x01\x81\x02\x01\x01\x01\x01").read_tensor("w")
    with pytest.raises(DlibFormatError, match=r"byte offset 0: expected w tensor data \(3 float32"):
        _reader(_tensor_bytes((3, 1, 1, 1), [1, 2, 3])[:-1]).read_tensor("w")
    with pytest.raises(DlibFormatError, match=r"unread bytes remain"):
        r = _reader(_tensor_bytes((1, 1, 1, 1), [1]) + b"\x00")
        r.read_tensor("w")
        r.expect_end()


def _stream_items(r: DlibReader):
    return (r.read_int("i"), r.read_float("f"), r.read_bool("b"), r.read_string("s"),
            r.read_tensor("t"), r.read_alias_tensor("a"))


def test_every_truncation_raises_format_error():
    """Cut a stream holding one of each item at every length: always DlibFormatError with
    an offset inside the data, never IndexError / struct.error."""
    data = (b"\x82\x80\x12" + b"\x03\x0a\xd7\xa3\x81\x1c" + b"1" + b"\x01\x03abc"
            + _tensor_bytes((1, 2, 1, 1), [0.25, 7]) + b"\x01\x01" + b"\x01\x02" * 4)
    _stream_items(_reader(data))
    for cut in range(len(data)):
        with pytest.raises(DlibFormatError) as info:
            _stream_items(_reader(data[:cut]))
        assert 0 <= info.value.offset <= cut
        assert f"byte offset {info.value.offset}: expected" in str(info.value)


def test_random_corruption_never_escapes():
    """Random byte flips either still parse or raise DlibFormatError (a ValueError)."""
    data = bytearray(b"\x01\x07" + b"\x01\x10\x81\x04" + b"0" + b"\x01\x02hi"
                     + _tensor_bytes((2, 1, 1, 1), [1, 2]) + b"\x01\x01" + b"\x01\x03" * 4)
    rng = np.random.default_rng(0)
    for _ in range(2000):
        bad = bytearray(data)
        for pos in rng.integers(0, len(bad), size=2):
            bad[pos] = int(rng.integers(0, 256))
        try:
            _stream_items(_reader(bytes(bad)))
        except DlibFormatError:
            pass


# -- the real model file -------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models is not installed (pip install face-recognition-models): "
                    "no dlib model file to read")
    return find_model_file().read_bytes()


def _write(tmp_path, data: bytes):
    path = tmp_path / "model.dat"
    path.write_bytes(data)
    return path


def test_real_file_loads(model_bytes):
    w = load_dlib_resnet_weights()
    assert len(w.convs) == 29 and len(w.affines) == 29
    assert tuple(w.fc_weight.shape) == (128, 256)
    np.testing.assert_allclose(w.input_mean.numpy(), [122.782, 117.001, 104.298], atol=1e-4)
    assert w.distance_threshold == pytest.approx(0.6) and w.margin == pytest.approx(0.04)
    stem = w.convs[0]
    assert tuple(stem.weight.shape) == (32, 3, 7, 7) and (stem.stride, stem.padding) == (2, 0)
    downs = [c for c in w.convs if c.stride == 2]
    assert len(downs) == 5 and all(c.padding == 0 for c in downs)  # stem + 4 down blocks
    assert all(c.padding == 1 for c in w.convs if c.stride == 1)
    # the float32 values start right after the stem's params header (offset 0x160)
    first = struct.unpack("<f", model_bytes[0x160:0x164])[0]
    assert float(stem.weight.reshape(-1)[0]) == first


def test_find_model_file_missing_package(monkeypatch):
    monkeypatch.delenv("IDP_MODEL_DIR", raising=False)
    monkeypatch.setattr(dlib_resnet.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install face-recognition-models"):
        find_model_file()


@pytest.mark.parametrize("cut", [0, 1, 20, 200, 0x150, 0x165, 19346, 5_000_000, -100, -1])
def test_truncated_file(model_bytes, tmp_path, cut):
    cut = cut % len(model_bytes)
    with pytest.raises(DlibFormatError, match=r"byte offset \d+: expected .*truncated") as info:
        load_dlib_resnet_weights(_write(tmp_path, model_bytes[:cut]))
    assert 0 <= info.value.offset <= cut


def test_trailing_bytes(model_bytes, tmp_path):
    path = _write(tmp_path, model_bytes + b"\x01\x00")
    with pytest.raises(DlibFormatError, match=rf"byte offset {len(model_bytes)}: .*2 unread bytes"):
        load_dlib_resnet_weights(path)
    load_dlib_resnet_weights(path, verify=False)


def _stem_offset(data: bytes) -> int:
    """Offset of the stem conv's num_filters int (after 'con_4' and its params tensor)."""
    start = data.index(b"\x05con_4") + 6
    r = DlibReader(data)
    r._pos = start  # noqa: SLF001 - test helper positions the reader
    r.read_tensor("params")
    return r.offset


@pytest.mark.parametrize("patch, message", [
    # the fc layer's version (first after the loss settings): 2 -> 4
    (lambda d: (30, b"\x04"), r"byte offset 29: expected layer 130 of 130 \(fc 256->128, head\) "
                                r"version .* = 2; found 4"),
    # 'con_4' -> 'con_5'
    (lambda d: (d.index(b"con_4") + 4, b"5"), r"expected layer 1 of 130 \(con 7x7/2 3->32, stem\) "
                                               r"type = 'con_4'; found 'con_5'"),
    # stem num_filters 32 -> 33
    (lambda d: (_stem_offset(d) + 1, b"\x21"), r"con 7x7/2 3->32, stem\) num_filters = 32; found 33"),
    # the first relu's type tag
    (lambda d: (d.index(b"relu_"), b"R"), r"layer 3 of 130 \(relu, stem\) type = 'relu_'; found 'Relu_'"),
    # the loss type
    (lambda d: (3, b"L"), r"byte offset 2: expected loss layer type"),
])
def test_corrupted_architecture(model_bytes, tmp_path, patch, message):
    data = bytearray(model_bytes)
    offset, new = patch(model_bytes)
    data[offset:offset + len(new)] = new
    with pytest.raises(DlibFormatError, match=message) as info:
        load_dlib_resnet_weights(_write(tmp_path, bytes(data)))
    assert re.search(r"byte offset \d+", str(info.value))


def test_nan_weight_is_rejected(model_bytes, tmp_path):
    data = bytearray(model_bytes)
    data[0x160 + 8:0x164 + 8] = struct.pack("<f", float("nan"))  # the stem's third weight
    with pytest.raises(DlibFormatError, match=r"byte offset 341: expected layer 1 of 130 \(con 7x7/2 "
                                              r"3->32, stem\) params: finite float32 values; found 1 "
                                              r"NaN/inf, the first at value 2 \(byte offset 360\)"):
        load_dlib_resnet_weights(_write(tmp_path, bytes(data)))
