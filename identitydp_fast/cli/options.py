"""Command-line options shared by the commands that build an ``Anonymizer``
(``identitydp anonymize`` and ``identitydp anonymize-video``): one definition, so the two
commands cannot drift apart."""
from __future__ import annotations

import argparse


def add_anonymizer_options(p: argparse.ArgumentParser, budget_unit: str, key_rule: str) -> None:
    """--epsilon, --key, --backend, --device, --model, --min-score, --upsample.

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
    p.add_argument("--min-score", type=float, default=0.0,
                   help="drop detections scoring below this (dlib HOG margin; default 0 keeps "
                        "all: a missed face is a privacy failure; 0.3 drops weak false hits)")
    p.add_argument("--upsample", type=int, default=1, choices=range(0, 5), metavar="{0..4}",
                   help="times the detector doubles the image first (small faces; ~4x time per step)")
