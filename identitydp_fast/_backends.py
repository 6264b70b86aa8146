"""Backend registry: which implementations of the ops run on this machine.

* ``reference``: plain PyTorch (identitydp_fast/reference), any device, always.
* ``cpu``: C++/OpenMP kernels in ``_C``, CPU tensors.
* ``cuda``: CUDA kernels in ``_C`` (built with IDP_CUDA=ON/AUTO), CUDA tensors.
* ``triton``: Triton kernels (kernels/triton) on CUDA tensors, or on CPU tensors in
  Triton's interpreter when ``TRITON_INTERPRET=1`` was set before triton was imported.

``auto`` picks, for the data's device: cuda > triton > reference on a GPU, cpu >
reference on the CPU.
"""
from __future__ import annotations

import functools
import importlib.util
import os

import torch

from . import _native

NAMES = ("reference", "cpu", "cuda", "triton")


@functools.lru_cache(maxsize=None)
def _triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def triton_interpreted() -> bool:
    """True when Triton kernels run in the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def available(name: str, device: torch.device | str | None = None) -> bool:
    """Whether backend ``name`` can run on ``device`` (any supported device if None)."""
    dev = None if device is None else torch.device(device)
    if name == "reference":
        return dev is None or dev.type == "cpu" or (dev.type == "cuda" and torch.cuda.is_available())
    if name == "cpu":
        return _native._C is not None and (dev is None or dev.type == "cpu")
    if name == "cuda":
        return (_native._C is not None and bool(_native._C.with_cuda)
                and torch.cuda.is_available() and (dev is None or dev.type == "cuda"))
    if name == "triton":
        if not _triton_importable():
            return False
        if dev is None:
            return torch.cuda.is_available() or triton_interpreted()
        if dev.type == "cuda":
            return torch.cuda.is_available()
        return dev.type == "cpu" and triton_interpreted()
    raise ValueError(f"unknown backend {name!r}; expected one of {NAMES} or 'auto'")


def backends() -> list[str]:
    """Names of the backends usable on this machine, in preference order."""
    return [n for n in ("cuda", "triton", "cpu", "reference") if available(n)]


def resolve(backend: str, device: torch.device | str) -> str:
    """The concrete backend for ``device``; raises a ValueError naming what is missing."""
    dev = torch.device(device)
    if backend == "auto":
        order = ("cuda", "triton", "reference") if dev.type == "cuda" else ("cpu", "reference")
        for name in order:
            if available(name, dev):
                return name
        return "reference"
    if backend not in NAMES:
        raise ValueError(f"backend={backend!r} is not one of {NAMES} or 'auto'")
    if not available(backend, dev):
        hint = {
            "cpu": "the compiled module _C is missing (install the package with pip)",
            "cuda": "needs a CUDA GPU, a CUDA build of torch and _C built with IDP_CUDA=ON",
            "triton": "needs triton and a CUDA tensor, or TRITON_INTERPRET=1 for CPU tensors",
        }.get(backend, "")
        raise ValueError(f"backend={backend!r} is not available for device {dev}: {hint}")
    return backend


def check_device(device) -> torch.device:
    """``device`` as a CPU or CUDA torch.device (CUDA only when torch sees a GPU), or
    ValueError naming the problem."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}, but torch sees no CUDA GPU on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be a CPU or CUDA device, got {dev}")
    return dev
