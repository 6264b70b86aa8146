"""The prior-256 generator on the engine: the reference's math (reference/prior_mix.py and
reference/mobile_stylegan.py), channels-last, with the fused prior ops (ops/prior.py)
between torch GEMMs.

Per face batch:

1. styles: the attribute encoder and the identity mapper (reference, small linear maps)
   give W+ (N, 23, 512); every modulated layer's style s_l = (w_l M_l^T + m_l) scale_l
   comes from ONE batched GEMM over the 19 layers the 256 render uses (weights stacked
   and zero-padded to 512 rows once, at construction);
2. stem: the 4x4 full 3x3 conv (reference; 16 pixels);
3. blocks 0-4 (8 -> 128 px): ``up`` = modulated inverse Haar (one pass); each conv =
   modulated depthwise 3x3 (the style folded into the per-sample taps) -> pointwise 1x1
   as a GEMM on the NHWC view -> bias + noise + leaky-ReLU epilogue in place;
4. the 256 head: its 1x1 to-image layers as per-sample GEMMs with the style folded into
   the weights (N x 12 x C), the inverse Haar of their bands, and its depthwise-separable
   layer as in 3.

Equivalence with PriorMixGenerator.forward: tests/test_prior_engine.py (float32 rounding
only). Benchmark: ``identitydp bench --config prior-256``, bench/face_stages.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import mobile_stylegan as spec
from ..ops import library as prior_ops  # torch.library ops: traceable by torch.compile
from ..reference.prior_mix import PriorMixGenerator

BACKENDS = ("cpu", "cuda", "triton")


class EnginePriorMix(nn.Module):
    """``forward(x_att, identity)`` like PriorMixGenerator's, on ``backend``."""

    def __init__(self, generator: PriorMixGenerator, backend: str):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.generator = generator
        prior = generator.prior
        syn, head = prior.synthesis, prior.head256
        # the modulated layers of the 256 render, with the W+ index each reads
        layers = [(syn.stem, 0)]
        for k in range(prior.HEAD256_BLOCKS):
            b = syn.blocks[k]
            layers += [(b.up, spec.style_index(k, "up")), (b.conv1, spec.style_index(k, "conv1")),
                       (b.conv2, spec.style_index(k, "conv2"))]
        head_layers = [head.skip, *head.convs, head.to_img]
        layers += [(m, spec.N_STYLES - 1) for m in head_layers]
        self._layers = [m for m, _ in layers]
        self.register_buffer("_w_index", torch.tensor([i for _, i in layers]), persistent=False)
        width = max(m.mod_weight.shape[0] for m in self._layers)
        mw = torch.zeros(len(layers), width, spec.STYLE_DIM)
        mb = torch.zeros(len(layers), width)
        for j, m in enumerate(self._layers):
            c = m.mod_weight.shape[0]
            mw[j, :c] = m.mod_weight.detach() * m.mod_scale
            mb[j, :c] = m.mod_bias.detach() * m.mod_scale
        # (L, 512, width): s = w @ W + b for all layers at once (scale folded in)
        self.register_buffer("_mod_w", mw.transpose(1, 2).contiguous(), persistent=False)
        self.register_buffer("_mod_b", mb[:, None], persistent=False)
        self._channels = [m.mod_weight.shape[0] for m in self._layers]

    def _styles(self, wplus: torch.Tensor) -> list[torch.Tensor]:
        """One batched GEMM: (L, N, 512) @ (L, 512, width) -> the L styles (N, C_l)."""
        w = wplus[:, self._w_index].transpose(0, 1)                  # (L, N, 512)
        s = torch.baddbmm(self._mod_b, w, self._mod_w)               # (L, N, width)
        return [s[j, :, :c] for j, c in enumerate(self._channels)]

    def _dwsep(self, x: torch.Tensor, style: torch.Tensor, layer, noise: torch.Tensor | None):
        """lrelu(pw(dw(x * s)) + noise + bias): fused dw, GEMM, fused epilogue; NHWC memory."""
        b = self.backend
        h = prior_ops.prior_dwconv3x3(x, style, layer.dw_weight[:, 0], b)       # channels_last
        n, c, hh, ww = h.shape
        pw = layer.pw_weight[:, :, 0, 0]                                        # (C_out, C_in)
        y = h.permute(0, 2, 3, 1).reshape(-1, c) @ pw.t()                       # (N H W, C_out)
        y = y.view(n, hh, ww, -1).permute(0, 3, 1, 2)                           # logical NCHW, NHWC memory
        prior_ops.prior_epilogue_(y, layer.bias, noise, b)                      # in place
        return y

    def _to_image(self, x: torch.Tensor, style: torch.Tensor, layer) -> torch.Tensor:
        """inverse_haar(conv1x1(x * s) + bias) with s folded into per-sample weights."""
        n, c, hh, ww = x.shape
        wn = layer.weight[None, :, :, 0, 0] * style[:, None, :]                # (N, 12, C)
        bands = torch.baddbmm(layer.bias[None, None], x.permute(0, 2, 3, 1).reshape(n, hh * ww, c),
                              wn.transpose(1, 2))                               # (N, H W, 12)
        bands = bands.view(n, hh, ww, 12).permute(0, 3, 1, 2)
        ones = torch.ones(n, 12, dtype=x.dtype, device=x.device)
        return prior_ops.prior_inverse_haar(bands, ones, self.backend)

    def render256(self, wplus: torch.Tensor) -> torch.Tensor:
        """W+ (N, 23, 512) -> (N, 3, 256, 256), as FacePrior.render256."""
        prior = self.generator.prior
        syn, head = prior.synthesis, prior.head256
        styles = iter(self._styles(wplus))
        stem = syn.stem
        x = syn.const.expand(wplus.shape[0], -1, -1, -1) * next(styles)[:, :, None, None]
        x = F.leaky_relu(F.conv2d(x, stem.weight, padding=1) + stem.noise + stem.bias[:, None, None], 0.2)
        x = x.contiguous(memory_format=torch.channels_last)
        for k in range(prior.HEAD256_BLOCKS):
            block = syn.blocks[k]
            x = prior_ops.prior_inverse_haar(x, next(styles), self.backend)
            x = self._dwsep(x, next(styles), block.conv1, block.conv1.noise[0, 0])
            x = self._dwsep(x, next(styles), block.conv2, block.conv2.noise[0, 0])
        s_skip = next(styles)
        h = x
        for conv in head.convs:
            h = self._dwsep(h, next(styles), conv, None)
        out = self._to_image(x, s_skip, head.skip) + self._to_image(h, next(styles), head.to_img)
        return out.contiguous()

    def forward(self, x_att: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        g = self.generator
        if identity.dim() != 2 or identity.shape != (x_att.shape[0], g.config.identity_dim):
            raise ValueError(f"identity must be (N={x_att.shape[0]}, {g.config.identity_dim}), "
                             f"got {tuple(identity.shape)}")
        return self.render256(g.styles(x_att, identity))

    generate = forward
