"""Running a CNN face detector (centerface, retinaface) on whole photos: resize to each
scale, cut into tiles, pad to the network's stride, batch, decode, merge, NMS.

    det = get_detector("centerface")
    [d] = det.detect([rgb], threshold=0.5)        # d.boxes (K, 4), d.scores (K,), d.points (K, 5, 2)

Geometry: continuous pixel coordinates (pixel i covers [i, i + 1)); a pass at scale s runs
on the image resized to (round(H s), round(W s)) (bilinear, antialiased when shrinking) and
maps back by x W / round(W s), y H / round(H s). A pass larger than ``tile`` pixels on a
side is cut into the fewest equal windows of at most ``tile`` a side that overlap by
``overlap`` pixels (of that pass); a detection touching a window's inner edge is dropped
there, since a face smaller than the overlap lies whole in the neighbouring window. Windows and images of one size run as one
batch; each is padded with zeros (black) on the right and bottom to a multiple of 32.
Everything from all passes is then merged by greedy NMS at the detector's IoU.

Thread safety: the module is read-only after loading (inference mode, no gradients) and a
call keeps its state in locals, so one detector serves many threads; loading is locked.
"""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import torch
from torch.nn import functional as F

from . import centerface, retinaface
from .detector_weights import load_detector

NAMES = (centerface.NAME, retinaface.NAME)
_SPECS = {centerface.NAME: centerface, retinaface.NAME: retinaface}
MAX_BATCH_PIXELS = 4 * 2 ** 20   # pixels per forward (>= one window): bounds the activations' memory


@dataclasses.dataclass(frozen=True, eq=False)
class Detections:
    """One image's faces, best score first. boxes (K, 4) float32 (x0, y0, x1, y1) continuous
    pixels, may reach outside the image; scores (K,) in [0, 1]; points (K, 5, 2) (x, y) in
    the network's order (eye on the image's left, eye on its right, nose tip, mouth corner
    on the image's left, on its right)."""

    boxes: np.ndarray
    scores: np.ndarray
    points: np.ndarray


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou: float) -> torch.Tensor:
    """Indices kept by greedy non-maximum suppression, best score first: repeatedly keep the
    best remaining box and drop the others whose IoU with it exceeds ``iou``.
    boxes (K, 4) x0 y0 x1 y1; O(K x kept) with one vector IoU per kept box."""
    order = torch.argsort(scores, descending=True)
    b = boxes[order]
    area = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    alive = torch.ones(len(b), dtype=torch.bool)
    keep = []
    for i in range(len(b)):
        if not alive[i]:
            continue
        keep.append(i)
        rest = alive.nonzero().flatten()
        rest = rest[rest > i]
        if rest.numel() == 0:
            break
        wh = (torch.minimum(b[i, 2:], b[rest, 2:]) - torch.maximum(b[i, :2], b[rest, :2])).clamp(min=0)
        inter = wh[:, 0] * wh[:, 1]
        alive[rest[inter / (area[i] + area[rest] - inter + 1e-9) > iou]] = False
    return order[torch.tensor(keep, dtype=torch.long)]


def _windows(length: int, tile: int, overlap: int) -> tuple[int, list[int]]:
    """(size, starts) of the fewest equal windows of at most ``tile`` covering [0, length)
    with neighbours overlapping by >= overlap: n = ceil((length - overlap) / (tile - overlap))
    windows of size ceil((length + (n - 1) overlap) / n), evenly spaced."""
    if length <= tile:
        return length, [0]
    n = -(-(length - overlap) // (tile - overlap))
    size = -(-(length + (n - 1) * overlap) // n)
    return size, [round(i * (length - size) / (n - 1)) for i in range(n)]


def check_image(image, i: int = 0) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        desc = (f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray)
                else type(image).__name__)
        raise ValueError(f"images[{i}] must be an RGB uint8 array (H, W, 3) with H, W >= 1, got "
                         f"{desc} (pipeline.decode.to_rgb_uint8 converts most inputs)")
    return image


class CNNFaceDetector:
    """A CNN detector's network with its pre- and post-processing (module docstring)."""

    def __init__(self, name: str, path=None):
        if name not in _SPECS:
            raise ValueError(f"detector must be one of {NAMES}, got {name!r}")
        self.name, self.spec = name, _SPECS[name]
        # channels-last: oneDNN's native layout on the CPU, ~1.5x faster than NCHW here
        self.net = load_detector(name, path).to(memory_format=torch.channels_last)

    def forward(self, rgb: torch.Tensor):
        """Raw network outputs of (N, H, W, 3) uint8 RGB, H and W multiples of 32."""
        x = self.spec.preprocess(rgb).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.net(x)

    def _decode(self, outputs, threshold: float, size):
        if self.spec is retinaface:
            return retinaface.decode(outputs, threshold, size=size)
        return centerface.decode(outputs, threshold)

    def detect(self, images, threshold: float = 0.5, scales=(1.0,), tile: int = 2048,
               overlap: int = 96) -> list[Detections]:
        """Faces of each image scoring >= threshold (in (0, 1]), merged over ``scales``."""
        images = [check_image(im, i) for i, im in enumerate(images)]
        if not 0.0 < float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in (0, 1] (a face probability), got {threshold!r}")
        if not scales or any(not (0.0 < float(s) <= 8.0) for s in scales):
            raise ValueError(f"scales must be a non-empty sequence of factors in (0, 8], got {scales!r}")
        if not 32 <= tile or not 0 <= overlap < tile:
            raise ValueError(f"tile must be >= 32 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
        found = [[] for _ in images]                       # per image: (boxes, scores, points)
        groups: dict[tuple[int, int], list] = {}           # window size -> [(img, crop, map)]
        for i, im in enumerate(images):
            h, w = im.shape[:2]
            x = torch.from_numpy(im if im.flags.writeable else im.copy()).permute(2, 0, 1)[None].float()
            for s in scales:
                hs, ws = max(1, round(h * s)), max(1, round(w * s))
                xs = x if (hs, ws) == (h, w) else F.interpolate(
                    x, size=(hs, ws), mode="bilinear", align_corners=False, antialias=s < 1).clamp(0, 255).round()
                xs = xs[0].permute(1, 2, 0).to(torch.uint8)
                (th, ys), (tw, xs0) = _windows(hs, tile, overlap), _windows(ws, tile, overlap)
                for y0 in ys:
                    for x0 in xs0:
                        inner = (x0 > 0, y0 > 0, x0 + tw < ws, y0 + th < hs)   # edges shared with a neighbour
                        item = (i, xs[y0:y0 + th, x0:x0 + tw], (x0, y0, w / ws, h / hs, tw, th, inner))
                        groups.setdefault((th, tw), []).append(item)
        pad = self.spec.PAD_TO
        for (th, tw), items in groups.items():
            ph, pw = -(-th // pad) * pad, -(-tw // pad) * pad
            per = max(1, MAX_BATCH_PIXELS // (ph * pw))
            for k in range(0, len(items), per):
                chunk = items[k:k + per]
                batch = torch.zeros((len(chunk), ph, pw, 3), dtype=torch.uint8)
                for j, (_, crop, _) in enumerate(chunk):
                    batch[j, :th, :tw] = crop
                decoded = self._decode(self.forward(batch), float(threshold), (ph, pw))
                for (i, _, (x0, y0, sx, sy, cw, ch, inner)), (b, sc, p) in zip(chunk, decoded):
                    if any(inner) and len(b):
                        cut = torch.zeros(len(b), dtype=torch.bool)
                        for flag, touches in zip(inner, (b[:, 0] <= 2, b[:, 1] <= 2,
                                                         b[:, 2] >= cw - 2, b[:, 3] >= ch - 2)):
                            if flag:
                                cut |= touches
                        b, sc, p = b[~cut], sc[~cut], p[~cut]
                    scale = torch.tensor([sx, sy])
                    off = torch.tensor([float(x0), float(y0)])
                    found[i].append((((b.view(-1, 2, 2) + off) * scale).view(-1, 4), sc, (p + off) * scale))
        out = []
        for parts in found:
            b = torch.cat([q[0] for q in parts]) if parts else torch.zeros((0, 4))
            sc = torch.cat([q[1] for q in parts]) if parts else torch.zeros(0)
            p = torch.cat([q[2] for q in parts]) if parts else torch.zeros((0, 5, 2))
            keep = nms(b, sc, self.spec.NMS_IOU) if len(b) else torch.zeros(0, dtype=torch.long)
            out.append(Detections(b[keep].numpy(), sc[keep].numpy(), p[keep].numpy()))
        return out


_lock = threading.Lock()
_detectors: dict[str, CNNFaceDetector] = {}


def get_detector(name: str) -> CNNFaceDetector:
    """The process's detector ``name`` (packaged weights), loaded once."""
    det = _detectors.get(name)
    if det is None:
        with _lock:
            det = _detectors.get(name)
            if det is None:
                det = _detectors[name] = CNNFaceDetector(name)
    return det
