"""Detect (pipeline stage 2): face boxes and 5 landmarks.

Detectors (``DETECTORS``; the default ``DEFAULT_DETECTOR`` is the one measured best on the
WIDER FACE dev subset, bench/detectors.py, bench/DETECTORS.md):

* ``centerface`` / ``retinaface``: CNNs ported to PyTorch (models/centerface.py,
  models/retinaface.py, packaged weights), run by models/face_detector.py. Their score is a
  face probability in [0, 1]; ``min_score`` defaults per detector (``DEFAULT_MIN_SCORE``,
  chosen from the dev set's precision-recall curve). Their box goes through ``dlib_rect``
  (a fitted map onto the box dlib's HOG detector draws for the same face) to dlib's
  ``shape_predictor_5``, so the landmarks are in the convention the identity encoder was
  trained on; the CNN's own 5 points (eye centres, nose tip, mouth corners) are not used.
  ``upsample`` means passes at scales ``cnn_scales(upsample)``: 0 -> half size, 1 -> the
  image as it is, 2 -> plus a 2x tiled pass (small faces), 3, 4 -> plus 4x, 8x.
* ``hog``: dlib's frontal HOG + SVM, score the SVM margin (> 0 kept).
* ``mmod``: dlib's CNN (MMOD), score its confidence; slow on the CPU.

dlib models come from the ``face-recognition-models`` package, located without importing it
(its ``__init__`` needs ``pkg_resources``, gone from setuptools >= 81). Only the CC0
files are used: ``shape_predictor_5_face_landmarks.dat`` and
``mmod_human_face_detector.dat``; the 68-point predictor in the same package is not free
for commercial use and is never loaded here.

Defined behaviour at the edges:

* no face: ``[]``.
* faces touching the border: dlib's box may reach outside the image; ``box`` is clipped to
  the image (inclusive pixel indices, so 0 <= left <= right <= W - 1), and the landmarks
  are NOT clipped: they are dlib's estimate and may lie outside the image (the warp then
  reads zeros there).
* tiny faces: the HOG detector's window is 80x80 pixels, halved by each ``upsample``
  (~40 px at the default 1); smaller faces are not found. The CNNs find faces from ~10 px
  at upsample 1 (recall by size: bench/DETECTORS.md). ``min_size`` (default 0, keep
  all) drops found faces whose unclipped box is smaller: for anonymisation, keeping every
  face is the safe default.

dlib's objects are created on first use, under a lock: the shape predictor once per
process (read-only after loading, shared by all threads); the HOG detector once per
THREAD, because dlib's object_detector keeps scratch buffers in the instance and releases
the GIL, so two threads calling one instance get each other's detections or crash
(tests/test_detect_threads.py); the MMOD network keeps per-call state, so its calls are
serialised. The CNN detectors are loaded once per process and are read-only after that.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import threading
from pathlib import Path

import numpy as np

from .decode import to_rgb_uint8

DETECTORS = ("centerface", "retinaface", "hog", "mmod")
CNN_DETECTORS = ("centerface", "retinaface")
DEFAULT_DETECTOR = "centerface"
#: min_score when the caller gives none. CNNs: the probability at which false positives on the
#: WIDER FACE dev subset reach ~1 per image (README's rule; bench/DETECTORS.md): centerface
#: 0.4 -> 1.03 FP/img, recall 0.87 at 32-64 px, 0.65 at 16-32; retinaface 0.6 -> 0.91 FP/img.
#: The astronaut's mission patch never reaches the 0.05 decoding floor. dlib: 0 keeps what
#: dlib keeps.
DEFAULT_MIN_SCORE = {"centerface": 0.4, "retinaface": 0.6, "hog": 0.0, "mmod": 0.0}
#: CNN detections below this probability are never decoded (min_score 0 means this floor)
CNN_SCORE_FLOOR = 0.05
#: dlib_rect's map (centre x offset, centre y offset, side) in units of the CNN box's (width,
#: height, mean side), medians over 200 LFW faces HOG and the CNN both find
#: (bench/fit_dlib_rect.py). On 200 others, shape_predictor_5 on the mapped box moved dlib's
#: points by a median 0.008 inter-ocular distances (p95 0.03) from the HOG path's, and
#: dlib's descriptor by a median L2 0.044 (p95 0.09-0.10, max 0.28; same person < 0.6);
#: mapping the CNN's own points instead moved the descriptor 3x more (median 0.15).
DLIB_RECT = {"centerface": (-0.041, 0.047, 0.966), "retinaface": (-0.034, 0.051, 0.951)}
_MODEL_FILES = {
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "mmod": "mmod_human_face_detector.dat",
    "resnet": "dlib_face_recognition_resnet_model_v1.dat",
}


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: numpy fields do not compare as bools
class FaceRecord:
    """One face.

    box: (left, top, right, bottom) ints, inclusive pixel indices clipped to the image.
    landmarks: (5, 2) float64 (x, y) in dlib's shape_predictor_5 order (outer and inner
        corner of the eye on the image's right, same for the eye on the image's left,
        base of the nose); may lie outside the image for faces cut by the border.
    score: the detector's confidence (CNN detectors: face probability in [0, 1]; HOG: SVM
        margin, > 0 for a detection at the default threshold; MMOD: network score; nan when
        the caller supplied the face).
    """

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    score: float

    def __post_init__(self):
        # frozen all the way down: a read-only copy of the landmarks
        lm = np.array(self.landmarks, dtype=np.float64)
        if lm.shape != (5, 2):
            raise ValueError(f"landmarks must be (5, 2), got {lm.shape}")
        lm.setflags(write=False)
        object.__setattr__(self, "landmarks", lm)
        object.__setattr__(self, "box", tuple(int(v) for v in self.box))


def model_path(name: str) -> Path:
    """Path of a dlib model file by key: 'landmarks', 'mmod' or 'resnet' (dlib's face
    descriptor network); see identitydp_fast/models/files.py."""
    if name not in _MODEL_FILES:
        raise ValueError(f"name must be one of {sorted(_MODEL_FILES)}, got {name!r}")
    from ..models.files import model_file
    try:
        return model_file(name)
    except FileNotFoundError as exc:
        raise RuntimeError(str(exc)) from None


_lock = threading.Lock()
_mmod_lock = threading.Lock()
_cache: dict = {}
_per_thread = threading.local()   # .hog = (pid, detector): one HOG detector per thread


def _dlib_object(key: str):
    """The dlib object for key ('hog': this thread's; 'mmod', 'landmarks': the process's),
    created once."""
    pid = os.getpid()  # a forked child rebuilds its own (and its own lock state)
    if key == "hog":
        mine = getattr(_per_thread, "hog", None)
        if mine is None or mine[0] != pid:
            import dlib

            mine = (pid, dlib.get_frontal_face_detector())
            _per_thread.hog = mine
        return mine[1]
    obj = _cache.get((pid, key))
    if obj is not None:
        return obj
    with _lock:
        obj = _cache.get((pid, key))
        if obj is None:
            import dlib  # lazily: the package imports without dlib

            if key == "hog":
                obj = dlib.get_frontal_face_detector()
            elif key == "mmod":
                obj = dlib.cnn_face_detection_model_v1(str(model_path("mmod")))
            else:
                obj = dlib.shape_predictor(str(model_path("landmarks")))
            _cache[(pid, key)] = obj
    return obj


def _clip_box(left: int, top: int, right: int, bottom: int, w: int, h: int):
    return (min(max(left, 0), w - 1), min(max(top, 0), h - 1),
            min(max(right, 0), w - 1), min(max(bottom, 0), h - 1))


def check_options(detector: str = DEFAULT_DETECTOR, upsample: int = 1, min_size: int = 0,
                  min_score: float | None = None) -> float:
    """ValueError naming the first bad detection option; returns min_score as a float
    (None: the detector's ``DEFAULT_MIN_SCORE``)."""
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    if not isinstance(upsample, int) or isinstance(upsample, bool) or not 0 <= upsample <= 4:
        raise ValueError(f"upsample must be an integer in [0, 4], got {upsample!r}")
    if not isinstance(min_size, int) or isinstance(min_size, bool) or min_size < 0:
        raise ValueError(f"min_size must be an integer >= 0 (pixels), got {min_size!r}")
    if min_score is None:
        return DEFAULT_MIN_SCORE[detector]
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or math.isnan(min_score):
        raise ValueError(f"min_score must be a real number (a detector score), got {min_score!r}")
    if detector in CNN_DETECTORS and not 0.0 <= min_score <= 1.0:
        raise ValueError(f"min_score must be in [0, 1] for detector {detector!r} (a face "
                         f"probability; default {DEFAULT_MIN_SCORE[detector]}), got {min_score!r}")
    return float(min_score)


def cnn_scales(upsample: int) -> tuple[float, ...]:
    """The CNN passes for ``upsample``: 0 -> (0.5,), 1 -> (1,), u >= 2 -> (1, 2, .., 2^(u-1))."""
    return (0.5,) if upsample == 0 else tuple(2.0 ** k for k in range(upsample))


def dlib_rect(box, detector: str) -> tuple[int, int, int, int]:
    """The dlib rectangle (left, top, right, bottom inclusive) for a CNN box (x0, y0, x1, y1
    continuous): centre (cx + a w, cy + b h), side s (w + h) / 2 with (a, b, s) =
    ``DLIB_RECT[detector]``: where dlib's HOG detector would put its (square) box."""
    a, b, k = DLIB_RECT[detector]
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    cx, cy, side = (x0 + x1) / 2 + a * w, (y0 + y1) / 2 + b * h, k * (w + h) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    n = max(int(round(side)), 1)
    return left, top, left + n - 1, top + n - 1


def _cnn_faces(img: np.ndarray, detector: str, upsample: int, min_score: float):
    """(dlib rectangle for the shape predictor, score, the CNN's box as inclusive pixels
    (floor(x0), floor(y0), ceil(x1) - 1, ceil(y1) - 1)) of the CNN's faces, best first."""
    from ..models.face_detector import get_detector

    [found] = get_detector(detector).detect([img], max(min_score, CNN_SCORE_FLOOR),
                                            cnn_scales(upsample))
    return [(dlib_rect(b, detector), float(s),
             (math.floor(b[0]), math.floor(b[1]), math.ceil(b[2]) - 1, math.ceil(b[3]) - 1))
            for b, s in zip(found.boxes, found.scores)]


def detect_faces(image, detector: str = DEFAULT_DETECTOR, upsample: int = 1, min_size: int = 0,
                 max_pixels: int | None = None, min_score: float | None = None) -> list[FaceRecord]:
    """Faces in ``image`` with their 5 landmarks, in the detector's order (CNN: best first).

    image: anything ``to_rgb_uint8`` accepts. detector: one of ``DETECTORS`` (module
    docstring). upsample: dlib: how many times it doubles the image first (finds faces down
    to ~80 / 2^upsample px; time grows ~4x per step); CNN: ``cnn_scales``. min_size: drop
    faces whose box side is < min_size pixels. min_score: drop faces scoring below it (None:
    the detector's ``DEFAULT_MIN_SCORE``; HOG's 0 keeps every detection dlib returns).
    ``box`` is the detector's own box (CNN: its box, not the rectangle given to dlib's
    shape predictor).
    """
    min_score = check_options(detector, upsample, min_size, min_score)
    kw = {} if max_pixels is None else {"max_pixels": max_pixels}
    img = np.ascontiguousarray(to_rgb_uint8(image, **kw))
    h, w = img.shape[:2]
    import dlib  # the rectangle type the shape predictor takes

    def edges(r):
        return r.left(), r.top(), r.right(), r.bottom()

    if detector in CNN_DETECTORS:
        found = [(dlib.rectangle(*r), s, b) for r, s, b in _cnn_faces(img, detector, upsample, min_score)]
    elif detector == "hog":
        # run(img, upsample, adjust_threshold=0): the same detections as detector(img,
        # upsample), plus their scores
        rects, scores, _ = _dlib_object("hog").run(img, upsample, 0.0)
        found = [(r, s, edges(r)) for r, s in zip(rects, scores)]
    else:
        net = _dlib_object("mmod")
        with _mmod_lock:
            found = [(d.rect, d.confidence, edges(d.rect)) for d in net(img, upsample)]
    predictor = _dlib_object("landmarks")
    records = []
    for rect, score, (left, top, right, bottom) in found:
        if min(right - left + 1, bottom - top + 1) < min_size or score < min_score:
            continue
        shape = predictor(img, rect)
        lm = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        records.append(FaceRecord(box=_clip_box(left, top, right, bottom, w, h), landmarks=lm,
                                  score=float(score)))
    return records


def records_from_landmarks(boxes, landmarks, scores=None) -> list[FaceRecord]:
    """FaceRecords for callers with their own detector.

    boxes: (N, 4) (left, top, right, bottom), inclusive pixel indices (not clipped here:
    the caller knows its image); landmarks: (N, 5, 2) (x, y) in dlib's shape_predictor_5
    order (see FaceRecord); scores: (N,) or None (nan).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.size == 0 and len(b) == 0:
        return []
    if lm.ndim != 3 or lm.shape[1:] != (5, 2) or lm.shape[0] != b.shape[0]:
        raise ValueError(f"landmarks must be (N, 5, 2) with N = len(boxes) = {b.shape[0]}, "
                         f"got {lm.shape}")
    if not np.isfinite(lm).all() or not np.isfinite(b).all():
        raise ValueError("boxes and landmarks must be finite; drop faces without landmarks")
    if np.any(b[:, 2] < b[:, 0]) or np.any(b[:, 3] < b[:, 1]):
        raise ValueError("boxes must satisfy right >= left and bottom >= top "
                         "(left, top, right, bottom)")
    s = np.full(len(b), np.nan) if scores is None else np.asarray(scores, dtype=np.float64)
    if s.shape != (len(b),):
        raise ValueError(f"scores must be (N,) with N={len(b)}, got {s.shape}")
    return [FaceRecord(box=tuple(int(round(v)) for v in b[i]), landmarks=lm[i],
                       score=float(s[i])) for i in range(len(b))]


def find_faces(rgb: np.ndarray, detector: str, upsample: int, min_size: int,
               min_score: float | None) -> list[FaceRecord]:
    """``detect_faces`` without the detections scoring below ``min_score``.

    HOG margins at upsample 1: the astronaut in examples/astronaut.png scores 1.16, her
    mission patch (a false face) 0.12; on 148 LFW photos the pictured person's face scored
    median 1.69, 5th percentile 0.80, minimum 0.07. So a threshold trades false faces for
    missed real ones (0.3 drops the patch and ~1% of those LFW faces); 0.0 keeps every
    detection: a missed face is a privacy failure, a false one only alters a patch.
    CNN probabilities: bench/DETECTORS.md has the dev set's curve behind DEFAULT_MIN_SCORE."""
    return detect_faces(rgb, detector, upsample, min_size, min_score=min_score)


def check_faces(faces) -> list[FaceRecord]:
    """A caller's faces as a list of FaceRecord, or TypeError / ValueError naming the face.
    The FaceResults an anonymisation returns are taken too (their box, landmarks and score:
    ``release_identities(img, anon.anonymize(img)[1])`` works)."""
    if isinstance(faces, FaceRecord) or not isinstance(faces, (list, tuple)):
        raise TypeError(f"faces must be None (detect) or a list of FaceRecord "
                        f"(detect_faces, pipeline.detect.records_from_landmarks) or FaceResult, "
                        f"got {type(faces).__name__}")
    out = []
    for i, f in enumerate(faces):
        if not isinstance(f, FaceRecord):
            if type(f).__name__ != "FaceResult":   # the release stage's result (a later stage)
                raise TypeError(f"faces[{i}] must be a FaceRecord or FaceResult, got {type(f).__name__}")
            f = FaceRecord(box=tuple(f.box), landmarks=np.array(f.landmarks, dtype=np.float64),
                           score=float(f.score))
        if not np.isfinite(f.landmarks).all():
            raise ValueError(f"faces[{i}] has non-finite landmarks; drop that face")
        out.append(f)
    return out

