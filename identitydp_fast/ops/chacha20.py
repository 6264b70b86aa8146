"""ChaCha20 keystream op. Reference: identitydp_fast/reference/chacha20.py;
kernels: kernels/common/chacha20.h (cpu, cuda), kernels/triton/chacha20.py;
test: tests/test_chacha20.py; benchmark: bench/bench_chacha20.py."""
from __future__ import annotations

import torch

from .. import _native
from ..reference.chacha20 import keystream as _reference_keystream


def chacha20_keystream(key: bytes, nonce: bytes, counter: int, length: int,
                       backend: str = "reference", device: torch.device | str = "cpu") -> torch.Tensor:
    """(length,) uint8 tensor of keystream from block ``counter`` on a resolved backend."""
    dev = torch.device(device)
    if backend == "reference":
        return torch.frombuffer(bytearray(_reference_keystream(key, nonce, counter, length)),
                                dtype=torch.uint8).to(dev) if length else torch.empty(0, dtype=torch.uint8, device=dev)
    if backend in ("cpu", "cuda"):
        out = torch.empty(length, dtype=torch.uint8, device=dev)
        _native.native().chacha20_keystream(key, nonce, counter, _native.capsule(out),
                                            _native.cuda_stream_of(out))
        return out
    if backend == "triton":
        from ..kernels.triton import chacha20 as _tri
        return _tri.chacha20_keystream(key, nonce, counter, length, dev)
    raise ValueError(f"unknown backend {backend!r}")
