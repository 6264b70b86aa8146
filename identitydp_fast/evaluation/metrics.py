"""Privacy and utility metrics of the evaluation protocol (DESIGN.md section 7).

Pure functions on numpy arrays (torch tensors are accepted and converted). Conventions:

* descriptors: (N, 128) dlib face descriptors (dlib's scale: same person when the L2
  distance is < 0.6, ``DLIB_THRESHOLD``);
* boxes: (left, top, right, bottom), inclusive pixel indices (``FaceRecord.box``);
* landmarks: (5, 2) (x, y) in dlib's ``shape_predictor_5`` order: points 0-1 the outer and
  inner corner of one eye, 2-3 the other eye's, 4 the base of the nose;
* images: (H, W, C) uint8 (or float on the 0..255 scale).

Privacy (lower is better): ``rank1_identification`` (chance = 1 / number of identities in
the gallery), ``verification_rate``. Utility: ``box_iou`` / ``detected`` (IoU > 0.5 with
the original box), ``landmark_shift`` (normalised by the inter-ocular distance),
``psnr`` with a weight mask (outside the face). Diversity: ``pair_distance`` between two
anonymisations of one face under different keys.
"""
from __future__ import annotations

import math

import numpy as np

DLIB_THRESHOLD = 0.6
IOU_THRESHOLD = 0.5
#: SFace (the independent judge, evaluation/judge.py): same person when cosine >= 0.30
SFACE_THRESHOLD = 0.30


def _np(x, dtype=np.float64) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _descs(name: str, x) -> np.ndarray:
    a = _np(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be (N, d), got shape {a.shape}")
    return a


def pairwise_distances(a, b) -> np.ndarray:
    """(N, M) Euclidean distances between the rows of a (N, d) and b (M, d)."""
    a, b = _descs("a", a), _descs("b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b differ in dimension: {a.shape[1]} vs {b.shape[1]}")
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))


def rank1_hits(probes, probe_labels, gallery, gallery_labels, exclude=None) -> np.ndarray:
    """(N,) bool: the gallery entry nearest to each probe (L2) carries the probe's label.

    probes (N, d) with labels (N,); gallery (M, d) with labels (M,); exclude: None or (N,)
    int, for each probe the index of a gallery entry it must not be matched against (its
    own original image: the gallery holds the OTHER images of every identity), -1 for none.
    A probe whose gallery (after exclusion) is empty raises.
    """
    d = pairwise_distances(probes, gallery)
    pl, gl = np.asarray(probe_labels), np.asarray(gallery_labels)
    if pl.shape != (d.shape[0],) or gl.shape != (d.shape[1],):
        raise ValueError(f"labels must be (N,) = ({d.shape[0]},) and (M,) = ({d.shape[1]},), "
                         f"got {pl.shape} and {gl.shape}")
    if exclude is not None:
        ex = np.asarray(exclude, dtype=np.int64)
        if ex.shape != (d.shape[0],):
            raise ValueError(f"exclude must be (N,) = ({d.shape[0]},), got {ex.shape}")
        rows = np.nonzero(ex >= 0)[0]
        d[rows, ex[rows]] = np.inf
    if d.shape[1] == 0 or not np.isfinite(d.min(axis=1)).all():
        raise ValueError("a probe has an empty gallery")
    return gl[np.argmin(d, axis=1)] == pl


def rank1_identification(probes, probe_labels, gallery, gallery_labels, exclude=None) -> float:
    """Rank-1 identification rate: the fraction of ``rank1_hits`` (see there)."""
    hits = rank1_hits(probes, probe_labels, gallery, gallery_labels, exclude)
    return float(hits.mean()) if hits.size else float("nan")


def chance_rank1(gallery_labels) -> float:
    """Rank-1 rate of a random guess: 1 / number of distinct identities in the gallery."""
    n = len(set(np.asarray(gallery_labels).tolist()))
    return 1.0 / n if n else float("nan")


def pair_distance(a, b) -> np.ndarray:
    """(N,) L2 distances between matching rows of a and b (both (N, d))."""
    a, b = _descs("a", a), _descs("b", b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    return np.sqrt(((a - b) ** 2).sum(axis=1))


def verification_rate(anonymised, originals, threshold: float = DLIB_THRESHOLD) -> float:
    """Fraction of rows whose anonymised descriptor still verifies against its own original
    (distance < ``threshold``, dlib's 0.6)."""
    d = pair_distance(anonymised, originals)
    return float((d < threshold).mean()) if d.size else float("nan")


def diversity(first, second) -> float:
    """Mean dlib distance between two anonymisations of the same faces under different keys
    (rows of ``first`` and ``second``): 0 for a deterministic method, > 0.6 means the two
    outputs would not even verify as one person."""
    d = pair_distance(first, second)
    return float(d.mean()) if d.size else float("nan")


def box_iou(a, b) -> float:
    """Intersection over union of two boxes (left, top, right, bottom) with INCLUSIVE pixel
    indices (a box covers right - left + 1 columns)."""
    al, at, ar, ab = (float(v) for v in a)
    bl, bt, br, bb = (float(v) for v in b)
    iw = min(ar, br) - max(al, bl) + 1.0
    ih = min(ab, bb) - max(at, bt) + 1.0
    inter = max(iw, 0.0) * max(ih, 0.0)
    area_a = max(ar - al + 1.0, 0.0) * max(ab - at + 1.0, 0.0)
    area_b = max(br - bl + 1.0, 0.0) * max(bb - bt + 1.0, 0.0)
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def best_match(box, candidates) -> tuple[int, float]:
    """(index, IoU) of the candidate box overlapping ``box`` most; (-1, 0.0) when none."""
    best, best_iou = -1, 0.0
    for i, c in enumerate(candidates):
        v = box_iou(box, c)
        if v > best_iou:
            best, best_iou = i, v
    return best, best_iou


def detected(box, candidates, threshold: float = IOU_THRESHOLD) -> bool:
    """True when some candidate box has IoU > ``threshold`` with ``box`` (the original)."""
    return best_match(box, candidates)[1] > threshold


def interocular(landmarks) -> float:
    """Distance between the two eye centres (mean of points 0-1 and of points 2-3)."""
    lm = _np(landmarks)
    if lm.shape != (5, 2):
        raise ValueError(f"landmarks must be (5, 2), got {lm.shape}")
    return float(np.linalg.norm(lm[0:2].mean(0) - lm[2:4].mean(0)))


def landmark_shift(reference, moved) -> float:
    """Mean distance between corresponding 5-point landmarks, divided by the inter-ocular
    distance of ``reference`` (the original face): 0 for identical landmarks; 0.1 means
    the points moved a tenth of the eye distance on average."""
    ref, mov = _np(reference), _np(moved)
    if ref.shape != (5, 2) or mov.shape != (5, 2):
        raise ValueError(f"landmarks must be (5, 2), got {ref.shape} and {mov.shape}")
    iod = interocular(ref)
    if not iod > 0:
        raise ValueError("the reference landmarks have zero inter-ocular distance")
    return float(np.linalg.norm(ref - mov, axis=1).mean() / iod)


def psnr(a, b, weight=None, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio (dB) between images a and b ((H, W) or (H, W, C)).

    weight: None (every pixel) or an (H, W) array in [0, 1] of how much each pixel counts
    (e.g. 1 - face mask: PSNR outside the face). Returns inf for identical images (over
    the weighted pixels) and nan when the weights sum to 0.
    """
    x, y = _np(a), _np(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    err = (x - y) ** 2
    if err.ndim == 3:
        err = err.mean(axis=2)
    if weight is None:
        w = np.ones(err.shape)
    else:
        w = _np(weight)
        if w.shape != err.shape:
            raise ValueError(f"weight must be (H, W) = {err.shape}, got {w.shape}")
    total = float(w.sum())
    if total <= 0:
        return float("nan")
    mse = float((err * w).sum() / total)
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def finite_mean(values) -> float:
    """Mean of the finite entries (inf and nan dropped), nan when there are none; for PSNR
    use ``psnr_mean`` instead (inf is a meaningful value there)."""
    v = _np(list(values))
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def psnr_mean(values, cap: float = 100.0) -> float:
    """Mean PSNR with identical images (inf) counted as ``cap`` dB; nan entries dropped."""
    v = _np(list(values))
    v = v[~np.isnan(v)]
    return float(np.minimum(v, cap).mean()) if v.size else float("nan")


def cosine_rank1_hits(probes, probe_labels, gallery, gallery_labels, exclude=None) -> np.ndarray:
    """(N,) bool: the most similar gallery row (cosine of unit embeddings; rows holding NaN
    never match) has the probe's label; gallery row ``exclude[i]`` is left out for probe i."""
    p, g = _np(probes), _np(gallery)
    sims = p @ g.T
    sims = np.where(np.isnan(sims), -np.inf, sims)
    if exclude is not None:
        sims[np.arange(len(p)), np.asarray(exclude)] = -np.inf
    return np.asarray(gallery_labels)[np.argmax(sims, axis=1)] == np.asarray(probe_labels)


def high_frequency_energy(luma, weight) -> float:
    """sum w (L - blur_1(L))^2 / sum w: the luminance energy above a 3x3 binomial low-pass,
    inside the weight mask (H, W)."""
    y = _np(luma)
    k = np.array([1.0, 2.0, 1.0]) / 4
    pad = np.pad(y, 1, mode="edge")
    low = sum(k[i] * pad[i:i + y.shape[0], :] for i in range(3))
    pad = np.pad(low, ((0, 0), (1, 1)), mode="edge")
    low = sum(k[j] * pad[:, j:j + y.shape[1]] for j in range(3))
    w = _np(weight)
    return float(((y - low) ** 2 * w).sum() / max(w.sum(), 1e-12))


def sharpness(output, original, weight) -> float:
    """Realism: the high-frequency energy of the output's luminance inside the inner-face
    mask over the original's (1.0 = as detailed as the photo; a blurred face far below;
    far above 1 means added noise). Images (H, W, 3) on the 0..255 scale."""
    coef = np.array([0.299, 0.587, 0.114])
    e_out = high_frequency_energy(_np(output)[..., :3] @ coef, weight)
    e_orig = high_frequency_energy(_np(original)[..., :3] @ coef, weight)
    return e_out / e_orig if e_orig > 0 else float("nan")
