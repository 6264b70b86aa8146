"""Kept for old commands: the evaluation lives in the package as ``identitydp evaluate``
(options: identitydp_fast/cli/evaluate.py, run: identitydp_fast/evaluation/command.py);
this script takes the same options."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from identitydp_fast.evaluation.command import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
