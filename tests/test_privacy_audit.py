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

A second audit runs the product's release path, d = 128 with a public centre and a clip,
on a neighbouring pair at the maximal clipped L1 distance, with Clopper-Pearson bounds on
tail events of a 1-D statistic (audit_d128), and the half-noise mechanism must fail it.
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


# --- d = 128 with a centre and a clip: the product's release path --------------------

D128, CENTRE_M, CLIP = 128, 0.05, 0.5
N128 = 40_000
ALPHA = 1e-6  # family-wise: split over the thresholds (Bonferroni), two bounds each


def _neighbours_128() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A public centre mu = (0, m, ..., m) and the two unit vectors u = (+-s, m, ..., m):
    their residuals u - mu = (+-s, 0, ..., 0) have ||r||_1 = s = 0.83 > C, so the clip
    scales both onto the ball's surface, C' (+-e_1): the pair is at the maximal clipped L1
    distance 2 C' (= Delta_1 up to the 2^-16 slack), all of it on coordinate 0."""
    mu = torch.full((D128,), CENTRE_M)
    mu[0] = 0.0
    s = math.sqrt(1.0 - (D128 - 1) * CENTRE_M**2)
    a, b = mu.clone(), mu.clone()
    a[0], b[0] = s, -s
    return mu, a, b


def _coordinate0(eps: float, x: torch.Tensor, mu: torch.Tensor, key: bytes) -> np.ndarray:
    backend = "cpu" if "cpu" in idp.backends() else "reference"
    dp = idp.IdentityDP(eps, center=mu, clip=CLIP, backend=backend)
    rows = x.repeat(N128 if backend == "cpu" else N128 // 20, 1)
    return dp(rows, key=key).noisy_residual[:, 0].numpy()


def audit_d128(eps_claimed: float, eps_actual: float) -> float:
    """The largest lower confidence bound on the privacy loss over the tail events
    E_t = {v_0 >= t}: log(CP_lower(P_a(E_t)) / CP_upper(P_b(E_t))), Clopper-Pearson at
    family-wise level ALPHA. For the Laplace mechanism the true log ratio of these events
    is exactly epsilon for every t >= C' (the tight events), so a correct mechanism stays
    below eps_claimed and one that runs at a larger epsilon goes above it.

    Only coordinate 0 carries the neighbours' difference, so this 1-D statistic loses no
    power; the other 127 coordinates still run through the centre, the clip and the
    renormalisation of the real mechanism. Every backend draws bit-identical releases
    (tests/test_identity_dp.py), so auditing the CPU kernel audits them all."""
    from scipy.stats import beta

    mu, a, b = _neighbours_128()
    tag = int(eps_actual * 16) % 256  # one key per mechanism: a key is used once
    va = _coordinate0(eps_actual, a, mu, bytes([0x1a, tag]) * 16)
    vb = _coordinate0(eps_actual, b, mu, bytes([0x1b, tag]) * 16)
    scale = 2 * CLIP / eps_claimed
    thresholds = CLIP + scale * np.linspace(0.0, 4.0, 17)
    level = ALPHA / (2 * len(thresholds))
    worst = -math.inf
    for t in thresholds:
        ka, kb, n = int((va >= t).sum()), int((vb >= t).sum()), len(va)
        if ka == 0:
            continue
        lower_a = beta.ppf(level, ka, n - ka + 1)
        upper_b = beta.ppf(1 - level, kb + 1, n - kb) if kb < n else 1.0
        worst = max(worst, math.log(lower_a / upper_b))
    return worst


@pytest.mark.slow
def test_d128_release_with_centre_and_clip_passes_the_audit():
    eps = 1.0
    params = idp.IdentityDP(eps, center=_neighbours_128()[0], clip=CLIP).params(D128)
    bound = audit_d128(eps, eps)
    assert bound <= params.effective_epsilon, bound
    assert bound > 0.6 * eps  # and the audit has power: it sees most of the budget


@pytest.mark.slow
def test_d128_half_noise_mechanism_fails_the_audit():
    """Half the noise (the mechanism really at epsilon 2) claimed as epsilon 1: rejected."""
    assert audit_d128(1.0, 2.0) > 1.2
