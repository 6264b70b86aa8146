"""ChaCha20 keystream: RFC 8439 vectors, the `cryptography` package, and every backend
against the reference (identitydp_fast/reference/chacha20.py)."""
from __future__ import annotations

import secrets

import pytest
import torch

import identitydp_fast as idp
from identitydp_fast.ops import chacha20_keystream
from identitydp_fast.reference.chacha20 import keystream as reference_keystream

# RFC 8439 section 2.3.2 (block function) and appendix A.1 (keystream test vectors).
RFC_VECTORS = [
    (bytes(range(32)), bytes.fromhex("000000090000004a00000000"), 1,
     "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
     "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"),
    (bytes(32), bytes(12), 0,
     "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
     "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"),
    (bytes(32), bytes(12), 1,
     "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed"
     "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f"),
    (bytes(31) + b"\x01", bytes(12), 1,
     "3aeb5224ecf849929b9d828db1ced4dd832025e8018b8160b82284f3c949aa5a"
     "8eca00bbb4a73bdad192b5c42f73f2fd4e273644c8b36125a64addeb006c13a0"),
    (bytes([0, 0xff]) + bytes(30), bytes(12), 2,
     "72d54dfbf12ec44b362692df94137f328fea8da73990265ec1bbbea1ae9af0ca"
     "13b25aa26cb4a648cb9b9d1be65b2c0924a66c54d545ec1b7374f4872e99f096"),
    (bytes(32), bytes(11) + b"\x02", 0,
     "c2c64d378cd536374ae204b9ef933fcd1a8b2288b3dfa49672ab765b54ee27c7"
     "8a970e0e955c14f3a88e741b97c286f75f8fc299e8148362fa198a39531bed6d"),
]


@pytest.mark.parametrize("key,nonce,counter,expected", RFC_VECTORS)
def test_rfc8439_vectors(key, nonce, counter, expected, impl):
    backend, device = impl
    out = chacha20_keystream(key, nonce, counter, 64, backend, device)
    assert out.cpu().numpy().tobytes().hex() == expected


@pytest.mark.parametrize("length", [1, 63, 64, 65, 127, 1000, 4097])
def test_matches_cryptography_on_random_inputs(length, impl):
    backend, device = impl
    crypto = pytest.importorskip("cryptography.hazmat.primitives.ciphers")
    for _ in range(3):
        key, nonce = secrets.token_bytes(32), secrets.token_bytes(12)
        counter = secrets.randbelow(2**32 - 100)
        # cryptography's ChaCha20 takes a 16-byte nonce: 4-byte LE counter + RFC nonce.
        cipher = crypto.Cipher(crypto.algorithms.ChaCha20(key, counter.to_bytes(4, "little") + nonce),
                               mode=None)
        expected = cipher.encryptor().update(bytes(length))
        got = chacha20_keystream(key, nonce, counter, length, backend, device)
        assert got.cpu().numpy().tobytes() == expected, (key.hex(), nonce.hex(), counter)


@pytest.mark.parametrize("length", [0, 1, 3, 97, 1025])
def test_kernels_match_reference(length, kernel):
    backend, device = kernel
    key, nonce = secrets.token_bytes(32), secrets.token_bytes(12)
    counter = secrets.randbelow(2**31)
    got = chacha20_keystream(key, nonce, counter, length, backend, device)
    assert got.dtype == torch.uint8 and got.shape == (length,)
    assert got.cpu().numpy().tobytes() == reference_keystream(key, nonce, counter, length)


def test_public_keystream_api():
    key, nonce = bytes(range(32)), bytes.fromhex("000000090000004a00000000")
    assert idp.keystream(key, nonce, 1, 16).hex() == RFC_VECTORS[0][3][:32]
    assert idp.keystream(key, nonce, 1, 16, backend="reference").hex() == RFC_VECTORS[0][3][:32]
    assert idp.keystream(key.hex(), nonce, 1, 0) == b""


@pytest.mark.parametrize("kwargs,match", [
    (dict(key=b"short"), "32 bytes"),
    (dict(nonce=b"\0" * 8), "nonce must be 12 bytes"),
    (dict(counter=-1), "counter must be"),
    (dict(counter=2**32), "counter must be"),
    (dict(counter=2**32 - 1, length=65), "runs past the 32-bit block counter"),
    (dict(length=-5), "length must be"),
    (dict(backend="nope"), "backend='nope'"),
])
def test_keystream_rejects_bad_arguments(kwargs, match):
    args = dict(key=bytes(32), nonce=bytes(12), counter=0, length=16)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        idp.keystream(**args)


def test_last_block_of_the_counter_range_is_allowed():
    out = idp.keystream(bytes(32), bytes(12), 2**32 - 1, 64)
    assert out == reference_keystream(bytes(32), bytes(12), 2**32 - 1, 64)
