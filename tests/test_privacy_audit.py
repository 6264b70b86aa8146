"""Empirical privacy audit of the released identity vector.

Neighbouring inputs: the two unit vectors at maximal L1 distance in d = 1 (+1 and -1,
||u - u'||_1 = 2 = Delta_1), so the released coordinate carries the whole budget. For
each input we draw N releases with fresh streams, histogram the released residual v
and compare the two histograms bin by bin: for every bin with at least MIN_COUNT
draws under both inputs, |log(c / c')| must stay within epsilon plus the statistical
error, Z sqrt(1/c + 1/c') (delta method for a log ratio of Poisson counts) with
Z = 5 (two-sided false alarm ~6e-7 per bin, ~3e-5 over the <= 50 bins: fixed keys make
each run deterministic). The same audit must FAIL for a mechanism that adds half the
noise, which shows the audit has the power to catch a broken mechanism.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import identitydp_fast as idp

N = 200_000
Z = 5.0
MIN_COUNT = 2_000
EPSILON = 1.0


def _releases(eps: float, sign: float, backend: str, device: str, key: bytes) -> np.ndarray:
    x = torch.full((N, 1), sign, device=device)
    return idp.IdentityDP(eps, backend=backend)(x, key=key).noisy_residual.cpu().numpy().ravel()


def audit(eps_claimed: float, eps_actual: float, backend: str, device: str) -> tuple[bool, float]:
    """(passes, largest excess of |log ratio| over eps_claimed + error) for a mechanism
    that really runs at eps_actual but claims eps_claimed."""
    a = _releases(eps_actual, +1.0, backend, device, b"\x0a" * 32)
    b = _releases(eps_actual, -1.0, backend, device, b"\x0b" * 32)
    edges = np.linspace(-8.0, 8.0, 41)
    ca, _ = np.histogram(a, edges)
    cb, _ = np.histogram(b, edges)
    ok = (ca >= MIN_COUNT) & (cb >= MIN_COUNT)
    assert ok.sum() >= 10, "too few populated bins for a meaningful audit"
    log_ratio = np.abs(np.log(ca[ok] / cb[ok]))
    bound = eps_claimed + Z * np.sqrt(1.0 / ca[ok] + 1.0 / cb[ok])
    return bool((log_ratio <= bound).all()), float((log_ratio - bound).max())


def test_mechanism_passes_the_audit(impl):
    backend, device = impl
    passes, excess = audit(EPSILON, EPSILON, backend, device)
    assert passes, f"observed privacy loss exceeds epsilon by {excess:.3f}"


def test_half_noise_mechanism_fails_the_audit():
    """Half the noise scale is epsilon 2: the audit at claimed epsilon 1 must reject it."""
    passes, excess = audit(EPSILON, 2 * EPSILON, "auto" if "cpu" in idp.backends() else "reference", "cpu")
    assert not passes and excess > 0.3


def test_audit_sees_the_full_budget():
    """Sanity: the largest observed log ratio is close to epsilon (the bound is tight in d=1),
    so the audit would notice a mechanism that spends more than it claims."""
    backend = "cpu" if "cpu" in idp.backends() else "reference"
    a = _releases(EPSILON, +1.0, backend, "cpu", b"\x0c" * 32)
    b = _releases(EPSILON, -1.0, backend, "cpu", b"\x0d" * 32)
    ca, _ = np.histogram(a, np.linspace(-8, 8, 41))
    cb, _ = np.histogram(b, np.linspace(-8, 8, 41))
    ok = (ca >= MIN_COUNT) & (cb >= MIN_COUNT)
    assert np.abs(np.log(ca[ok] / cb[ok])).max() == pytest.approx(EPSILON, abs=0.1)
    assert math.isclose(np.median(a) - np.median(b), 2.0, abs_tol=0.1)
