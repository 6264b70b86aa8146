"""``identitydp evaluate``: the held-out privacy/utility evaluation (docs/MODEL_CARD_prior-256.md)
of the default model (or ``--model``), with blur / pixelation / no-change baselines and a
no-noise identity swap, in one run.

    identitydp evaluate --out eval_out                     # default model, epsilons 1..1000
    identitydp evaluate --model w.safetensors --epsilons 1,10,100 --people 40 --probes 2
    identitydp evaluate --baselines-only --out eval_base   # no generator

The generator rows are ``dp-eps<e>`` (``Anonymizer.anonymize`` at that epsilon, keyed per
probe; ``dp-eps<e>-raw`` with ``--raw-epsilons``: without the typical-identity
post-processing of the release) and ``swap`` (``Anonymizer.render`` with a training-split donor's RAW descriptor,
no noise: the privacy floor of an identity swap). No generator numbers are ever
invented: a model that cannot be loaded stops the command (exit 2). Writes results.md,
results.json, privacy_utility.png and samples.png into --out (the harness:
identitydp_fast/evaluation/harness.py). Needs the shared data (LFW + landmarks). The
command's options are identitydp_fast/cli/evaluate.py (the command line never imports this
package until the subcommand runs).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from . import harness

def model_anonymizers(model_path, epsilons, data_root, n_donors: int = 32, backend: str = "cpu",
                      raw_epsilons=()):
    """name -> anonymizer for a trained AEINet: ``dp-eps<e>`` per epsilon and ``swap``.

    Both run the library's pipeline (identitydp_fast.Anonymizer: alignment, the attribute
    input with the inner face degraded as in training, generator, feathered paste-back):
    ``dp-eps<e>`` is ``Anonymizer.anonymize`` at that epsilon (the probe's key, face 0 on
    stream 0); ``swap`` is ``Anonymizer.render`` with a donor's RAW descriptor (no noise).
    """
    from identitydp_fast.anonymizer import Anonymizer
    from identitydp_fast.privacy.accounting import check_epsilon
    from identitydp_fast.pipeline.detect import FaceRecord
    from identitydp_fast.pipeline.decode import read_image
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
    if raw_epsilons:   # the raw mechanism output, without the typical-identity post-processing
        raw = Anonymizer(model_path, epsilon=epsilons[0] if epsilons else 10.0, backend=backend,
                         typical_identity=False)
        for eps in [check_epsilon(e) for e in raw_epsilons]:
            def dp_raw(image, face, key, eps=eps):
                return raw.anonymize(image, [face], key=key, epsilon=eps)[0]
            out[f"dp-eps{eps:g}-raw"] = dp_raw
    return out


def run(args: argparse.Namespace) -> int:
    from ..io.shared_data import default_data_root

    data_root = Path(args.data) if args.data else default_data_root()
    if not (data_root / "lfw_landmarks.csv").is_file():
        print(f"identitydp evaluate: error: {data_root} holds no lfw_landmarks.csv (give --data "
              f"or set IDP_DATA)", file=sys.stderr)
        return 2
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in harness.BASELINES]
    if bad:
        print(f"identitydp evaluate: error: unknown baseline(s) {bad}; choose from "
              f"{sorted(harness.BASELINES)}", file=sys.stderr)
        return 2
    anonymizers, notes = {}, []
    if not args.baselines_only:
        from ..pipeline.generate import DEFAULT_MODEL_PATH
        models = [m.strip() for m in (args.model or str(DEFAULT_MODEL_PATH)).split(",") if m.strip()]
        for model in models:
            try:
                epsilons = [float(e) for e in args.epsilons.split(",") if e.strip()]
                raw = [float(e) for e in args.raw_epsilons.split(",") if e.strip()]
                extra = model_anonymizers(model, epsilons, data_root, backend=args.backend,
                                          raw_epsilons=raw)
            except Exception as exc:  # never fake the generator's rows
                print(f"identitydp evaluate: error: the model {model} could not be loaded or run: "
                      f"{exc}", file=sys.stderr)
                return 2
            if len(models) > 1:   # side by side: every row named after its model
                extra = {f"{Path(model).stem}/{k}": v for k, v in extra.items()}
            anonymizers.update(extra)
            methods += list(extra)
            notes.append(f"DP generator: {model} (attribute input: the crop with the inner face "
                         f"degraded, as in training)")
    else:
        notes.append("DP generator: NOT evaluated (--baselines-only); baselines only.")
    harness.evaluate(anonymizers, methods, data_root, args.people, args.probes, args.seed,
                     args.out, gallery_per_person=args.gallery_per_person,
                     backend=args.backend, notes=notes)
    print((Path(args.out) / "results.md").read_text())
    return 0


def main(argv=None) -> int:
    """``python -m identitydp_fast.evaluation.command ...`` (same as ``identitydp evaluate``)."""
    from ..cli.evaluate import add_parser

    parser = argparse.ArgumentParser(prog="identitydp")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
