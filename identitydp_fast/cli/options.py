"""Command-line options shared by the commands that build an ``Anonymizer``
(``identitydp anonymize`` and ``identitydp anonymize-video``): one definition, so the two
commands cannot drift apart."""
from __future__ import annotations

import argparse

from ..pipeline.detect import DEFAULT_DETECTOR, DEFAULT_MIN_SCORE, DETECTORS


def add_anonymizer_options(p: argparse.ArgumentParser, budget_unit: str, key_rule: str) -> None:
    """--epsilon, --key, --backend, --device, --model, --detector, --min-score, --upsample.

    budget_unit: what one epsilon pays for ("face identity", "face track");
    key_rule: how keys are derived from --key (shown in its help)."""
    p.add_argument("--epsilon", type=float, default=None,
                   help=f"privacy budget per {budget_unit} (default: the Anonymizer's)")
    p.add_argument("--key", default=None, metavar="HEX",
                   help=f"64 hex characters: reproducible mode ({key_rule}); default: fresh "
                        "CSPRNG keys")
    p.add_argument("--backend", default="auto", choices=["auto", "reference", "cpu", "cuda", "triton"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--model", default=None, metavar="PATH|NAME",
                   help="weights file, or a packaged model's name (fast-128, prior-256) "
                        "(default: the packaged default model)")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, choices=DETECTORS,
                   help=f"face detector (default {DEFAULT_DETECTOR}: measured best, "
                        "bench/DETECTORS.md; hog/mmod: dlib's)")
    p.add_argument("--min-score", type=float, default=None,
                   help="drop detections scoring below this (CNN: face probability in [0, 1]; "
                        "hog: SVM margin); default per detector: "
                        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_MIN_SCORE.items()))
    p.add_argument("--upsample", type=int, default=1, choices=range(0, 5), metavar="{0..4}",
                   help="small faces: hog/mmod double the image this often (~4x time per step); "
                        "CNN: 0 half size, 1 as is, 2..4 extra tiled passes at 2x..8x")
