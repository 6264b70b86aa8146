"""img = inverse_haar(to_img(blocks(stem(const), W+))): the MobileStyleGAN face prior in plain
PyTorch (the oracle and the training path; fp64-capable).

Shapes: z, w (N, 512); W+ (N, 23, 512) (one w per modulated layer: index 0 stem, 1 + 3k /
2 + 3k / 3 + 3k block k's up / conv1 / conv2, 22 to_img; models/mobile_stylegan.py
``style_index``); images (N, 3, S, S) RGB in about [-1, 1].

Every layer is a plain function of (x, its w), so a generator can run the prior level by
level and inject its own features between levels (``FacePrior.stem`` / ``.blocks[k]``).
Weights: identitydp_fast/models/mobile_stylegan.py (read from the random-face IR files,
stored as safetensors). Test against OpenVINO: tests/test_mobile_stylegan.py.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..models import mobile_stylegan as spec

_SQRT2 = math.sqrt(2.0)


def inverse_haar(x: torch.Tensor) -> torch.Tensor:
    """One level of the inverse Haar wavelet transform, channel-first bands.

    x: (N, 4C, H, W) laid out [LL (C) | high bands (3C), band j of channel c at 3c + j]
    -> (N, C, 2H, 2W) with out[2i+a, 2j+b] = (LL + s_a B0 + s_b B1 + s_a s_b B2) / 2,
    s_0 = +1, s_1 = -1: exactly the separable transposed-conv synthesis filter bank
    (taps (1, 1)/sqrt(2) and (1, -1)/sqrt(2)) of the exported graph.
    """
    n, c4, h, w = x.shape
    c = c4 // 4
    ll = x[:, :c]
    b0, b1, b2 = x[:, c:].reshape(n, c, 3, h, w).unbind(2)
    p, q = ll + b0, ll - b0  # rows a = 0 / a = 1
    r, s = b1 + b2, b1 - b2
    # sub-pixel (a, b) in pixel_shuffle order 2a + b
    out = torch.stack(((p + r), (p - r), (q + s), (q - s)), dim=2) * 0.5
    return F.pixel_shuffle(out.reshape(n, 4 * c, h, w), 2)


class Modulation(nn.Module):
    """s = (w M^T + m) * scale: the per-input-channel style of one layer."""

    def __init__(self, channels: int):
        super().__init__()
        self.mod_weight = nn.Parameter(torch.zeros(channels, spec.STYLE_DIM))
        self.mod_bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("mod_scale", torch.ones(()))

    def style(self, w: torch.Tensor) -> torch.Tensor:
        return F.linear(w, self.mod_weight, self.mod_bias) * self.mod_scale


class ModulatedConv(Modulation):
    """lrelu_0.2(conv(x * s) + noise + bias): depthwise 3x3 + pointwise 1x1 (``depthwise``) or
    one full 3x3 conv (the stem). noise is the fixed (1, 1, H, W) map of the export."""

    def __init__(self, c_in: int, c_out: int, size: int, depthwise: bool):
        super().__init__(c_in)
        self.depthwise = depthwise
        if depthwise:
            self.dw_weight = nn.Parameter(torch.zeros(c_in, 1, 3, 3))
            self.pw_weight = nn.Parameter(torch.zeros(c_out, c_in, 1, 1))
        else:
            self.weight = nn.Parameter(torch.zeros(c_out, c_in, 3, 3))
        self.register_buffer("noise", torch.zeros(1, 1, size, size))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = x * self.style(w)[:, :, None, None]
        if self.depthwise:
            x = F.conv2d(F.conv2d(x, self.dw_weight, padding=1, groups=x.shape[1]), self.pw_weight)
        else:
            x = F.conv2d(x, self.weight, padding=1)
        return F.leaky_relu(x + self.noise + self.bias[:, None, None], 0.2)


class WaveletUpsample(Modulation):
    """inverse_haar(x * s): C channels at H -> C/4 channels at 2H."""

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return inverse_haar(x * self.style(w)[:, :, None, None])


class SynthesisBlock(nn.Module):
    """One level: upsample (C_in -> C_in/4 at 2x), then two modulated depthwise-separable convs."""

    def __init__(self, c_in: int, c_out: int, size: int):
        super().__init__()
        self.up = WaveletUpsample(c_in)
        self.conv1 = ModulatedConv(c_in // 4, c_out, size, depthwise=True)
        self.conv2 = ModulatedConv(c_out, c_out, size, depthwise=True)

    def forward(self, x: torch.Tensor, w3: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, H, H), w3 (N, 3, 512) -> (N, C_out, 2H, 2H)."""
        return self.conv2(self.conv1(self.up(x, w3[:, 0]), w3[:, 1]), w3[:, 2])


class WaveletToImage(Modulation):
    """inverse_haar(conv1x1(x * s) + bias): C channels at H -> RGB at 2H."""

    def __init__(self, c_in: int):
        super().__init__(c_in)
        self.weight = nn.Parameter(torch.zeros(12, c_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(12))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x * self.style(w)[:, :, None, None], self.weight) + self.bias[:, None, None]
        return inverse_haar(x)


class HeadConv(Modulation):
    """lrelu_0.2(pw1x1(dw3x3(x * s)) + bias): ModulatedConv(depthwise=True) without the fixed
    noise map (so it runs at any size and on crops); zero padding, so a (H + 2) crop of the
    input gives the exact inner H x H of the full-size output."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in)
        self.dw_weight = nn.Parameter(torch.zeros(c_in, 1, 3, 3))
        self.pw_weight = nn.Parameter(torch.zeros(c_out, c_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = x * self.style(w)[:, :, None, None]
        x = F.conv2d(F.conv2d(x, self.dw_weight, padding=1, groups=x.shape[1]), self.pw_weight)
        return F.leaky_relu(x + self.bias[:, None, None], 0.2)


class Head256(nn.Module):
    """The 256 head: skip(x) + to_img(convs(x)), features (N, C, H, H) -> RGB (N, 3, 2H, 2H).

    ``skip`` is the pointwise WaveletToImage(C) (the first, 1x1 head); ``convs`` are
    ``layers`` HeadConv 3x3 depthwise-separable layers C -> ``c_mid`` and ``to_img`` a
    WaveletToImage(c_mid) adding their wavelet bands. All zeros (the default) the refining
    branch outputs exactly 0, so a file with only the 1x1 head loads into ``skip`` unchanged
    (``prior_from_state``). Receptive field: ``layers`` feature pixels each side (the crops of
    tools/distil_head256.py take that halo). All layers read the same w (W+[22])."""

    def __init__(self, c_in: int, c_mid: int = 64, layers: int = 1):
        super().__init__()
        self.skip = WaveletToImage(c_in)
        self.convs = nn.ModuleList(HeadConv(c_in if i == 0 else c_mid, c_mid) for i in range(layers))
        self.to_img = WaveletToImage(c_mid)

    @property
    def halo(self) -> int:
        return len(self.convs)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, H) features, w (N, 512) -> (N, 3, 2H, 2H)."""
        h = x
        for conv in self.convs:
            h = conv(h, w)
        return self.skip(x, w) + self.to_img(h, w)


class MappingNetwork(nn.Module):
    """w = 8 x [lrelu_0.2(h W^T + b) * sqrt(2)] of h = z / sqrt(mean(z^2) + 1e-8)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.ParameterList(nn.Parameter(torch.zeros(spec.STYLE_DIM, spec.STYLE_DIM))
                                       for _ in range(spec.MAPPING_LAYERS))
        self.bias = nn.ParameterList(nn.Parameter(torch.zeros(spec.STYLE_DIM))
                                     for _ in range(spec.MAPPING_LAYERS))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        for weight, bias in zip(self.weight, self.bias):
            h = F.leaky_relu(F.linear(h, weight, bias), 0.2) * _SQRT2
        return h


class Synthesis(nn.Module):
    def __init__(self):
        super().__init__()
        ch = spec.CHANNELS
        self.register_buffer("const", torch.zeros(1, ch[0], 4, 4))
        self.stem = ModulatedConv(ch[0], ch[0], 4, depthwise=False)
        self.blocks = nn.ModuleList(SynthesisBlock(ch[k], ch[k + 1], 8 << k) for k in range(spec.N_BLOCKS))
        self.to_img = WaveletToImage(ch[-1])

    def forward(self, wplus: torch.Tensor, n_blocks: int | None = None) -> torch.Tensor:
        """W+ (N, 23, 512) -> (N, 3, 1024, 1024); with ``n_blocks`` < 7 the features after that
        many blocks ((N, CHANNELS[n], 4 * 2^n, ..))."""
        x = self.stem(self.const.expand(wplus.shape[0], -1, -1, -1), wplus[:, 0])
        stop = spec.N_BLOCKS if n_blocks is None else n_blocks
        for k in range(stop):
            x = self.blocks[k](x, wplus[:, 1 + 3 * k: 4 + 3 * k])
        return self.to_img(x, wplus[:, -1]) if n_blocks is None else x


class FacePrior(nn.Module):
    """The frozen MobileStyleGAN prior: ``mapping`` (z -> w), ``synthesis`` (W+ -> 1024 image),
    ``head256`` (our wavelet head on the 128 px features -> 256 image, distilled against the
    area-downsampled 1024 output: tools/distil_head256.py) and ``w_avg`` (the mean w of 4096
    seeded samples, for truncation)."""

    #: blocks run before the 256 head: features (N, 256, 128, 128)
    HEAD256_BLOCKS = 5
    #: the 256 head's refining branch (Head256): layers x 3x3 depthwise-separable, c_mid channels
    HEAD256_MID = 64
    HEAD256_LAYERS = 1

    def __init__(self):
        super().__init__()
        self.mapping = MappingNetwork()
        self.synthesis = Synthesis()
        self.head256 = Head256(spec.CHANNELS[self.HEAD256_BLOCKS], self.HEAD256_MID, self.HEAD256_LAYERS)
        self.register_buffer("w_avg", torch.zeros(spec.STYLE_DIM))

    def render256(self, w: torch.Tensor) -> torch.Tensor:
        """w or W+ -> (N, 3, 256, 256): blocks 0..4, then the 256 head (reads W+[22], the
        to_img style). Costs ~1/20 of the 1024 render."""
        if not getattr(self, "has_head256", True):
            raise RuntimeError("this face-prior file has no 256 head (tools/distil_head256.py trains it)")
        wp = self.broadcast(w)
        return self.head256(self.synthesis(wp, self.HEAD256_BLOCKS), wp[:, -1])

    @staticmethod
    def broadcast(w: torch.Tensor) -> torch.Tensor:
        """(N, 512) -> (N, 23, 512); W+ passes through (shape-checked)."""
        if w.ndim == 2 and w.shape[1] == spec.STYLE_DIM:
            return w[:, None].expand(-1, spec.N_STYLES, -1)
        if w.ndim == 3 and w.shape[1:] == (spec.N_STYLES, spec.STYLE_DIM):
            return w
        raise ValueError(f"w must be (N, {spec.STYLE_DIM}) or W+ (N, {spec.N_STYLES}, {spec.STYLE_DIM}), "
                         f"got {tuple(w.shape)}")

    def truncate(self, w: torch.Tensor, psi: float) -> torch.Tensor:
        """w_avg + psi (w - w_avg): psi < 1 trades diversity for typical, cleaner faces."""
        return self.w_avg + psi * (w - self.w_avg)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.synthesis(self.broadcast(w))


def load_prior(path: str | Path | None = None, dtype: torch.dtype = torch.float32) -> FacePrior:
    """The packaged (or given) face-prior weights in a frozen FacePrior (eval, no grad)."""
    state, _ = spec.read_prior_file(path or spec.default_prior_path())
    prior = prior_from_state(state)
    return prior.to(dtype)


def prior_from_state(state: dict, with_w_avg: bool = True) -> FacePrior:
    """A frozen FacePrior from a state dict (``with_w_avg=False``: the raw IR weights, w_avg
    left at zero until the converter computes it)."""
    prior = FacePrior()
    own = prior.state_dict()
    prior.has_head256 = any(k.startswith("head256.") for k in state)
    if "head256.weight" in state:  # the first, 1x1-only head: it is Head256.skip, the rest zeros
        state = {("head256.skip." + k[8:] if k.startswith("head256.") else k): v for k, v in state.items()}
        state.update({k: v for k, v in prior.state_dict().items()
                      if k.startswith("head256.") and not k.startswith("head256.skip.")})
    # raw IR weights have no w_avg; a file converted before distillation has no head yet
    own = {k: v for k, v in own.items() if (with_w_avg or k != "w_avg")
           and (prior.has_head256 or not k.startswith("head256."))}
    state = {k: torch.as_tensor(v) for k, v in state.items()}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shaped = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shaped:
        raise ValueError(f"face-prior weights do not fit FacePrior: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, mis-shaped {shaped[:5]}")
    prior.load_state_dict({k: state[k] for k in own}, strict=False)
    prior.requires_grad_(False)
    return prior.eval()
