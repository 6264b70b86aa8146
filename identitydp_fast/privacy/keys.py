"""Keys for the noise keystream.

By default every call draws a fresh 256-bit ChaCha20 key from the operating system's
CSPRNG (:mod:`secrets`) and forgets it: the noise can't be reproduced by anyone. A
caller may pass a key instead (reproducible mode, for tests and audits): the result
then says ``key_supplied=True``. Reusing a key with the same ``stream`` on different
data reuses the noise, which weakens the guarantee: give each release its own stream.
"""
from __future__ import annotations

import collections
import hashlib
import threading
import secrets

KEY_BYTES = 32
NONCE_BYTES = 12


def fresh_key() -> bytes:
    """32 bytes from the OS CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def check_key(key: bytes | bytearray | str, name: str = "key") -> bytes:
    """A 32-byte key from bytes or a 64-character hex string; raises naming the problem."""
    if isinstance(key, str):
        try:
            raw = bytes.fromhex(key)
        except ValueError:
            raise ValueError(f"{name}: a string key must be 64 hex characters, got {key!r}") from None
        if len(raw) != KEY_BYTES:
            raise ValueError(f"{name} must be {2 * KEY_BYTES} hex characters ({KEY_BYTES} bytes), "
                             f"got {len(key)} characters")
        key = raw
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"{name} must be bytes (32) or a hex string, got {type(key).__name__}")
    if len(key) != KEY_BYTES:
        raise ValueError(f"{name} must be {KEY_BYTES} bytes, got {len(key)}")
    return bytes(key)


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
