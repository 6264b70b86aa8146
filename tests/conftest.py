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


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> str:
    """A random-init fast-128 AEI-Net saved to disk (every stage of the pipeline runs; the
    output is not a face). Its public DP statistics come from dlib-like descriptors (one
    shared direction plus spread). Skips when dlib's ResNet file, which the Anonymizer
    needs for the identity, is not installed."""
    try:
        from identitydp_fast.models.files import model_file
        model_file("resnet")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    from identitydp_fast.models.weights import save_model
    from identitydp_fast.reference.aei_net import AEINet

    torch.manual_seed(0)
    model = AEINet("fast-128")
    desc = torch.randn(64, 128, generator=torch.Generator().manual_seed(1)) * 0.05 + 0.09
    model.bottleneck.set_identity_statistics(desc, clip=5.0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(model.eval(), path)
    return str(path)
