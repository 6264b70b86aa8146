"""identitydp-fast: face anonymisation with epsilon-IdentityDP (Wen et al., arXiv 2103.01745).

``Anonymizer`` replaces every face of an image with a generated face whose identity
vector was released with epsilon-IdentityDP (the packaged default model; its measured
privacy and utility: docs/MODEL_CARD.md). Beneath it: the noise engine (the ChaCha20
keystream, the floating-point-safe discrete Laplace sampler and the fused
epsilon-IdentityDP op, ``IdentityDP``), the identity encoder (dlib's face-recognition
ResNet, ported: ``IdentityEncoder``), the face geometry (``detect_faces``, alignment,
chips) and the AEI-Net generator, on four backends (reference, cpu, cuda, triton).

Layout: ``anonymizer`` composes the stages of ``pipeline/`` (decode, detect, align,
identity, release, attributes, generate, blend); ``privacy/`` holds what a privacy reviewer
reads (GUARANTEE.md); ``io/`` and ``cli/`` are the files, streams and command line around
them; ``models/``, ``reference/``, ``ops/`` and ``engine/`` the networks below.
"""
from __future__ import annotations

import os as _os

# OpenMP threads that wait at a barrier sleep instead of spinning, unless the user chose:
# on a loaded machine a spinning thread holds a core the other thread needs, and the
# generator's latency doubled with one other busy process (bench/contention.py: 328 ->
# 193 ms median, idle cost within noise). libgomp reads this once, when torch loads, so it
# applies only when identitydp_fast is imported before torch (always for the CLI);
# otherwise set OMP_WAIT_POLICY=PASSIVE in the environment yourself (README, Performance).
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from .privacy import keys as _keys  # noqa: E402
from ._backends import backends  # noqa: E402
from .anonymizer import Anonymizer, FaceResult  # noqa: E402
from .pipeline.detect import FaceRecord, detect_faces  # noqa: E402
from .privacy.identity_dp import IdentityDP, IdentityDPResult  # noqa: E402
from .pipeline.identity import IdentityEncoder  # noqa: E402
from .privacy.accounting import LaplaceParams, laplace_params  # noqa: E402

__version__ = "0.1.0"
__all__ = ["backends", "keystream", "IdentityDP", "IdentityDPResult", "LaplaceParams",
           "laplace_params", "IdentityEncoder", "detect_faces", "FaceRecord", "Anonymizer",
           "FaceResult", "__version__"]


def keystream(key: bytes, nonce: bytes, counter: int, length: int, backend: str = "auto") -> bytes:
    """``length`` bytes of ChaCha20 keystream (RFC 8439: 32-byte key, 12-byte nonce,
    32-bit block counter), starting at block ``counter``.

    Raises ValueError when the stream would run past block 2^32 - 1.
    """
    from . import _backends as _b
    from .ops import chacha20_keystream

    key = _keys.check_key(key)
    if not isinstance(nonce, (bytes, bytearray)) or len(nonce) != _keys.NONCE_BYTES:
        raise ValueError(f"nonce must be {_keys.NONCE_BYTES} bytes, got {nonce!r:.40}")
    if isinstance(counter, bool) or not isinstance(counter, int) or not 0 <= counter < 2**32:
        raise ValueError(f"counter must be an integer in [0, 2^32), got {counter!r}")
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be a non-negative integer, got {length!r}")
    if counter + (length + 63) // 64 > 2**32:
        raise ValueError(f"counter={counter} with length={length} runs past the 32-bit block counter")
    device = "cuda" if backend in ("cuda", "triton") or (
        backend == "auto" and _b.available("cuda")) else "cpu"
    if backend == "triton" and not _b.available("triton", "cuda"):
        device = "cpu"
    name = _b.resolve(backend, device)
    return chacha20_keystream(bytes(key), bytes(nonce), counter, length, name, device).cpu().numpy().tobytes()
