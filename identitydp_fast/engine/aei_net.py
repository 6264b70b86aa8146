"""The AEI-Net generator for inference: the reference model's function
(identitydp_fast/reference/aei_net.py), restructured for speed.

* encoder: BatchNorm (eval statistics) folded into the convolution before it;
* every AAD ResBlock: the two or three attribute-modulation convolutions read the same
  attribute map, so they run as ONE convolution with concatenated filters; AAD1 and the
  shortcut's AAD3 normalise the same input, so one instance norm and ONE mask
  convolution (two output channels) serve both;
* the AAD math runs as fused kernels (identitydp_fast/ops/aad.py): instance-norm
  statistics + normalisation in one pass, then sigmoid + both modulations + blend +
  ReLU in one elementwise pass; bilinear x2 upsampling is a fused kernel too;
* identity: the bottleneck's whitening + ONE GEMM give every layer's (gamma_id, beta_id);
* activations stay channels-last (convolutions go to oneDNN / cuDNN).

Half precision (``dtype=torch.float16`` or ``torch.bfloat16``, GPU, backend 'triton'):
convolutions run in that dtype (cuDNN), the fused Triton kernels store it but compute in
float32 (instance-norm statistics in float64), the identity GEMM stays float32, and the
output is returned as float32. The C++/CUDA kernels are float32-only, so half precision
is refused for them by name. Bounds against the float32 reference:
tests/test_aei_net_engine.py.

``EngineAEINet(reference_model, backend, dtype)`` copies the weights of an ``AEINet`` in
eval mode; ``forward(crop, identity)`` takes the released identity vector (after
epsilon-IdentityDP) like the reference. Equivalence: tests/test_aei_net_engine.py.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import library as aad_ops  # torch.library ops: traceable by torch.compile
from ..reference.aei_net import AADResBlock, AEINet, _ConvNormAct


#: dtype -> the backends that run it (the Triton kernels take half storage; C++/CUDA not)
HALF_BACKENDS = {torch.float32: ("reference", "cpu", "cuda", "triton"),
                 torch.float16: ("reference", "triton"), torch.bfloat16: ("reference", "triton")}


def check_engine_dtype(dtype: torch.dtype, backend: str) -> None:
    """ValueError unless ``backend`` runs ``dtype`` (HALF_BACKENDS); shared by both engines."""
    if dtype not in HALF_BACKENDS:
        raise ValueError(f"dtype must be one of {list(HALF_BACKENDS)}, got {dtype!r}")
    if backend not in HALF_BACKENDS[dtype]:
        raise ValueError(f"dtype={dtype} needs backend in {HALF_BACKENDS[dtype]} (the C++ "
                         f"and CUDA kernels are float32-only), got backend={backend!r}")


def _fold_conv_norm(block: _ConvNormAct) -> tuple[nn.Conv2d, nn.Module | None, float]:
    """(conv with BatchNorm folded in, remaining norm module or None, LeakyReLU slope)."""
    conv, norm, act = block[0], block[1], block[2]
    slope = float(act.negative_slope)
    if isinstance(norm, nn.BatchNorm2d):
        scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
        folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                           conv.padding, bias=True)
        w = conv.weight.double() * scale.view(-1, 1, 1, 1)
        b = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        b = (b - norm.running_mean.double()) * scale + norm.bias.double()
        folded.weight = nn.Parameter(w.float().contiguous(memory_format=torch.channels_last),
                                     requires_grad=False)
        folded.bias = nn.Parameter(b.float(), requires_grad=False)
        return folded, None, slope
    return conv, norm, slope


class _EngineConvNormAct(nn.Module):
    def __init__(self, block: _ConvNormAct):
        super().__init__()
        self.conv, self.norm, self.slope = _fold_conv_norm(block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.leaky_relu(x, self.slope, inplace=True)


def _channels_last(conv: nn.Conv2d) -> nn.Conv2d:
    """conv with its filters in channels-last memory (oneDNN's fast path; a contiguous
    filter on a channels-last input falls back to torch's slow convolution)."""
    conv.weight = nn.Parameter(conv.weight.detach().contiguous(memory_format=torch.channels_last),
                               requires_grad=False)
    return conv


def _concat_convs(convs: list[nn.Conv2d]) -> nn.Conv2d:
    """One conv whose output channels are the given convs' outputs, concatenated."""
    first = convs[0]
    merged = nn.Conv2d(first.in_channels, sum(c.out_channels for c in convs), first.kernel_size,
                       first.stride, first.padding, bias=True)
    merged.weight = nn.Parameter(torch.cat([c.weight for c in convs]).detach().contiguous(
        memory_format=torch.channels_last), requires_grad=False)
    merged.bias = nn.Parameter(torch.cat([c.bias for c in convs]).detach(), requires_grad=False)
    return merged


class _EngineAADResBlock(nn.Module):
    """AAD ResBlock with merged modulation/mask convs and fused AAD kernels."""

    def __init__(self, block: AADResBlock, backend: str):
        super().__init__()
        self.backend = backend
        self.learned_shortcut = block.learned_shortcut
        aads = [block.aad1, block.aad2] + ([block.aad3] if block.learned_shortcut else [])
        self.c_in = block.aad1.channels
        self.att = _concat_convs([a.att for a in aads])           # A -> 2 C x (2 or 3)
        self.mask_h = _concat_convs([block.aad1.mask] + ([block.aad3.mask] if block.learned_shortcut else []))
        self.mask_y = _channels_last(copy.deepcopy(block.aad2.mask))
        self.conv1 = _channels_last(copy.deepcopy(block.conv1))
        self.conv2 = _channels_last(copy.deepcopy(block.conv2))
        self.conv3 = _channels_last(copy.deepcopy(block.conv3)) if block.learned_shortcut else None

    def _aad(self, h_hat, att, k, ids, logits):
        c = self.c_in
        gamma_att = att[:, 2 * c * k:2 * c * k + c]
        beta_att = att[:, 2 * c * k + c:2 * c * (k + 1)]
        return aad_ops.aad_blend_relu(h_hat, gamma_att, beta_att, ids[k][0], ids[k][1], logits,
                                      True, self.backend)

    def forward(self, h: torch.Tensor, z_att: torch.Tensor, ids) -> torch.Tensor:
        att = self.att(z_att)                                   # (N, 2C * layers, H, W)
        h_hat = aad_ops.instance_norm(h, 1e-5, self.backend)
        m_h = self.mask_h(h_hat)                                # (N, 1 or 2, H, W)
        y = self.conv1(self._aad(h_hat, att, 0, ids, m_h[:, 0:1]))
        y_hat = aad_ops.instance_norm(y, 1e-5, self.backend)
        y = self.conv2(self._aad(y_hat, att, 1, ids, self.mask_y(y_hat)))
        if self.learned_shortcut:
            s = self.conv3(self._aad(h_hat, att, 2, ids, m_h[:, 1:2]))
        else:
            s = h
        return y + s


class EngineAEINet(nn.Module):
    """Inference AEI-Net on a backend ('cpu', 'cuda', 'triton', or 'reference' for the AAD
    math); built from a reference ``AEINet`` (its weights are copied, eval statistics)."""

    def __init__(self, model: AEINet, backend: str = "cpu", dtype: torch.dtype = torch.float32):
        super().__init__()
        check_engine_dtype(dtype, backend)
        model = model.eval()
        self.config = model.config
        self.backend = backend
        self.dtype = dtype
        self.down = nn.ModuleList(_EngineConvNormAct(b) for b in model.encoder.down)
        self.up = nn.ModuleList(_EngineConvNormAct(u.body) for u in model.encoder.up)
        self.bottleneck = model.bottleneck          # shared, stays float32 (a tiny GEMM)
        self.start = nn.Parameter(model.generator.start.detach().clone(), requires_grad=False)
        self.blocks = nn.ModuleList(_EngineAADResBlock(b, backend) for b in model.generator.blocks)
        self.ids_per_block = [len(b.id_channels()) for b in model.generator.blocks]
        if dtype != torch.float32:
            for part in (self.down, self.up, self.blocks):
                part.to(dtype)
            self.start.data = self.start.data.to(dtype)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return aad_ops.upsample_bilinear2x(x, self.backend)

    def attributes(self, crop: torch.Tensor) -> list[torch.Tensor]:
        d = [crop.contiguous(memory_format=torch.channels_last)]
        for down in self.down:
            d.append(down(d[-1]))
        depth = len(self.down)
        z = [d[depth]]
        for j, up in enumerate(self.up, start=1):
            z.append(torch.cat([up(self._up(z[-1])), d[depth - j]], dim=1))
        z.append(self._up(z[-1]))
        return z

    @torch.inference_mode()
    def forward(self, crop: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """crop (N, 3, S, S) in [-1, 1], identity (N, 128) released vector -> (N, 3, S, S)."""
        return self.generate(crop, identity)

    def generate(self, crop: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """``forward`` without inference mode (what torch.compile traces). Returns float32
        whatever ``self.dtype`` is."""
        z_att = self.attributes(crop.to(self.dtype))
        ids = self.bottleneck(identity)       # whitening + one GEMM -> [(gamma_id, beta_id)]
        if self.dtype != torch.float32:
            ids = [(g.to(self.dtype), b.to(self.dtype)) for g, b in ids]
        n = crop.shape[0]
        h = self.start.expand(n, -1, -1, -1).contiguous(memory_format=torch.channels_last)
        pos = 0
        for i, block in enumerate(self.blocks):
            k = self.ids_per_block[i]
            h = block(h, z_att[i], ids[pos:pos + k])
            pos += k
            if i + 1 < len(self.blocks):
                h = self._up(h)
        return torch.tanh(h).float()
