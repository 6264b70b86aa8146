"""new crop = prior(W+ = [attribute styles | identity styles], AAD(attribute features)): the
IdentityDP generator on the frozen MobileStyleGAN prior (reference/mobile_stylegan.py).

IdentityDP's three stages stay intact:

1. identity: the dlib descriptor v (N, 128), released by ``bottleneck`` (the unchanged
   epsilon-IdentityDP ``IdentityBottleneck``: public centre, L1 clip, typical-identity
   post-processing) and whitened, z = (v r / ||v|| - mu) / std;
   attributes: ``AttributeEncoder`` on the aligned 256 crop with its inner face degraded
   (pipeline attributes stage), giving feature maps at 4..128 px and a style vector;
2. ``IdentityMapper``: z -> the styles of the prior's identity-carrying layers
   (``ID_BLOCKS``: blocks 2 and 3, 32 and 64 px: style mixing there swaps the person and keeps
   pose, hair and background, DESIGN.md 9); every other W+ layer comes from the attribute
   encoder's style vector;
3. the frozen prior renders W+ level by level; after blocks ``AAD_BLOCKS`` an ``AADInjection``
   (FaceShifter's AAD with the prior's identity-styled activation h as the identity branch)
   blends attribute-modulated activations in through a learned mask:

       h' = (1 - M) * A + M * h,  A = mu_h + sigma_h * ((1 + gamma(f)) * norm(h) + beta(f)),
       M = sigmoid(conv1x1(norm(h))),

   with norm the instance norm, f the attribute features at h's resolution; gamma and beta
   start at zero, so the untrained generator is the prior itself. The 256 head
   (``FacePrior.head256``) renders the crop.

Shapes: attr (N, 3, 256, 256) in [-1, 1]; identity (N, 128) (dlib scale); out (N, 3, 256, 256).
Only the released identity vector may reach ``forward`` in an anonymisation: the epsilon
guarantee covers the identity path, not the attribute path (measured instead).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ..models import mobile_stylegan as prior_spec
from .bottleneck import IdentityBottleneck
from .mobile_stylegan import FacePrior


@dataclasses.dataclass(frozen=True)
class PriorAADConfig:
    """Shape of the generator; stored in the weights' metadata."""
    name: str = "prior-256"
    size: int = 256
    #: encoder channels at 128, 64, 32, 16, 8, 4 px
    enc_channels: tuple = (32, 64, 128, 256, 256, 256)
    #: prior blocks after which attribute features are injected (outputs at 8, 16, 32, 64 px)
    aad_blocks: tuple = (0, 1, 2, 3)
    #: prior blocks whose three styles come from the identity mapper
    id_blocks: tuple = (2, 3)
    mapper_hidden: int = 512
    mapper_layers: int = 4
    identity_dim: int = 128

    def id_style_indices(self) -> tuple:
        return tuple(prior_spec.style_index(b, k) for b in self.id_blocks for k in ("up", "conv1", "conv2"))


class AttributeEncoder(nn.Module):
    """Degraded crop (N, 3, 256, 256) -> feature maps {128: .., 64: .., ..., 4: ..} and a style
    vector (N, 512). Strided 3x3 convs with leaky ReLU; no normalisation (features keep the
    image's local contrast for the AAD)."""

    def __init__(self, channels: tuple):
        super().__init__()
        layers, c_in = [], 3
        for c in channels:
            layers.append(nn.Sequential(nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                        nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.2)))
            c_in = c
        self.levels = nn.ModuleList(layers)
        # 1x1 squeeze before the flatten keeps the 4x4 layout (pose) at a tenth of the weights
        self.to_style = nn.Sequential(nn.Conv2d(c_in, 64, 1), nn.LeakyReLU(0.2), nn.Flatten(),
                                      nn.Linear(64 * 16, prior_spec.STYLE_DIM),
                                      nn.LeakyReLU(0.2), nn.Linear(prior_spec.STYLE_DIM, prior_spec.STYLE_DIM))

    def forward(self, x: torch.Tensor) -> tuple[dict, torch.Tensor]:
        feats = {}
        for layer in self.levels:
            x = layer(x)
            feats[x.shape[-1]] = x
        return feats, self.to_style(x)


class IdentityMapper(nn.Module):
    """Whitened identity z (N, 128) -> (N, len(indices), 512) style offsets for the identity
    layers (an MLP; one output head per layer)."""

    def __init__(self, cfg: PriorAADConfig):
        super().__init__()
        n = len(cfg.id_style_indices())
        layers, d = [], cfg.identity_dim
        for _ in range(cfg.mapper_layers):
            layers += [nn.Linear(d, cfg.mapper_hidden), nn.LeakyReLU(0.2)]
            d = cfg.mapper_hidden
        self.mlp = nn.Sequential(*layers)
        self.heads = nn.Linear(d, n * prior_spec.STYLE_DIM)
        self.n = n

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.heads(self.mlp(z)).view(z.shape[0], self.n, prior_spec.STYLE_DIM)


class AADInjection(nn.Module):
    """h' = (1 - M) A + M h (see the module docstring); 1x1 convs keep it cheap and small."""

    def __init__(self, c_h: int, c_f: int, size: int):
        super().__init__()
        self.gamma_beta = nn.Conv2d(c_f, 2 * c_h, 1)
        self.mask = nn.Conv2d(c_h, 1, 1)
        nn.init.zeros_(self.gamma_beta.weight)
        nn.init.zeros_(self.gamma_beta.bias)

    def forward(self, h: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        mu = h.mean((2, 3), keepdim=True)
        sigma = h.var((2, 3), keepdim=True, unbiased=False).add(1e-5).sqrt()
        hn = (h - mu) / sigma
        gamma, beta = self.gamma_beta(f).chunk(2, dim=1)
        a = mu + sigma * ((1 + gamma) * hn + beta)
        m = torch.sigmoid(self.mask(hn))
        return (1 - m) * a + m * h


class PriorAADGenerator(nn.Module):
    """The whole generator; ``prior`` is frozen (no gradients, not in ``trainable()``)."""

    def __init__(self, cfg: PriorAADConfig, prior: FacePrior):
        super().__init__()
        self.cfg = cfg
        self.prior = prior.requires_grad_(False).eval()
        self.encoder = AttributeEncoder(cfg.enc_channels)
        self.bottleneck = IdentityBottleneck((cfg.identity_dim // 2,), cfg.identity_dim)
        self.bottleneck.proj.requires_grad_(False)  # DP parameters and whitening only; the mapper maps
        self.mapper = IdentityMapper(cfg)
        # learned per-layer offsets of the attribute styles around the encoder's w
        self.attr_layer_offset = nn.Parameter(torch.zeros(prior_spec.N_STYLES, prior_spec.STYLE_DIM))
        size_of = {b: 8 << b for b in range(prior_spec.N_BLOCKS)}
        enc_c = dict(zip((128, 64, 32, 16, 8, 4), cfg.enc_channels))
        self.aad = nn.ModuleDict({str(b): AADInjection(prior_spec.CHANNELS[b + 1], enc_c[size_of[b]], size_of[b])
                                  for b in cfg.aad_blocks})
        self.register_buffer("id_index", torch.tensor(cfg.id_style_indices()))

    def trainable(self):
        return [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith("prior.")]

    def train(self, mode: bool = True):
        super().train(mode)
        self.prior.eval()
        return self

    def styles(self, feats_style: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """W+ (N, 23, 512): w_avg + encoder style + per-layer offset, identity layers replaced by
        w_avg + mapper(whitened identity)."""
        w_avg = self.prior.w_avg
        wp = (w_avg + feats_style)[:, None] + self.attr_layer_offset
        w_id = w_avg + self.mapper(self.bottleneck.whiten(identity))
        return wp.index_copy(1, self.id_index, w_id)

    def forward(self, attr: torch.Tensor, identity: torch.Tensor, return_styles: bool = False):
        if attr.dim() != 4 or attr.shape[1:] != (3, self.cfg.size, self.cfg.size):
            raise ValueError(f"attr must be (N, 3, {self.cfg.size}, {self.cfg.size}), got {tuple(attr.shape)}")
        if identity.shape != (attr.shape[0], self.cfg.identity_dim):
            raise ValueError(f"identity must be ({attr.shape[0]}, {self.cfg.identity_dim}), got {tuple(identity.shape)}")
        feats, style = self.encoder(attr)
        wp = self.styles(style, identity)
        syn = self.prior.synthesis
        x = syn.stem(syn.const.expand(attr.shape[0], -1, -1, -1), wp[:, 0])
        for b in range(self.prior.HEAD256_BLOCKS):
            x = syn.blocks[b](x, wp[:, 1 + 3 * b: 4 + 3 * b])
            if str(b) in self.aad:
                x = self.aad[str(b)](x, feats[x.shape[-1]])
        out = self.prior.head256(x, wp[:, -1])
        return (out, wp) if return_styles else out
