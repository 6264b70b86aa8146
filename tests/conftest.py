"""Shared fixtures: which (backend, device) pairs run on this machine.

Triton runs in its CPU interpreter when no GPU is present: TRITON_INTERPRET must be set
before triton is first imported, so it is set here, at collection time.
"""
from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from identitydp_fast import _backends  # noqa: E402

ALL_PAIRS = [("reference", "cpu"), ("cpu", "cpu"), ("triton", "cpu"),
             ("reference", "cuda"), ("cuda", "cuda"), ("triton", "cuda")]


def _param(backend: str, device: str):
    marks = [pytest.mark.cuda] if device == "cuda" else []
    if device == "cuda" and not torch.cuda.is_available():
        marks.append(pytest.mark.skip(reason="no CUDA GPU on this machine"))
    elif not _backends.available(backend, device):
        reason = {"cpu": "identitydp_fast._C is not built",
                  "cuda": "_C was built without CUDA",
                  "triton": ("Triton's CPU interpreter is off (a GPU is present)"
                             if device == "cpu" and torch.cuda.is_available()
                             else "triton is not installed")}.get(backend, "unavailable")
        marks.append(pytest.mark.skip(reason=f"backend {backend!r} on {device}: {reason}"))
    return pytest.param((backend, device), marks=marks, id=f"{backend}-{device}")


@pytest.fixture(params=[_param(b, d) for b, d in ALL_PAIRS if b != "reference" or d == "cuda"])
def kernel(request):
    """(backend, device) for every kernel backend (and the reference on a GPU)."""
    return request.param


@pytest.fixture(params=[_param(b, d) for b, d in ALL_PAIRS])
def impl(request):
    """(backend, device) for every backend, the CPU reference included."""
    return request.param
