"""How many held-out portraits (each holds one real face) the default detector finds at its
default min_score: LFW and UTKFace from ../shared/data, a seeded sample of each.

    .venv/bin/python tools/heldout_detection.py [--n 300]

Prints the counts and, for every photo without a detection, its best score at min_score
0.05 and whether dlib's HOG finds a face there (the trust issue's item 10: the default
threshold must reject false detections while keeping real faces).
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from identitydp_fast.io.shared_data import default_data_root
from identitydp_fast.pipeline.detect import DEFAULT_DETECTOR, detect_faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    root = default_data_root()
    for name in ("lfw", "utkface"):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in (".jpg", ".png"))
        random.Random(0).shuffle(files)
        missed = []
        for p in files[:a.n]:
            img = np.asarray(Image.open(p).convert("RGB"))
            if not detect_faces(img):
                best = max((f.score for f in detect_faces(img, min_score=0.05)), default=float("nan"))
                missed.append((p.name, best, len(detect_faces(img, detector="hog"))))
        n = min(a.n, len(files))
        print(f"{name}: {n - len(missed)}/{n} photos with a face found by {DEFAULT_DETECTOR} "
              f"at its default min_score")
        for fname, best, hog in missed:
            print(f"  missed {fname}: best score {best:.3f}; hog finds {hog} face(s)")


if __name__ == "__main__":
    main()
