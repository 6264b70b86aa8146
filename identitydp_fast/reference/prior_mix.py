"""new crop = prior(W+ = style mix of [attribute w | identity w]): the IdentityDP generator on
the frozen MobileStyleGAN prior (reference/mobile_stylegan.py), the ``prior-256`` model.

IdentityDP's three stages:

1. disentangle: the identity is the dlib descriptor v (N, 128), released by the unchanged
   epsilon-IdentityDP mechanism with the public parameters in ``bottleneck`` (centre, L1
   clip, typical-identity shell; pipeline/release.py). The attributes are read from the
   aligned 256 crop with its inner face degraded (pipeline attributes stage) by
   ``AttributeEncoder``: low-frequency features (``attribute_features``: the crop's
   colour at 16 x 16 and its luminance at 32 x 32) mapped linearly to a w of the prior;
2. ``IdentityMapper``: the released vector, as a unit vector u = v / ||v||, mapped linearly
   to a w of the prior, w_id = w_mean + gain (u - u_mean) B, and kept inside the prior's
   typical set (its whitened norm capped: low-epsilon releases point where no face does);
3. the frozen prior renders W+ where the identity-carrying layers (``id_blocks``: blocks 1,
   2 and 3, the 16, 32 and 64 px levels) take w_id and every other layer (pose and layout
   at 4-8 px; colour, lighting and texture at 128 px and the head) takes the attribute w.
   Style mixing at these levels swaps the person and keeps pose, hair and background
   (DESIGN.md 9: blocks 2-3; block 1 added as measured in ``PriorMixConfig``); the 256
   head renders the crop.

Why this split and not the AAD one (reference/prior_aad.py): both maps are fitted in
closed form (ridge regression) on the prior's own samples, whose w is known
(tools/fit_prior_mix.py), in seconds, and every output is a point of the prior's W+ space,
so it is a realistic face by construction. The AAD network, trained by gradient descent on
this CPU, collapsed to the average face (docs/images/prior_generator_step700.png); the
linear encoder explains 30 % of the held-out variance of w in closed form.

Privacy: only the released vector reaches ``IdentityMapper`` in an anonymisation; the
attribute path (a 16/32 px thumbnail of the crop with its inner face blurred, through the
coarse and fine styles) is NOT covered by epsilon; what it leaks is measured
(``identitydp evaluate``, docs/MODEL_CARD.md).

Shapes: x_att (N, 3, S, S) in [-1, 1], S a multiple of 32 (256); identity (N, 128) in dlib's
scale; out (N, 3, 256, 256) in about [-1, 1].
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ..models import mobile_stylegan as prior_spec
from .bottleneck import IdentityBottleneck
from .mobile_stylegan import FacePrior

#: colour thumbnail side and luminance thumbnail side of ``attribute_features``
COLOUR_SIDE, LUMA_SIDE = 16, 32
N_ATTRIBUTE_FEATURES = 3 * COLOUR_SIDE ** 2 + LUMA_SIDE ** 2


def attribute_features(x_att: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) -> (N, 1792): area means of the crop at 16 x 16 (RGB) and of its
    luminance (channel mean) at 32 x 32. Low frequencies only: pose, face layout, hair,
    lighting and colour; S must be a multiple of 32 so the means are exact block means."""
    if x_att.dim() != 4 or x_att.shape[1] != 3 or x_att.shape[-1] != x_att.shape[-2] \
            or x_att.shape[-1] % LUMA_SIDE:
        raise ValueError(f"x_att must be (N, 3, S, S) with S a multiple of {LUMA_SIDE}, "
                         f"got {tuple(x_att.shape)}")
    colour = F.adaptive_avg_pool2d(x_att, COLOUR_SIDE).flatten(1)
    luma = F.adaptive_avg_pool2d(x_att.mean(dim=1, keepdim=True), LUMA_SIDE).flatten(1)
    return torch.cat([colour, luma], dim=1)


class LinearMap(nn.Module):
    """y = y_mean + gain ((x - x_mean) / x_std) B: a standardised linear map (ridge fit)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.register_buffer("x_mean", torch.zeros(d_in))
        self.register_buffer("x_std", torch.ones(d_in))
        self.register_buffer("y_mean", torch.zeros(d_out))
        self.register_buffer("gain", torch.ones(()))
        self.weight = nn.Parameter(torch.zeros(d_in, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.x_mean) / self.x_std
        return self.y_mean + self.gain * (z @ self.weight)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor, lam: float) -> None:
        """Ridge regression in float64: B = (Z^T Z + lam I)^-1 Z^T (y - mean y), Z the
        standardised x (lam in units of standardised features)."""
        x, y = x.double(), y.double()
        mx, sx, my = x.mean(0), x.std(0).clamp_min(1e-6), y.mean(0)
        z = (x - mx) / sx
        a = z.T @ z + lam * torch.eye(z.shape[1], dtype=z.dtype)
        b = torch.linalg.solve(a, z.T @ (y - my))
        for buf, v in ((self.x_mean, mx), (self.x_std, sx), (self.y_mean, my), (self.weight, b)):
            buf.copy_(v.to(buf.dtype))


class AttributeEncoder(nn.Module):
    """Degraded crop -> w (N, 512) of the prior: LinearMap of ``attribute_features``."""

    def __init__(self):
        super().__init__()
        self.map = LinearMap(N_ATTRIBUTE_FEATURES, prior_spec.STYLE_DIM)

    def forward(self, x_att: torch.Tensor) -> torch.Tensor:
        return self.map(attribute_features(x_att))


class IdentityMapper(nn.Module):
    """Identity vector (any norm) -> w (N, 512): LinearMap of the unit vector v / ||v||, kept
    inside the prior's typical set.

    A released vector at a low epsilon points in a direction no real face's descriptor has
    (the Laplace noise is isotropic, descriptors are not), and the linear map sends such a
    direction far outside the w's the prior draws well. So the map's deviation d = w - w_mean
    is measured in the prior's whitened W coordinates, c = d V diag(1 / sqrt(lambda))
    (V, lambda: eigenvectors and eigenvalues of the covariance of the prior's w, ``w_basis``,
    ``w_inv_scale``), each coordinate clipped to [-max_coord, max_coord] (the map's output
    lives in a 128-d subspace: a typical norm concentrated on a few directions is extreme
    along them), then scaled back onto ||c|| = ``max_norm`` when longer, and mapped back:
    w = w_mean + c' diag(sqrt(lambda)) V^T. Post-processing of the released vector alone: the
    DP guarantee is unchanged."""

    def __init__(self, identity_dim: int = 128):
        super().__init__()
        d = prior_spec.STYLE_DIM
        self.map = LinearMap(identity_dim, d)
        self.register_buffer("w_basis", torch.eye(d))
        self.register_buffer("w_inv_scale", torch.ones(d))
        self.register_buffer("max_norm", torch.tensor(1e6))          # no cap until set_typical_set
        self.register_buffer("max_coord", torch.tensor(1e6))

    def whitened(self, w: torch.Tensor) -> torch.Tensor:
        """c = (w - w_mean) V / sqrt(lambda), per row."""
        return ((w - self.map.y_mean) @ self.w_basis) * self.w_inv_scale

    def whitened_norm(self, w: torch.Tensor) -> torch.Tensor:
        return self.whitened(w).norm(dim=1)

    @torch.no_grad()
    def set_typical_set(self, w: torch.Tensor, quantile: float = 0.5, max_coord: float = 2.5) -> None:
        """The whitening from samples w (M, 512) of the prior, max_norm = that quantile of
        their own whitened norms, and the per-coordinate clip."""
        w = w.double()
        ev, basis = torch.linalg.eigh(torch.cov((w - w.mean(0)).T))
        self.w_basis.copy_(basis.float())
        self.w_inv_scale.copy_(ev.clamp_min(1e-10).rsqrt().float())
        self.max_norm.fill_(float(torch.quantile(self.whitened_norm(w.float()).double(), quantile)))
        self.max_coord.fill_(max_coord)

    def forward(self, identity: torch.Tensor) -> torch.Tensor:
        w = self.map(identity / identity.norm(dim=1, keepdim=True).clamp_min(1e-12))
        c = torch.maximum(torch.minimum(self.whitened(w), self.max_coord), -self.max_coord)
        c = c * (self.max_norm / c.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
        return self.map.y_mean + (c / self.w_inv_scale) @ self.w_basis.T


@dataclasses.dataclass(frozen=True)
class PriorMixConfig:
    """Shape of the model; stored in the weights' metadata."""
    name: str = "prior-256"
    crop_size: int = 256
    identity_dim: int = 128
    #: the prior's canvas (FFHQ alignment): the crop template's eye midpoint at this height
    eyes_y: float = 0.48
    #: prior blocks whose three styles come from the identity mapper: 16, 32 and 64 px.
    #: Measured (20 held-out people, epsilon 1, SFace verification to the original): blocks
    #: (2, 3) 0.90, (1, 2, 3) 0.725 at the AEI-Net paste ellipse (docs/MODEL_CARD_prior-256.md)
    id_blocks: tuple = (1, 2, 3)
    #: the paste-back ellipse's radii relative to the AEI-Net models' (pipeline/blend.py):
    #: wider covers the face outline, which carries identity (SFace verification 0.725 at
    #: 1.0, 0.40 at 1.12, 0.225 at 1.25) and replaces a band around the face (PSNR outside
    #: the AEI-Net ellipse 100, 39.4, 29 dB; halos show at 1.25)
    paste_scale: float = 1.12

    def id_style_indices(self) -> tuple:
        return tuple(prior_spec.style_index(b, k) for b in self.id_blocks
                     for k in ("up", "conv1", "conv2"))


class PriorMixGenerator(nn.Module):
    """The prior-256 generator (module docstring): ``forward(x_att, identity)``."""

    def __init__(self, config: PriorMixConfig | None = None, prior: FacePrior | None = None):
        super().__init__()
        self.config = config or PriorMixConfig()
        if self.config.crop_size != 256:
            raise ValueError(f"PriorMixGenerator renders 256 x 256 crops, got crop_size="
                             f"{self.config.crop_size}")
        self.prior = prior if prior is not None else FacePrior()
        self.prior.requires_grad_(False)
        # the public DP parameters (dp_center, dp_clip, dp_output_norm, input_std) live in an
        # IdentityBottleneck so pipeline/release.py serves every model alike; its projection is
        # not used by this model (the mapper maps the released vector)
        self.bottleneck = IdentityBottleneck((1,), self.config.identity_dim)
        self.attribute_encoder = AttributeEncoder()
        self.identity_mapper = IdentityMapper(self.config.identity_dim)
        mask = torch.zeros(prior_spec.N_STYLES, 1)
        mask[list(self.config.id_style_indices())] = 1.0
        self.register_buffer("identity_layers", mask)        # (23, 1): 1 = from w_id

    def mix(self, w_attr: torch.Tensor, w_id: torch.Tensor) -> torch.Tensor:
        """W+ (N, 23, 512) from two w's (N, 512): w_id on the identity layers, w_attr elsewhere."""
        w_attr, w_id = w_attr[:, None], w_id[:, None]
        return w_attr + self.identity_layers * (w_id - w_attr)

    def styles(self, x_att: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """W+ (N, 23, 512) of an attribute input and an identity vector (``mix``)."""
        return self.mix(self.attribute_encoder(x_att), self.identity_mapper(identity))

    def forward(self, x_att: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        if identity.dim() != 2 or identity.shape != (x_att.shape[0], self.config.identity_dim):
            raise ValueError(f"identity must be (N={x_att.shape[0]}, {self.config.identity_dim}), "
                             f"got {tuple(identity.shape)}")
        return self.prior.render256(self.styles(x_att, identity))
