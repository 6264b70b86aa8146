"""Loading of the compiled module ``identitydp_fast._C`` and the hand-off of tensors.

Tensors cross into C++ as DLPack capsules (``torch.utils.dlpack.to_dlpack``), which the
C++ side borrows and checks (csrc/tensor_arg.h). CUDA work is enqueued on torch's
current stream of the tensor's device.
"""
from __future__ import annotations

import torch
from torch.utils.dlpack import to_dlpack

try:
    from . import _C  # type: ignore[attr-defined]
    IMPORT_ERROR: Exception | None = None
except ImportError as exc:  # a source checkout without a build, or a broken install
    _C = None
    IMPORT_ERROR = exc


def native():
    """The compiled module, or a RuntimeError that says how to build it."""
    if _C is None:
        raise RuntimeError(
            "identitydp_fast._C is not available (the compiled kernels were not built or "
            f"failed to load: {IMPORT_ERROR}); install the package with `pip install .` "
            "or use backend='reference'")
    return _C


def capsule(t: torch.Tensor):
    """Borrowable DLPack capsule of ``t`` (a tensor that needs no grad)."""
    return to_dlpack(t.detach())


def cuda_stream_of(t: torch.Tensor) -> int:
    """torch's current CUDA stream handle for ``t``'s device (0 on CPU)."""
    if t.device.type != "cuda":
        return 0
    return torch.cuda.current_stream(t.device).cuda_stream
