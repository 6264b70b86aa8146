"""LFW pair verification: dlib itself vs identitydp-fast's geometry + identity path.

For seeded same-person and different-person pairs of LFW images (../shared/data/lfw,
people with >= 2 images), each image goes through

* dlib:  HOG detector + shape_predictor_5 -> dlib.get_face_chip(150, 0.25) ->
         face_recognition_model_v1.compute_face_descriptor
* ours:  identitydp_fast.detect_faces (the same dlib detector) -> dlib-convention chip
         transform -> the warp kernel -> the engine's ResNet (IdentityEncoder)

(the face nearest the image centre in both), and a pair is called "same" when the
descriptor distance is < 0.6. Prints accuracy for both, how often they decide alike,
the largest descriptor difference, and throughput; --json writes the record.

    python tools/lfw_verify.py --pairs 300 --backend cpu [--json out.json]
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from collections import defaultdict

import numpy as np
import torch

from identitydp_fast.io.shared_data import default_data_root  # noqa: E402

DATA = default_data_root()


def make_pairs(n: int, seed: int) -> list[tuple[str, str, bool]]:
    """n same-person and n different-person pairs of LFW image paths (seeded)."""
    by_person = defaultdict(list)
    with open(DATA / "lfw_landmarks.csv") as fh:
        for row in csv.DictReader(fh):
            if row["faces"] and int(row["faces"]) >= 1:
                by_person[row["path"].split("/")[0]].append(row["path"])
    rng = random.Random(seed)
    multi = sorted(p for p, imgs in by_person.items() if len(imgs) >= 2)
    people = sorted(by_person)
    pairs = []
    for _ in range(n):
        p = rng.choice(multi)
        a, b = rng.sample(sorted(by_person[p]), 2)
        pairs.append((a, b, True))
    for _ in range(n):
        p, q = rng.sample(people, 2)
        pairs.append((rng.choice(by_person[p]), rng.choice(by_person[q]), False))
    return pairs


def nearest_centre(faces, h: int, w: int):
    return min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - w / 2) ** 2 +
               ((f.box[1] + f.box[3]) / 2 - h / 2) ** 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=300, help="pairs of each kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    if not (DATA / "lfw_landmarks.csv").exists():
        print(f"lfw_verify: LFW not found under {DATA} (set IDP_DATA)", file=sys.stderr)
        return 2
    import dlib

    from identitydp_fast import IdentityEncoder, detect_faces
    from identitydp_fast.pipeline.align import dlib_chip_transform
    from identitydp_fast.pipeline.detect import model_path
    from identitydp_fast.pipeline.decode import read_image
    from identitydp_fast.ops.warp_affine import warp_affine

    pairs = make_pairs(args.pairs, args.seed)
    paths = sorted({p for a, b, _ in pairs for p in (a, b)})
    encoder = IdentityEncoder(backend=args.backend, device=args.device)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(model_path("landmarks")))
    facerec = dlib.face_recognition_model_v1(str(model_path("resnet")))
    warp_backend = encoder.backend if encoder.backend in ("cpu", "cuda", "triton") else "reference"

    ours, theirs, t_ours, t_dlib, missing = {}, {}, 0.0, 0.0, []
    for path in paths:
        img = read_image(DATA / "lfw" / path)
        h, w = img.shape[:2]
        t0 = time.perf_counter()
        rects = detector(img, 1)
        if len(rects) == 0:
            missing.append(path)
            continue
        rect = min(rects, key=lambda r: (r.center().x - w / 2) ** 2 + (r.center().y - h / 2) ** 2)
        chip = dlib.get_face_chip(img, predictor(img, rect), size=150, padding=0.25)
        theirs[path] = np.array(facerec.compute_face_descriptor(chip))
        t1 = time.perf_counter()
        faces = detect_faces(img, "hog")         # the same dlib detector as theirs
        face = nearest_centre(faces, h, w)
        m = dlib_chip_transform(face.landmarks[None], size=150, padding=0.25)
        chips = warp_affine(torch.from_numpy(img)[None].to(args.device), m.to(args.device), 150, 150,
                            None, 1.0, True, warp_backend)
        ours[path] = encoder(chips).cpu().numpy()[0]
        t_ours += time.perf_counter() - t1
        t_dlib += t1 - t0

    def accuracy(desc):
        ok = [(np.linalg.norm(desc[a] - desc[b]) < 0.6) == same for a, b, same in pairs
              if a in desc and b in desc]
        return float(np.mean(ok)), len(ok)

    acc_dlib, n_pairs = accuracy(theirs)
    acc_ours, _ = accuracy(ours)
    agree = np.mean([(np.linalg.norm(theirs[a] - theirs[b]) < 0.6) == (np.linalg.norm(ours[a] - ours[b]) < 0.6)
                     for a, b, _ in pairs if a in theirs and b in theirs])
    diff = max(float(np.abs(ours[p] - theirs[p]).max()) for p in ours)
    n_img = len(ours)
    record = {"pairs": n_pairs, "images": n_img, "no_face": len(missing), "threshold": 0.6,
              "accuracy_dlib": acc_dlib, "accuracy_ours": acc_ours, "decision_agreement": float(agree),
              "max_abs_descriptor_diff": diff, "backend": encoder.backend,
              "images_per_s_dlib": n_img / t_dlib, "images_per_s_ours": n_img / t_ours,
              "torch_threads": torch.get_num_threads()}
    print(f"LFW pairs: {n_pairs} ({args.pairs} same + {args.pairs} different, seed {args.seed}); "
          f"{n_img} images, {len(missing)} without a face")
    print(f"verification accuracy at 0.6: dlib {acc_dlib:.4f}, identitydp-fast {acc_ours:.4f} "
          f"(backend {encoder.backend}); same decision on {agree:.4f} of pairs")
    print(f"largest |descriptor difference|: {diff:.2e}")
    print(f"detect + chip + descriptor: dlib {record['images_per_s_dlib']:.1f} img/s, "
          f"identitydp-fast {record['images_per_s_ours']:.1f} img/s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(record, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
