"""y = G(E(x), B(v)): FaceShifter's AEI-Net (Li et al. 2019) in plain PyTorch, the oracle
for the engine and what training runs on.

* E, ``AttributeEncoder``: U-Net on the crop x (N, 3, S, S) in [-1, 1] -> one attribute
  map per generator level, coarse to fine (sizes and channels: AEINetConfig).
* B, ``IdentityBottleneck`` (reference/bottleneck.py): released identity v (N, 128) ->
  every AAD layer's (gamma_id, beta_id).
* G, ``AADGenerator``: learned start (C_0, S/2^L, S/2^L) -> one ``AADResBlock`` per level
  with bilinear x2 between levels -> tanh, (N, 3, S, S) in [-1, 1].

Every AAD layer uses the elementwise math of reference/aad.py exactly (instance_norm,
aad_blend_relu, upsample_bilinear2x), so the engine swaps in fused kernels with the same
weights. No transposed convolutions anywhere (checkerboards, DESIGN.md 7b): every
upsampling is bilinear x2 followed by a conv. Float32 by default; ``.double()`` runs it
in float64. Configs: identitydp_fast/models/config.py; weights: models/weights.py;
test: tests/test_aei_net.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.config import AEINetConfig, get_config
from .aad import aad_blend_relu, instance_norm, upsample_bilinear2x
from .bottleneck import IdentityBottleneck

IdPair = tuple[torch.Tensor, torch.Tensor]  # (gamma_id (N, C), beta_id (N, C))


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.InstanceNorm2d(channels, affine=True)


class _ConvNormAct(nn.Sequential):
    """leaky_relu(norm(conv(x))): (N, C_in, H, W) -> (N, C_out, H / stride, W / stride)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, norm: str, slope: float):
        super().__init__(nn.Conv2d(c_in, c_out, kernel, stride, padding=1, bias=False),
                         _norm(norm, c_out), nn.LeakyReLU(slope))


class _UpConv(nn.Module):
    """leaky_relu(norm(conv3x3(upsample_bilinear2x(x)))): (N, C_in, H, W) -> (N, C_out, 2H, 2W)."""

    def __init__(self, c_in: int, c_out: int, norm: str, slope: float):
        super().__init__()
        self.body = _ConvNormAct(c_in, c_out, 3, 1, norm, slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(upsample_bilinear2x(x))


class AttributeEncoder(nn.Module):
    """Multi-level U-Net attribute encoder.

    x (N, 3, S, S) -> [z_att_0, ..., z_att_L], z_att_i (N, A_i, S/2^(L-i), S/2^(L-i)) with
    A_i = config.attribute_channels()[i]:
      d_k = down_k(d_{k-1}), d_0 = x          (stride-2 conv + norm + LeakyReLU; k = 1..L)
      z_0 = d_L;  z_j = cat(up_j(z_{j-1}), d_{L-j})  (j = 1..L-1; up = bilinear x2 + conv3x3)
      z_L = upsample_bilinear2x(z_{L-1})      (FaceShifter's last level)
    """

    def __init__(self, config: AEINetConfig):
        super().__init__()
        c, L = config.encoder_channels, config.depth
        ins = (3,) + c[:-1]
        self.down = nn.ModuleList(
            _ConvNormAct(ins[k], c[k], config.down_kernel, 2, config.encoder_norm, config.leaky_slope)
            for k in range(L))
        att = config.attribute_channels()
        self.up = nn.ModuleList(
            _UpConv(att[j - 1], c[L - 1 - j], config.encoder_norm, config.leaky_slope)
            for j in range(1, L))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        d = [x]
        for down in self.down:
            d.append(down(d[-1]))                      # (N, c_k, S/2^k, S/2^k)
        L = len(self.down)
        z = [d[L]]                                     # level 0: (N, c_L, S/2^L, S/2^L)
        for j, up in enumerate(self.up, start=1):
            z.append(torch.cat([up(z[-1]), d[L - j]], dim=1))  # (N, 2 c_{L-j}, ...)
        z.append(upsample_bilinear2x(z[-1]))           # level L: full resolution
        return z


class AADLayer(nn.Module):
    """relu((1 - M) * A + M * I) on instance_norm(h) (reference/aad.py), FaceShifter's AAD.

    h (N, C, H, W); z_att (N, A, H, W); gamma_id, beta_id (N, C) from the bottleneck:
      h_hat = instance_norm(h)
      gamma_att, beta_att = split(conv_k(z_att))   one conv, k x k (k = 1 or 3), A -> 2C
      mask_logits = conv1x1(h_hat)                  C -> 1
      out = aad_blend_relu(h_hat, gamma_att, beta_att, gamma_id, beta_id, mask_logits)
    The gamma_att bias starts at 1 (identity-like modulation at initialisation).
    """

    def __init__(self, channels: int, att_channels: int, kernel: int):
        super().__init__()
        self.channels = channels
        self.att = nn.Conv2d(att_channels, 2 * channels, kernel, padding=kernel // 2)
        self.mask = nn.Conv2d(channels, 1, 1)
        with torch.no_grad():
            self.att.bias[:channels] = 1.0
            self.att.bias[channels:] = 0.0

    def forward(self, h: torch.Tensor, z_att: torch.Tensor, ids: IdPair,
                relu: bool = True) -> torch.Tensor:
        h_hat = instance_norm(h)
        gamma_att, beta_att = self.att(z_att).chunk(2, dim=1)   # (N, C, H, W) each
        mask_logits = self.mask(h_hat)                           # (N, 1, H, W)
        return aad_blend_relu(h_hat, gamma_att, beta_att, ids[0], ids[1], mask_logits, relu=relu)


class AADResBlock(nn.Module):
    """FaceShifter's AAD ResBlock: (N, C_in, H, W) -> (N, C_out, H, W).

      y = conv3x3(AAD2(conv3x3(AAD1(h))))       (AAD = AADLayer incl. ReLU; C_in -> C_in -> C_out)
      s = conv3x3(AAD3(h)) if C_in != C_out else h
      out = y + s
    ``num_aad`` layers (2 or 3) take ids[0], ids[1] (and ids[2] for the shortcut).
    """

    def __init__(self, c_in: int, c_out: int, att_channels: int, kernel: int):
        super().__init__()
        self.aad1 = AADLayer(c_in, att_channels, kernel)
        self.conv1 = nn.Conv2d(c_in, c_in, 3, padding=1)
        self.aad2 = AADLayer(c_in, att_channels, kernel)
        self.conv2 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.learned_shortcut = c_in != c_out
        if self.learned_shortcut:
            self.aad3 = AADLayer(c_in, att_channels, kernel)
            self.conv3 = nn.Conv2d(c_in, c_out, 3, padding=1)

    def id_channels(self) -> list[int]:
        """Channels of this block's AAD layers, in the order they take identity pairs."""
        c = self.aad1.channels
        return [c, c, c] if self.learned_shortcut else [c, c]

    def forward(self, h: torch.Tensor, z_att: torch.Tensor, ids: list[IdPair]) -> torch.Tensor:
        y = self.conv1(self.aad1(h, z_att, ids[0]))
        y = self.conv2(self.aad2(y, z_att, ids[1]))
        s = self.conv3(self.aad3(h, z_att, ids[2])) if self.learned_shortcut else h
        return y + s


class AADGenerator(nn.Module):
    """Attribute maps + identity pairs -> (N, 3, S, S) in [-1, 1].

      h_0 = start (learned, (1, C_0, S/2^L, S/2^L), broadcast over N)
      h_{i+1} = upsample_bilinear2x(block_i(h_i, z_att_i, ids_i))    i < L
      y = tanh(block_L(h_L, z_att_L, ids_L))                          C_L -> 3
    """

    def __init__(self, config: AEINetConfig):
        super().__init__()
        g, att, k = config.generator_channels, config.attribute_channels(), config.modulation_kernels
        outs = g[1:] + (3,)
        s = config.start_size
        self.start = nn.Parameter(torch.randn(1, g[0], s, s))
        self.blocks = nn.ModuleList(AADResBlock(g[i], outs[i], att[i], k[i]) for i in range(len(g)))

    def id_channels(self) -> list[int]:
        """C of every AAD layer, in the order the bottleneck lays out its pairs."""
        return [c for b in self.blocks for c in b.id_channels()]

    def forward(self, z_att: list[torch.Tensor], ids: list[IdPair]) -> torch.Tensor:
        if len(z_att) != len(self.blocks):
            raise ValueError(f"need {len(self.blocks)} attribute maps, got {len(z_att)}")
        n = z_att[0].shape[0]
        h = self.start.expand(n, -1, -1, -1)
        pos = 0
        for i, block in enumerate(self.blocks):
            k = len(block.id_channels())
            h = block(h, z_att[i], ids[pos:pos + k])
            pos += k
            if i + 1 < len(self.blocks):
                h = upsample_bilinear2x(h)
        return torch.tanh(h)


class AEINet(nn.Module):
    """The anonymisation network: crop (N, 3, S, S) in [-1, 1] + released identity
    (N, 128) -> new crop (N, 3, S, S) in [-1, 1].

    Args:
        config: an AEINetConfig or a registered name ('fast-128' default, 'paper-256').

    Parts: ``encoder`` (AttributeEncoder), ``bottleneck`` (IdentityBottleneck, with the DP
    parameters as buffers; pipeline/release.py privatises with them), ``generator``
    (AADGenerator). Only a released (privatised) vector belongs in ``identity`` when anonymising; the
    attribute path sees the crop and is not covered by the DP guarantee.
    """

    def __init__(self, config: AEINetConfig | str = "fast-128"):
        super().__init__()
        self.config = get_config(config) if isinstance(config, str) else config
        self.encoder = AttributeEncoder(self.config)
        self.generator = AADGenerator(self.config)
        self.bottleneck = IdentityBottleneck(self.generator.id_channels(), self.config.identity_dim)

    def attributes(self, crop: torch.Tensor) -> list[torch.Tensor]:
        """crop (N, 3, S, S) -> attribute maps, coarse to fine."""
        s = self.config.crop_size
        if crop.dim() != 4 or tuple(crop.shape[1:]) != (3, s, s):
            raise ValueError(f"crop must have shape (N, 3, {s}, {s}) for config "
                             f"{self.config.name!r}, got {tuple(crop.shape)}")
        return self.encoder(crop)

    def forward(self, crop: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """crop (N, 3, S, S) in [-1, 1], identity (N, 128) -> (N, 3, S, S) in [-1, 1]."""
        if identity.dim() != 2 or identity.shape[0] != crop.shape[0]:
            raise ValueError(f"identity must be (N, {self.config.identity_dim}) with N = "
                             f"{crop.shape[0]} (the crops' batch), got {tuple(identity.shape)}")
        return self.generator(self.attributes(crop), self.bottleneck(identity))


class PatchDiscriminator(nn.Module):
    """Multi-scale PatchGAN (pix2pixHD-style), for training the generator.

    x (N, 3, S, S) -> list of ``scales`` logit maps; scale s sees x downsampled s times
    by 2 (avg pool 3x3/2); each is conv4x4/2 (c) -> LeakyReLU -> [conv4x4/2 (2c) -> IN -> LeakyReLU] x
    (layers - 1) -> conv3x3 -> 1 channel. No spectral norm (DESIGN.md 7b: a too-weak D
    never left chance).
    """

    def __init__(self, channels: int = 32, layers: int = 3, scales: int = 2, slope: float = 0.2):
        super().__init__()
        nets = []
        for _ in range(scales):
            mods: list[nn.Module] = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(slope)]
            c = channels
            for _ in range(layers - 1):
                mods += [nn.Conv2d(c, 2 * c, 4, 2, 1), nn.InstanceNorm2d(2 * c, affine=True),
                         nn.LeakyReLU(slope)]
                c *= 2
            mods.append(nn.Conv2d(c, 1, 3, 1, 1))
            nets.append(nn.Sequential(*mods))
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, net in enumerate(self.nets):
            out.append(net(x))
            if i + 1 < len(self.nets):
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        return out
