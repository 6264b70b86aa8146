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
2C), ``dp_output_norm`` the typical descriptor norm. ``privatise`` runs the mechanism
(identitydp_fast.IdentityDP) with them. Only the released vector may reach ``forward``
in an anonymisation; its guarantee covers the identity path only, not the attribute path.

Shapes: identity (N, D) any float dtype -> list of L pairs ((N, C_l), (N, C_l)) in the
module's dtype. Kernel stem: kernels/*/bottleneck.* (planned); test: tests/test_aei_net.py.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..privacy.identity_dp import IdentityDP, IdentityDPResult

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

    # ---- the DP release and its public statistics ---------------------------------------
    def privatise(self, identity: torch.Tensor, epsilon: float, key: bytes | str | None = None,
                  backend: str = "reference", stream: int = 0
                  ) -> tuple[torch.Tensor, IdentityDPResult]:
        """Release (N, D) identity descriptors with epsilon-IdentityDP using the stored
        dp_center / dp_clip / dp_output_norm. Returns (released (N, D) float32, result).

        The guarantee is IdentityDP's (identitydp_fast/privacy/identity_dp.py): Delta_1 = 2 dp_clip
        for every input, effective epsilon in ``result``. key=None draws a fresh key from
        the OS CSPRNG (the default); a given key is the flagged reproducible mode.
        """
        mech = IdentityDP(epsilon, center=self.dp_center.detach().float().cpu(),
                          clip=float(self.dp_clip), output_norm=float(self.dp_output_norm),
                          backend=backend)
        result = mech(identity.detach().float().contiguous(), key=key, stream=stream)
        return result.vectors, result

    def typical_residual_norm(self) -> float:
        """rho = sqrt(E ||u - mean(u)||^2) of the training unit descriptors u, from the stored
        whitening statistics (input_std is the per-coordinate std of u r, so rho =
        ||input_std|| / r). Public: a function of the published statistics only."""
        return float(self.input_std.double().norm() / self.dp_output_norm.double())

    def to_typical_identity(self, released: torch.Tensor) -> torch.Tensor:
        """Post-process released vectors onto the shell where real identities live.

        On the unit sphere, ||u - mu||^2 = 1 + m^2 - 2 m cos(u, mu) (m = ||mu||), so the
        distance from the public centre mu = dp_center is set by the angle to it alone.
        Write u = v / ||v|| = cos(a) mu^ + sin(a) e (e: unit, orthogonal to mu). A vector
        farther than rho from mu (cos(a) < c* = (1 + m^2 - rho^2) / (2 m)) is turned
        towards mu, keeping e, to exactly that distance:

            u' = c* mu^ + sqrt(1 - c*^2) e,     out = r u'      (r = dp_output_norm);

        nearer vectors only get the norm r. rho = ``typical_residual_norm()``.

        Why: below epsilon ~ 300 the Laplace noise dominates, and a released unit vector
        lies 2-3 rho from the centre (measured for the default model: median 3.25 rho at
        epsilon 1, 2.3 rho at 100, 1.03 rho at 1000), while training identities lie at
        0.84-1.22 rho (1st-99th percentile). The generator, never shown such vectors,
        painted artefacts; on the shell it renders a typical (random) identity.

        Guarantee: the map uses only the released vector and public statistics of the
        model, so it is post-processing and the release keeps its (effective_epsilon,
        delta)-DP guarantee exactly. (N, D) -> (N, D) float32."""
        v = released.detach().to(torch.float64)
        mu = self.dp_center.detach().to(device=v.device, dtype=torch.float64)
        m = float(mu.norm())
        rho = self.typical_residual_norm()
        u = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)
        if m < 1e-12 or not rho < 1 + m:       # no centre (or no spread): nothing to do
            return (u * float(self.dp_output_norm)).to(torch.float32)
        mu_hat = mu / m
        c_star = min(1.0, max(-1.0, (1 + m * m - rho * rho) / (2 * m)))
        cos = u @ mu_hat                                               # (N,)
        e = u - cos[:, None] * mu_hat
        e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-300)
        turned = c_star * mu_hat + math.sqrt(max(0.0, 1 - c_star * c_star)) * e
        u = torch.where((cos < c_star)[:, None], turned, u)
        return (u * float(self.dp_output_norm)).to(torch.float32)

    def release(self, identity: torch.Tensor, epsilon: float, key: bytes | str | None = None,
                backend: str = "reference", stream: int = 0, typical: bool = True
                ) -> tuple[torch.Tensor, IdentityDPResult]:
        """What an anonymisation feeds the generator: ``privatise`` (the DP mechanism), then,
        with ``typical``, ``to_typical_identity`` (post-processing: same guarantee)."""
        vectors, result = self.privatise(identity, epsilon, key=key, backend=backend,
                                         stream=stream)
        return (self.to_typical_identity(vectors) if typical else vectors), result

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
