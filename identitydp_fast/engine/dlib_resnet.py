"""dlib's face-recognition ResNet for inference: same function as
identitydp_fast/reference/dlib_resnet.py, restructured for speed.

* every affine (folded batch norm) is folded into the conv before it:
  gamma * (W * x + b) + beta = (gamma W) * x + (gamma b + beta);
* the input normalisation (x - mean_c) / 256 is folded into the stem conv, which is
  unpadded, so the fold is exact in real arithmetic: W' = W / 256,
  b' = b - sum_{c,i,j} W'[o, c, i, j] mean_c;
* activations stay in channels-last memory (convolutions go to oneDNN / cuDNN);
* each residual join (dlib's add_prev with zero-fill, pooled shortcut, ReLU) is one
  fused kernel (identitydp_fast/ops/residual_add.py) on the chosen backend.

Input: (N, 3, 150, 150) RGB in [0, 255], float32. Output: (N, 128) float32 in dlib's
scale. Agreement with the reference: <= 1e-5 max abs (tests/test_dlib_resnet_engine.py).
On a GPU cuDNN would run float32 convolutions in TF32 by default (torch's
``cudnn.allow_tf32``), which moves descriptors by ~1e-4 (measured on an H200): the
engine turns TF32 off inside its forward unless built with ``allow_tf32=True``.

Half precision (``dtype=torch.float16`` / ``torch.bfloat16``; backends 'triton' and
'reference'): the convolutions and residual joins store that dtype (the joins add in
float32), the pooling + fc run in float32. Bounds against the float32 descriptors:
tests/test_dlib_resnet_engine.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.dlib_resnet import BLOCKS, CHIP_SIZE, DlibResNetWeights, load_dlib_resnet_weights
from ..ops.library import residual_add_relu  # torch.library op: traceable by torch.compile


def _folded_conv(conv, affine, input_mean: torch.Tensor | None = None) -> nn.Conv2d:
    """A Conv2d computing affine(conv(x)) (and, with input_mean, of (x - mean) / 256)."""
    w = conv.weight.double()
    b = conv.bias.double()
    gamma, beta = affine.gamma.double(), affine.beta.double()
    if input_mean is not None:
        if conv.padding != 0:
            raise ValueError("the input normalisation folds exactly only into an unpadded conv")
        w = w / 256.0
        b = b - (w * input_mean.double().view(1, -1, 1, 1)).sum(dim=(1, 2, 3))
    out_ch, in_ch, kh, kw = w.shape
    folded = nn.Conv2d(in_ch, out_ch, (kh, kw), stride=conv.stride, padding=conv.padding)
    folded.weight = nn.Parameter((w * gamma.view(-1, 1, 1, 1)).float().contiguous(
        memory_format=torch.channels_last), requires_grad=False)
    folded.bias = nn.Parameter((b * gamma + beta).float(), requires_grad=False)
    return folded


class EngineDlibResNet(nn.Module):
    """The identity encoder network on an engine backend ('cpu', 'cuda', 'triton' or
    'reference' for the residual join). See the module docstring."""

    def __init__(self, weights: DlibResNetWeights, backend: str = "cpu", allow_tf32: bool = False,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        from .aei_net import check_engine_dtype
        check_engine_dtype(dtype, backend)
        self.backend = backend
        self.allow_tf32 = allow_tf32
        self.dtype = dtype
        convs, affines = weights.convs, weights.affines
        self.stem = _folded_conv(convs[0], affines[0], input_mean=weights.input_mean)
        layers = []
        for b, (_, down) in enumerate(BLOCKS):
            layers.append(_folded_conv(convs[1 + 2 * b], affines[1 + 2 * b]))
            layers.append(_folded_conv(convs[2 + 2 * b], affines[2 + 2 * b]))
        self.convs = nn.ModuleList(layers)
        self.down = [down for _, down in BLOCKS]
        self.fc = nn.Linear(weights.fc_weight.shape[1], weights.fc_weight.shape[0], bias=False)
        self.fc.weight = nn.Parameter(weights.fc_weight.clone(), requires_grad=False)
        if dtype != torch.float32:      # the convolutions only: pooling and fc stay float32
            self.stem.to(dtype)
            self.convs.to(dtype)

    @classmethod
    def from_file(cls, path=None, backend: str = "cpu", allow_tf32: bool = False,
                  dtype: torch.dtype = torch.float32) -> "EngineDlibResNet":
        return cls(load_dlib_resnet_weights(path), backend=backend, allow_tf32=allow_tf32,
                   dtype=dtype)

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, 150, 150) float32 RGB in [0, 255] -> (N, 128) float32."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, CHIP_SIZE, CHIP_SIZE):
            raise ValueError(f"x must have shape (N, 3, {CHIP_SIZE}, {CHIP_SIZE}), got {tuple(x.shape)}")
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        if x.is_cuda and not self.allow_tf32:
            cudnn = torch.backends.cudnn
            with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark,
                             deterministic=cudnn.deterministic, allow_tf32=False):
                return self._forward(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu_(self.stem(x))                  # (N, 32, 72, 72), normalisation folded in
        x = F.max_pool2d(x, kernel_size=3, stride=2)   # (N, 32, 35, 35)
        for b, down in enumerate(self.down):
            y = torch.relu_(self.convs[2 * b](x))
            y = self.convs[2 * b + 1](y)
            x = residual_add_relu(y, x, down, self.backend)  # fused zero-fill add + ReLU
        return self.fc(x.float().mean(dim=(2, 3)))     # (N, 128), float32
