"""Fit pipeline/detect.py's ``DLIB_RECT`` (CNN box -> the box dlib's HOG detector draws) and
measure what the CNN path changes in dlib's landmarks and identity descriptors.

    .venv/bin/python bench/fit_dlib_rect.py [--n 400] [--detectors centerface,retinaface]

Data: LFW photos whose row in ../shared/data/lfw_landmarks.csv has one HOG face (that CSV
holds dlib HOG's box and shape_predictor_5 points, upsample 1). Each CNN face matched to the
HOG box (IoU > 0.3) gives one pair; the map's three numbers are medians over the first half:
  a = (cx_hog - cx_cnn) / w,  b = (cy_hog - cy_cnn) / h,  s = side_hog / ((w + h) / 2)
(HOG side = right - left + 1, centre of the inclusive box). On the second half, for each
landmark source -- (1) shape_predictor_5 on the mapped box, (2) the CNN's own 5 points
mapped to dlib's 5 by one similarity fitted on the first half in an eye-mouth frame -- it
reports the landmark shift from the HOG path over the inter-ocular distance and the L2
distance between dlib descriptors of the two paths' chips (dlib's same-person threshold
is 0.6).
"""
from __future__ import annotations

import argparse
import csv

import numpy as np
import torch

from identitydp_fast.io.shared_data import default_data_root
from identitydp_fast.models.face_detector import get_detector
from identitydp_fast.pipeline import detect, identity
from identitydp_fast.pipeline.decode import read_image


def _box_iou(a, b) -> float:
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    inter = max(iw, 0) * max(ih, 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _frame(p5: np.ndarray) -> np.ndarray:
    """2x3 similarity taking the CNN's eye centres and mouth centre to (0,0), (1,0) frame."""
    e0, e1, m = p5[0], p5[1], (p5[3] + p5[4]) / 2
    c = (e0 + e1 + m) / 3                       # origin: centroid of eyes and mouth
    u = e1 - e0                                 # x axis: along the eyes, unit = eye distance
    d = np.hypot(*u)
    r = np.array([[u[0], u[1]], [-u[1], u[0]]]) / d ** 2
    return np.hstack([r, (-r @ c)[:, None]])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--detectors", default=",".join(detect.CNN_DETECTORS))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    root = default_data_root()
    with open(root / "lfw_landmarks.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["faces"] == "1"]
    rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))[:a.n]]
    predictor = detect._dlib_object("landmarks")
    encoder = identity.IdentityEncoder("auto")
    import dlib

    for name in a.detectors.split(","):
        det = get_detector(name)
        pairs = []
        for r in rows:
            img = read_image(root / "lfw" / r["path"])
            hog = tuple(int(r[k]) for k in ("left", "top", "right", "bottom"))
            d = det.detect([img], detect.DEFAULT_MIN_SCORE[name])[0]
            ious = [_box_iou(b, (hog[0], hog[1], hog[2] + 1, hog[3] + 1)) for b in d.boxes]
            if ious and max(ious) > 0.3:
                j = int(np.argmax(ious))
                lm = np.array([float(r[f"{c}{i}"]) for i in range(5) for c in "xy"]).reshape(5, 2)
                pairs.append((img, hog, d.boxes[j].astype(float), d.points[j].astype(float), lm))
        half = len(pairs) // 2
        fit, test = pairs[:half], pairs[half:]
        ratios = np.array([[((h[0] + h[2] + 1) / 2 - (b[0] + b[2]) / 2) / (b[2] - b[0]),
                            ((h[1] + h[3] + 1) / 2 - (b[1] + b[3]) / 2) / (b[3] - b[1]),
                            (h[2] - h[0] + 1) / ((b[2] - b[0] + b[3] - b[1]) / 2)] for _, h, b, _, _ in fit])
        params = tuple(float(v) for v in np.median(ratios, 0).round(4))
        # (2): dlib's 5 points in the CNN points' frame, averaged over the fit half
        canon = np.mean([(_frame(p) @ np.c_[lm, np.ones(5)].T).T for _, _, _, p, lm in fit], 0)
        detect.DLIB_RECT[name] = params
        shifts, dists = {"predictor": [], "mapped points": []}, {"predictor": [], "mapped points": []}
        for img, hog, b, p, lm in test:
            rect = dlib.rectangle(*detect.dlib_rect(b, name))
            ours = np.array([(q.x, q.y) for q in predictor(img, rect).parts()], float)
            f = _frame(p)
            inv = np.linalg.inv(np.vstack([f, [0, 0, 1]]))[:2]
            mapped = (inv @ np.c_[canon, np.ones(5)].T).T
            iod = np.hypot(*(lm[0:2].mean(0) - lm[2:4].mean(0)))
            desc = identity.describe_faces(encoder, img, [lm, ours, mapped])
            for key, pts, k in (("predictor", ours, 1), ("mapped points", mapped, 2)):
                shifts[key].append(np.abs(np.hypot(*(pts - lm).T)).mean() / iod)
                dists[key].append(float((desc[k] - desc[0]).norm()))
        print(f"{name}: {len(pairs)} LFW faces found by both (fit on {len(fit)}, measured on {len(test)}); "
              f"DLIB_RECT = {params}")
        for key in shifts:
            s, d = np.array(shifts[key]), np.array(dists[key])
            print(f"  {key:14s} landmark shift / inter-ocular: median {np.median(s):.3f}, p95 "
                  f"{np.percentile(s, 95):.3f}; descriptor L2 vs HOG path: median {np.median(d):.4f}, "
                  f"p95 {np.percentile(d, 95):.4f}, max {d.max():.4f} (same person < 0.6)")


if __name__ == "__main__":
    main()
