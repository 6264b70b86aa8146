"""[gamma_id_l, beta_id_l]_l = W ((v / ||v|| * r - mu) / std) + b: the identity bottleneck.

The generator's only identity input. The released (epsilon-IdentityDP) identity vector v
(N, D) (D = 128, dlib's scale) is

1. put on the sphere of radius r = ``dp_output_norm`` (the norm the DP mechanism
   releases at, so raw dlib descriptors and released vectors look alike to the net);
2. centred and whitened per coordinate, z = (v r / ||v|| - mu) / std, with ``input_mean``
   mu and ``input_std`` std stored with the model: dlib's unit vectors share one strong
   direction (mean cosine 0.83 between different people), and without this every
   identity looked alike to the generator (DESIGN.md 7b);
3. projected by ONE Linear (D -> sum_l 2 C_l) to every AAD layer's (gamma_id, beta_id),
   laid out [gamma_0, beta_0, gamma_1, beta_1, ...], so the engine runs it as one GEMM.

The DP parameters travel with the weights as buffers: ``dp_center`` (D,) the public
centre of the unit descriptors, ``dp_clip`` the L1 radius C of the residual (Delta_1 =
2C), ``dp_output_norm`` the typical descriptor norm. identitydp_fast/pipeline/release.py
runs the mechanism (identitydp_fast.IdentityDP) with them. Only the released vector may
reach ``forward`` in an anonymisation; its guarantee covers the identity path only, not
the attribute path.

Shapes: identity (N, D) any float dtype -> list of L pairs ((N, C_l), (N, C_l)) in the
module's dtype. Kernel stem: kernels/*/bottleneck.* (planned); test: tests/test_aei_net.py.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

#: typical L2 norm of dlib's descriptors (1.25-1.61 on LFW, DESIGN.md 3); the default
#: until ``set_identity_statistics`` measures it on training data.
DEFAULT_OUTPUT_NORM = 1.4


class IdentityBottleneck(nn.Module):
    """Released identity vector -> every AAD layer's (gamma_id, beta_id).

    Args:
        channels: C_l of every AAD layer in generator order (from AADGenerator.id_channels()).
        identity_dim: D (128).

    Buffers (saved with the weights): input_mean (D,), input_std (D,) whitening statistics
    at norm ``dp_output_norm``; dp_center (D,) public centre of unit descriptors (zeros
    by default); dp_clip () the L1 clip radius C (default sqrt(D): with a zero centre this
    is IdentityDP's worst-case bound); dp_output_norm () the release norm r.
    The Linear's gamma biases start at 1 (identity-like modulation), beta biases at 0.
    """

    def __init__(self, channels: Sequence[int], identity_dim: int = 128):
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be a non-empty list of positive ints, got {channels!r}")
        self.identity_dim = int(identity_dim)
        d = self.identity_dim
        self.proj = nn.Linear(d, 2 * sum(self.channels))  # (N, D) -> (N, sum 2 C_l)
        with torch.no_grad():
            self.proj.bias.zero_()
            off = 0
            for c in self.channels:
                self.proj.bias[off:off + c] = 1.0  # gamma_id starts near 1
                off += 2 * c
        self.register_buffer("input_mean", torch.zeros(d))
        self.register_buffer("input_std", torch.ones(d))
        self.register_buffer("dp_center", torch.zeros(d))
        self.register_buffer("dp_clip", torch.tensor(math.sqrt(d)))
        self.register_buffer("dp_output_norm", torch.tensor(DEFAULT_OUTPUT_NORM))

    # ---- the network path ------------------------------------------------------------
    def whiten(self, identity: torch.Tensor) -> torch.Tensor:
        """z = (v r / ||v|| - mu) / std: (N, D) -> (N, D) in the module's dtype."""
        if identity.dim() != 2 or identity.shape[1] != self.identity_dim:
            raise ValueError(f"identity must have shape (N, {self.identity_dim}), got {tuple(identity.shape)}")
        v = identity.to(self.proj.weight.dtype)
        v = v * (self.dp_output_norm / v.norm(dim=1, keepdim=True).clamp_min(1e-12))
        return (v - self.input_mean) / self.input_std

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """The one GEMM: (N, D) whitened -> (N, sum_l 2 C_l), [gamma_0, beta_0, gamma_1, ...]."""
        return self.proj(z)

    def split(self, packed: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(N, sum 2 C_l) -> [(gamma_id_l (N, C_l), beta_id_l (N, C_l))] per AAD layer."""
        out, off = [], 0
        for c in self.channels:
            out.append((packed[:, off:off + c], packed[:, off + c:off + 2 * c]))
            off += 2 * c
        return out

    def forward(self, identity: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """identity (N, D) released vector -> [(gamma_id (N, C_l), beta_id (N, C_l))] per layer."""
        return self.split(self.project(self.whiten(identity)))

    # ---- the public statistics (the DP release itself: pipeline/release.py) ----------
    @torch.no_grad()
    def set_identity_statistics(self, descriptors: torch.Tensor, clip: float | None = None) -> None:
        """Fill the public statistics from training descriptors (M, D) (not from people
        the model will anonymise): dp_output_norm = median norm, dp_center = mean unit
        vector, input_mean / input_std = per-coordinate mean / std at that norm; dp_clip
        = ``clip`` when given (DESIGN.md 4: C ~ 4-5 for dlib; the bound holds for any input)."""
        e = descriptors.detach().to(torch.float64)
        if e.dim() != 2 or e.shape[1] != self.identity_dim or e.shape[0] < 2:
            raise ValueError(f"descriptors must be (M >= 2, {self.identity_dim}), got {tuple(e.shape)}")
        norms = e.norm(dim=1, keepdim=True)
        if not bool((norms > 0).all() & torch.isfinite(e).all()):
            raise ValueError("descriptors contain zero rows or non-finite values")
        u = e / norms
        r = float(norms.median())
        self.dp_output_norm.fill_(r)
        self.dp_center.copy_(u.mean(dim=0))
        self.input_mean.copy_((u * r).mean(dim=0))
        self.input_std.copy_((u * r).std(dim=0).clamp_min(1e-6))
        if clip is not None:
            if not (math.isfinite(clip) and clip > 0):
                raise ValueError(f"clip must be finite and > 0, got {clip!r}")
            self.dp_clip.fill_(float(clip))
