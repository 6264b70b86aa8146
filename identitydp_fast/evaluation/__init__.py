"""Held-out privacy/utility evaluation (DESIGN.md section 7): ``metrics`` (pure
functions) and ``harness.evaluate`` (the protocol, baselines, table and pictures)."""
from . import metrics
from .harness import BASELINES, CONDITIONS, evaluate, real_pipeline

__all__ = ["metrics", "evaluate", "BASELINES", "CONDITIONS", "real_pipeline"]
