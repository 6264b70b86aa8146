"""``identitydp evaluate``: the held-out privacy/utility evaluation (docs/MODEL_CARD_prior-256.md)
of the default model (or ``--model``), with blur / pixelation / no-change baselines and a
no-noise identity swap, in one run.

    identitydp evaluate --out eval_out                     # default model, epsilons 1..1000
    identitydp evaluate --model w.safetensors --epsilons 1,10,100 --people 40 --probes 2
    identitydp evaluate --model fast-128,prior-256 --out eval_two   # two models, one run
    identitydp evaluate --baselines-only --out eval_base   # no generator

This module holds the options only; the run is identitydp_fast/evaluation/command.py
(``run``), imported when the subcommand runs, so that building the command line never
imports the evaluation package.
"""
from __future__ import annotations

import argparse

DEFAULT_EPSILONS = "1,10,30,100,300,1000"


def run(args: argparse.Namespace) -> int:
    from ..evaluation.command import run as run_evaluation

    return run_evaluation(args)


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``evaluate`` on the ``identitydp`` subparsers."""
    ap = sub.add_parser("evaluate", help="privacy/utility evaluation on held-out LFW people",
                        description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None,
                    help="shared data folder (default: $IDP_DATA or ../shared/data)")
    ap.add_argument("--out", default="eval_out", help="output folder")
    ap.add_argument("--people", type=int, default=40, help="held-out identities to draw")
    ap.add_argument("--probes", type=int, default=2, help="probe images per person")
    ap.add_argument("--gallery-per-person", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="blur,pixelate,identity",
                    help="comma list of baselines (blur, pixelate, identity)")
    ap.add_argument("--model", default=None,
                    help="weights file or packaged model name (fast-128, prior-256); a comma "
                         "list runs the models side by side, rows prefixed by the model "
                         "(default: the packaged default model)")
    ap.add_argument("--baselines-only", action="store_true", help="do not run a generator")
    ap.add_argument("--epsilons", default=DEFAULT_EPSILONS)
    ap.add_argument("--raw-epsilons", default="",
                    help="also run these epsilons WITHOUT the typical-identity post-processing "
                         "(rows dp-eps<e>-raw)")
    ap.add_argument("--backend", default="cpu",
                    help="backend of the identity encoder, the generator and the noise")
    ap.set_defaults(func=run)
    return ap
