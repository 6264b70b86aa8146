"""Identity (pipeline stage 4): aligned 150x150 face chips -> 128-D identity descriptors.

``IdentityEncoder()(chips)`` runs dlib's face-recognition ResNet
(dlib_face_recognition_resnet_model_v1.dat, CC0; structure and weights:
identitydp_fast/models/dlib_resnet.py) and returns what dlib's
``compute_face_descriptor`` returns for the same chips (max abs diff ~4e-7), in dlib's
scale: not normalised, distance < 0.6 means the same person.

Chips are dlib's convention: ``dlib.get_face_chip(img, shape, size=150, padding=0.25)``
from the 5-point landmarks, RGB (pipeline/align.py ``dlib_face_chips``);
``describe_faces(encoder, rgb, landmarks)`` cuts them and runs the encoder.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ..models.dlib_resnet import DESCRIPTOR_DIM
from .align import CHIP_PADDING, CHIP_SIZE, dlib_face_chips


def _reference(device: torch.device) -> nn.Module:
    from ..reference.dlib_resnet import DlibResNet
    return DlibResNet.from_file().to(device).eval()


def _engine(backend: str) -> Callable[..., nn.Module]:
    def factory(device: torch.device, dtype: torch.dtype = torch.float32) -> nn.Module:
        from ..engine.dlib_resnet import EngineDlibResNet
        return EngineDlibResNet.from_file(backend=backend, dtype=dtype).to(device).eval()
    return factory


#: backend name -> factory(device) of a module mapping float32 (N, 3, 150, 150) RGB in
#: [0, 255] to (N, 128): the reference network, or the engine (folded weights,
#: channels-last, fused residual joins) with that backend's kernels.
ENCODER_BACKENDS: dict[str, Callable[[torch.device], nn.Module]] = {
    "reference": _reference, "cpu": _engine("cpu"), "cuda": _engine("cuda"),
    "triton": _engine("triton")}


class IdentityEncoder:
    """Face chips -> (N, 128) float32 identity descriptors in dlib's scale.

    Args:
        backend: 'auto' (cuda > triton > reference on a GPU, cpu > reference on the
            CPU), 'reference', 'cpu', 'cuda' or 'triton'.
        device: where the network runs ('cpu', 'cuda', a torch.device).
        dtype: torch.float32 (default: dlib's descriptors to ~1e-6), or torch.float16 /
            torch.bfloat16 (GPU speed; the engine network with Triton joins, or the
            engine with torch joins for backend 'reference'; measured bounds in
            tests/test_dlib_resnet_engine.py). Descriptors are float32 either way.

    Call it on either
      * uint8 RGB chips (N, 150, 150, 3), a numpy array or torch tensor (dlib's layout), or
      * float chips (N, 3, 150, 150) RGB in [0, 255] (float16/32/64, numpy or torch).
    Returns a float32 torch tensor (N, 128) on ``device``. For gradients (an identity loss
    in training), call ``encoder.module`` directly on float chips.
    """

    def __init__(self, backend: str = "auto", device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        from .. import _backends
        if backend != "auto" and backend not in ENCODER_BACKENDS:
            raise ValueError(f"backend={backend!r} has no identity encoder; choose one of "
                             f"{sorted(ENCODER_BACKENDS)} or 'auto'")
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be torch.float32, float16 or bfloat16, got {dtype!r}")
        self.device = torch.device(device)
        if dtype != torch.float32 and backend == "auto":
            backend = "triton" if self.device.type == "cuda" else "reference"
        backend = _backends.resolve(backend, self.device)
        if dtype != torch.float32 and backend not in ("triton", "reference"):
            raise ValueError(f"dtype={dtype} runs on backend 'triton' (or the engine's "
                             f"'reference' joins); the {backend!r} kernels are float32-only")
        self.backend = backend
        self.dtype = dtype
        if dtype == torch.float32:
            self.module = ENCODER_BACKENDS[backend](self.device)
        else:   # the engine network in half precision (the reference net is float32-only)
            self.module = _engine(backend)(self.device, dtype)

    def __call__(self, chips) -> torch.Tensor:
        """chips: (N, 150, 150, 3) uint8 or (N, 3, 150, 150) float in [0, 255] -> (N, 128)."""
        x = _as_float_chips(chips).to(self.device)
        if x.shape[0] == 0:
            return torch.empty(0, DESCRIPTOR_DIM, dtype=torch.float32, device=self.device)
        with torch.no_grad():
            return self.module(x).to(torch.float32)



def describe_faces(encoder: IdentityEncoder, rgb: np.ndarray, landmarks) -> torch.Tensor:
    """(N, 128) float32 descriptors on the encoder's device from dlib's chips of (H, W, 3)
    uint8 ``rgb`` at the faces' (N, 5, 2) landmarks (N = 0: an empty (0, 128))."""
    if len(landmarks) == 0:
        return torch.empty(0, DESCRIPTOR_DIM, dtype=torch.float32, device=encoder.device)
    return encoder(dlib_face_chips(rgb, np.stack(landmarks), CHIP_SIZE, CHIP_PADDING))


def _as_float_chips(chips) -> torch.Tensor:
    """Validate chips and return float32 (N, 3, 150, 150) RGB in [0, 255]."""
    if isinstance(chips, np.ndarray):
        if chips.dtype == object or not (chips.dtype == np.uint8 or
                                         np.issubdtype(chips.dtype, np.floating)):
            raise TypeError(f"chips must be uint8 or floating point, got numpy dtype {chips.dtype}")
        chips = torch.from_numpy(np.ascontiguousarray(chips))
    elif not isinstance(chips, torch.Tensor):
        raise TypeError(f"chips must be a numpy array or torch tensor, got {type(chips).__name__}")
    size = CHIP_SIZE
    if chips.dtype == torch.uint8:
        if chips.dim() != 4 or tuple(chips.shape[1:3]) != (size, size) or chips.shape[3] != 3:
            hint = (" (add a batch axis: chips[None])" if chips.dim() == 3 else
                    " (uint8 chips are channels-last, like dlib's images)"
                    if chips.dim() == 4 and chips.shape[1] == 3 else "")
            raise ValueError(f"uint8 chips must have shape (N, {size}, {size}, 3) RGB, got "
                             f"{tuple(chips.shape)}{hint}")
        return chips.permute(0, 3, 1, 2).to(torch.float32)  # (N, 3, 150, 150)
    if not chips.is_floating_point():
        raise TypeError(f"chips must be uint8 (N, {size}, {size}, 3) or floating point "
                        f"(N, 3, {size}, {size}), got dtype {chips.dtype}")
    if chips.dim() != 4 or tuple(chips.shape[1:]) != (3, size, size):
        hint = (" (add a batch axis: chips[None])" if chips.dim() == 3 else
                " (float chips are channels-first: chips.permute(0, 3, 1, 2))"
                if chips.dim() == 4 and chips.shape[-1] == 3 else "")
        raise ValueError(f"float chips must have shape (N, 3, {size}, {size}) RGB in [0, 255], "
                         f"got {tuple(chips.shape)}{hint}")
    x = chips.detach().to(torch.float32)
    if x.numel():
        if not bool(torch.isfinite(x).all()):
            raise ValueError("float chips contain NaN or inf")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 255.0:
            raise ValueError(f"float chips must hold pixel values in [0, 255], got range "
                             f"[{lo:g}, {hi:g}] (undo any normalisation first)")
    return x
