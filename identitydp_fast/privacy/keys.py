"""Keys for the noise keystream.

By default every call draws a fresh 256-bit ChaCha20 key from the operating system's
CSPRNG (:mod:`secrets`) and forgets it: the noise can't be reproduced by anyone. A
caller may pass a key instead (reproducible mode, for tests and audits): the result
then says ``key_supplied=True``. Reusing a key with the same ``stream`` on different
data reuses the noise, which weakens the guarantee: give each release its own stream.

Batch runs with a master key (``identitydp anonymize --key``, ``anonymize-video``,
``identity``, the dataset runner) derive one key per input with :func:`derive_key` from
(master, a per-run salt, the input's SHA-256, its name within the run): two runs with one
master key never share noise unless they also share the salt, the bytes and the name.
The salt is random per run and written into the run's report; passing it back
(``--salt``) reproduces that run exactly. The salt is not secret; the master key is.
"""
from __future__ import annotations

import collections
import hashlib
import hmac
import os
import threading
import secrets

KEY_BYTES = 32
NONCE_BYTES = 12
SALT_BYTES = 16
_DERIVE_CONTEXT = b"identitydp-fast derived key v2\0"


def fresh_key() -> bytes:
    """32 bytes from the OS CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def _fixed_bytes(value, size: int, name: str, what: str) -> bytes:
    """``size`` bytes from bytes or a 2 * size-character hex string; raises naming the problem."""
    if isinstance(value, str):
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise ValueError(f"{name}: a string {what} must be {2 * size} hex characters, "
                             f"got {value!r}") from None
        if len(raw) != size:
            raise ValueError(f"{name} must be {2 * size} hex characters ({size} bytes), "
                             f"got {len(value)} characters")
        value = raw
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{name} must be bytes ({size}) or a hex string, got {type(value).__name__}")
    if len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(value)}")
    return bytes(value)


def check_key(key: bytes | bytearray | str, name: str = "key") -> bytes:
    """A 32-byte key from bytes or a 64-character hex string; raises naming the problem."""
    return _fixed_bytes(key, KEY_BYTES, name, "key")


def fresh_salt() -> bytes:
    """A run's salt: 16 bytes from the OS CSPRNG."""
    return secrets.token_bytes(SALT_BYTES)


def check_salt(salt: bytes | bytearray | str, name: str = "salt") -> bytes:
    """A 16-byte salt from bytes or a 32-character hex string; raises naming the problem."""
    return _fixed_bytes(salt, SALT_BYTES, name, "salt")


def file_sha256(path: str | os.PathLike) -> bytes:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (videos need not fit in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def derive_key(master: bytes, salt: bytes, content_sha256: bytes, name: str) -> bytes:
    """The 32-byte key of one input of a run:
    HMAC-SHA256(master, context || salt || SHA-256 of the input's bytes || len(name) || name).

    master: the run's secret key (32 bytes); salt: the run's salt (16 bytes, recorded in
    its report); content_sha256: the input's digest (32 bytes); name: its name within the
    run ('sub/a.jpg', 'track 3'; UTF-8, length-prefixed so no two (name) encodings
    collide). Different runs (salts), different bytes under one name, and different
    names for one content all give independent keys.
    """
    master, salt = check_key(master, "master key"), check_salt(salt)
    if not isinstance(content_sha256, (bytes, bytearray)) or len(content_sha256) != 32:
        raise ValueError("content_sha256 must be the 32-byte SHA-256 digest of the input")
    label = name.encode("utf-8")
    msg = (_DERIVE_CONTEXT + salt + bytes(content_sha256) + len(label).to_bytes(8, "big") + label)
    return hmac.new(master, msg, hashlib.sha256).digest()


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key (first 8 bytes of SHA-256, hex)."""
    return hashlib.sha256(b"identitydp-fast key id\0" + key).hexdigest()[:16]


class KeyReuseWarning(UserWarning):
    """A caller-supplied key was used again on the same stream in this process: the two
    releases carry the same noise, so their difference reveals the difference of the inputs
    exactly (no privacy between them)."""


_USED_MAX = 65536                 # remembered (key id, stream) pairs; the oldest are forgotten
_used: "collections.OrderedDict[tuple[str, int], None]" = collections.OrderedDict()
_used_lock = threading.Lock()


def note_use(key: bytes, stream: int) -> bool:
    """Record that ``key`` released on ``stream``; True when this process already used that
    pair (within the last _USED_MAX distinct pairs). Only public key ids are kept."""
    pair = (key_id(key), int(stream))
    with _used_lock:
        seen = pair in _used
        _used[pair] = None
        _used.move_to_end(pair)
        while len(_used) > _USED_MAX:
            _used.popitem(last=False)
    return seen
