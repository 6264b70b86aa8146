"""Held-out privacy/utility evaluation (DESIGN.md section 7): baselines, and a trained
DP generator when one is given.

    python tools/evaluate.py --out eval_out --people 40 --probes 2
    python tools/evaluate.py --model weights.safetensors --epsilons 1,10,30,100,300,1000

Without --model only the baselines (blur, pixelate, identity) run and the table says so:
no generator numbers are ever invented. With --model the file must load with
``identitydp_fast.models.weights.load_model``; the generator then runs as anonymizers
``dp-eps<e>`` (epsilon-IdentityDP with the model's stored centre / clip / norm, keyed per
probe) and ``swap`` (no noise: the identity of a training-split LFW person, chosen by the
key). Writes results.md, results.json, privacy_utility.png and samples.png into --out.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from identitydp_fast.evaluation import harness  # noqa: E402


def model_anonymizers(model_path, epsilons, data_root, n_donors: int = 32, backend: str = "cpu"):
    """name -> anonymizer for a trained AEINet: ``dp-eps<e>`` per epsilon and ``swap``.

    Both run the library's pipeline (identitydp_fast.Anonymizer: alignment, the attribute
    input with the inner face degraded as in training, generator, feathered paste-back):
    ``dp-eps<e>`` is ``Anonymizer.anonymize`` at that epsilon (the probe's key, face 0 on
    stream 0); ``swap`` is ``Anonymizer.render`` with a donor's RAW descriptor (no noise).
    """
    from identitydp_fast.anonymizer import Anonymizer, check_epsilon
    from identitydp_fast.geometry.detect import FaceRecord
    from identitydp_fast.geometry.image_io import read_image
    from identitydp_fast.training.data import _read_face_rows, split_lfw_identities

    epsilons = [check_epsilon(e) for e in epsilons]   # a bad value fails here, not mid-run
    anon = Anonymizer(model_path, epsilon=epsilons[0] if epsilons else 10.0, backend=backend)
    # donors for the no-noise swap: training-split LFW people (never the evaluated ones)
    csv_path = Path(data_root) / "lfw_landmarks.csv"
    train, _ = split_lfw_identities(csv_path)
    train = set(train)
    rows = [r for r in _read_face_rows(csv_path) if r["path"].split("/")[0] in train]
    idx = np.linspace(0, len(rows) - 1, n_donors).round().astype(int)

    def donor_face(lm):
        lo, hi = lm.min(axis=0), lm.max(axis=0)
        return FaceRecord(box=(*np.floor(lo).astype(int), *np.ceil(hi).astype(int)),
                          landmarks=lm, score=float("nan"))

    donors = torch.cat([anon.describe(read_image(Path(data_root) / "lfw" / rows[i]["path"]),
                                      [donor_face(rows[i]["landmarks"])]) for i in idx])

    out = {}
    for eps in epsilons:
        def dp(image, face, key, eps=eps):
            return anon.anonymize(image, [face], key=key, epsilon=eps)[0]
        out[f"dp-eps{eps:g}"] = dp

    def swap(image, face, key):
        j = int.from_bytes(hashlib.sha256(key).digest()[:4], "little") % len(donors)
        return anon.render(image, [face], donors[j:j + 1])[0]
    out["swap"] = swap
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="shared data folder (default: $IDP_DATA or ../shared/data)")
    ap.add_argument("--out", default="eval_out", help="output folder")
    ap.add_argument("--people", type=int, default=40, help="held-out identities to draw")
    ap.add_argument("--probes", type=int, default=2, help="probe images per person")
    ap.add_argument("--gallery-per-person", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="blur,pixelate,identity",
                    help="comma list of baselines (blur, pixelate, identity)")
    ap.add_argument("--model", default=None, help="trained AEINet safetensors (adds dp-eps*, swap)")
    ap.add_argument("--epsilons", default="1,10,30,100,300,1000")
    ap.add_argument("--backend", default="cpu",
                    help="backend of the identity encoder (and, with --model, of the generator and the noise)")
    args = ap.parse_args(argv)

    from identitydp_fast.training.data import default_data_root
    data_root = Path(args.data) if args.data else default_data_root()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in harness.BASELINES]
    if bad:
        ap.error(f"unknown baseline(s) {bad}; choose from {sorted(harness.BASELINES)}")
    anonymizers, notes = {}, []
    if args.model:
        try:
            extra = model_anonymizers(args.model, [float(e) for e in args.epsilons.split(",")],
                                      data_root, backend=args.backend)
        except Exception as exc:  # never fake the generator's rows
            print(f"error: the model {args.model} could not be loaded or run: {exc}", file=sys.stderr)
            return 2
        anonymizers.update(extra)
        methods += list(extra)
        notes.append(f"DP generator: {args.model} (attribute input: the crop with the inner face degraded, as in training)")
    else:
        notes.append("DP generator: NOT evaluated (no --model given); baselines only.")
    harness.evaluate(anonymizers, methods, data_root, args.people, args.probes, args.seed,
                     args.out, gallery_per_person=args.gallery_per_person,
                     backend=args.backend, notes=notes)
    print((Path(args.out) / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
