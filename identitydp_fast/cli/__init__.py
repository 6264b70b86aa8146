"""The ``identitydp`` command line: one module per subcommand, plus the shared options.

Subcommands (this release):
  identitydp noise     release noisy identity vectors (from a .npy file, or a synthetic
                       batch shaped like dlib descriptors) and print what was done (noise.py)
  identitydp identity  detect the faces in images, compute their identity descriptors and
                       release them with epsilon-IdentityDP: how far each moved (identity.py)
  identitydp bench     end-to-end latency of the anonymisation network per backend (bench.py)
  identitydp backends  list the backends usable on this machine (backends.py)
  identitydp anonymize replace the faces in image files and folders (anonymize.py)
  identitydp anonymize-video  replace the faces in a video, one release per face track
                       (anonymize_video.py)
  identitydp anonymize-dataset  anonymise a whole data set (folder, list file, s3://
                       prefix) on Ray workers (anonymize_dataset.py; the run:
                       io/dataset.py, imported only when it runs: ray is an extra)
  identitydp evaluate  the held-out privacy/utility evaluation (evaluate.py: the options;
                       the run is identitydp_fast/evaluation, imported only when it runs)

``options.py``: the Anonymizer options shared by anonymize and anonymize-video. Each
subcommand module has ``add_parser(sub)``; nothing here imports training/ or evaluation/
at import time.
"""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import anonymize, anonymize_dataset, anonymize_video, backends, bench, evaluate, identity, noise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="identitydp", description="epsilon-IdentityDP face anonymisation engine")
    parser.add_argument("--version", action="version", version=f"identitydp-fast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (noise, identity, bench, anonymize, anonymize_video, anonymize_dataset, evaluate,
                    backends):
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
