"""Train the prior-based generator (identitydp_fast/training/prior_trainer.py), resumable.

    .venv/bin/python tools/train_prior.py --minutes 60     # continues from the checkpoint
The checkpoint (checkpoints/prior-256.pt, overwritten) is the one state kept in the repository.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from identitydp_fast.training.prior_trainer import PriorTrainer

REPO = Path(__file__).resolve().parent.parent


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "head256")
    ap.add_argument("--checkpoint", type=Path, default=REPO / "checkpoints" / "prior-256.pt")
    ap.add_argument("--dp-source", type=Path, default=REPO / "identitydp_fast" / "weights" / "fast-128.safetensors",
                    help="model whose public DP statistics (centre, clip, norms) the new one takes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--phase", choices=("regress", "image"), default="regress",
                    help="regress: encoder + mapper regress the known W+ (no prior in the loop, fast); "
                         "image: the full generator with image, identity and outer-face losses")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    trainer = PriorTrainer(a.cache, a.checkpoint, dp_source=a.dp_source)
    print(f"resumed at step {trainer.resume()}; {len(trainer.w)} training faces", flush=True)
    trainer.train(a.minutes * 60, phase=a.phase)


if __name__ == "__main__":
    main()
