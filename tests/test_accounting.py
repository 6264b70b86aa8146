"""Parameters and accounting of the mechanism (identitydp_fast/privacy/accounting.py)."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from identitydp_fast.privacy.accounting import GRID_BITS, MAX_EPSILON, TAIL_MARGIN, laplace_params, threshold_table


@pytest.mark.parametrize("eps", [0.01, 1.0, 10.0, 300.0, 1000.0])
@pytest.mark.parametrize("sens,dim", [(2 * math.sqrt(128), 128), (8.0, 128), (2.0, 1)])
def test_grid_and_accounting(eps, sens, dim):
    p = laplace_params(eps, sens, dim)
    assert p.scale == pytest.approx(sens / eps)
    assert math.log2(p.granularity) == p.log2_granularity
    assert 2.0**-GRID_BITS <= p.granularity / p.scale < 2.0**(1 - GRID_BITS)
    assert 2**p.n_bits * p.granularity / p.scale >= eps + TAIL_MARGIN
    assert p.grid_epsilon == pytest.approx(eps + dim * p.granularity / p.scale)
    assert eps < p.effective_epsilon <= eps * (1 + 1e-3) + dim * 2.0**(1 - GRID_BITS)
    assert 0 <= p.delta < 1e-15
    assert p.table_rel_error < 2.0**-60
    assert p.table.shape == (p.n_bits + 1, p.words_per_row) and p.table.dtype == np.uint32
    assert not p.table.flags.writeable


def _mpmath_thresholds(lam: Fraction, n_bits: int, digits: int):
    import mpmath

    with mpmath.workdps(digits):
        p = mpmath.exp(-mpmath.mpf(lam.numerator) / lam.denominator)
        return [(1 - p) / (1 + p)] + [p ** (2**j) / (1 + p ** (2**j)) for j in range(n_bits)]


@pytest.mark.parametrize("eps,sens", [(1.0, 2.0), (10.0, 22.6), (128.0, 1.0)])
def test_thresholds_are_the_exact_binary_expansion(eps, sens):
    """Every stored threshold is exactly floor(theta 2^(32 W)), theta from an independent
    mpmath computation with 60 digits more than the table holds: all W words of every
    row, so a loss anywhere (28-digit operators lose everything past ~93 bits) shows."""
    import mpmath

    p = laplace_params(eps, sens, 128)
    lam = Fraction(p.granularity) / Fraction(p.scale)
    bits = 32 * p.words_per_row
    digits = int(bits * 0.302) + 60
    thetas = _mpmath_thresholds(lam, p.n_bits, digits)
    with mpmath.workdps(digits):
        for row, theta in zip(p.table, thetas):
            got = 0
            for w in row:
                got = (got << 32) | int(w)
            assert got == int(mpmath.floor(theta * mpmath.mpf(2) ** bits))


@pytest.mark.parametrize("eps", [0, -1, float("nan"), float("inf"), MAX_EPSILON * 2])
def test_bad_epsilon(eps):
    with pytest.raises(ValueError, match="epsilon"):
        laplace_params(eps, 1.0, 128)


@pytest.mark.parametrize("sens", [0, -2.0, float("inf")])
def test_bad_sensitivity(sens):
    with pytest.raises(ValueError, match="sensitivity"):
        laplace_params(1.0, sens, 128)


def test_cached():
    assert laplace_params(3.0, 8.0, 128) is laplace_params(3.0, 8.0, 128)


def _realised_rel_errors_mpmath(lam: Fraction, table: np.ndarray, digits: int = 2000) -> float:
    """Largest relative error of each realised probability (theta and 1 - theta) against an
    independent 2,000-digit mpmath computation of the same thresholds."""
    import mpmath

    mp = mpmath.mp.clone() if hasattr(mpmath.mp, "clone") else mpmath.mp
    with mpmath.workdps(digits):
        p = mpmath.exp(-mpmath.mpf(lam.numerator) / lam.denominator)
        words = table.shape[1]
        thetas = [(1 - p) / (1 + p)] + [p ** (2**j) / (1 + p ** (2**j)) for j in range(table.shape[0] - 1)]
        worst = mpmath.mpf(0)
        for row, theta in zip(table, thetas):
            t_int = 0
            for w in row:
                t_int = (t_int << 32) | int(w)
            realised = mpmath.mpf(t_int) / mpmath.mpf(2) ** (32 * words)
            worst = max(worst, abs(realised - theta) / theta, abs(realised - theta) / (1 - theta))
        return float(worst)


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 10.0, 100.0])
def test_table_error_is_bounded_against_mpmath_and_ignores_the_ambient_context(epsilon):
    """The realised thresholds differ from the true ones (mpmath, 2,000 digits) by at most
    the reported table_rel_error, also when the host lowered decimal's ambient precision
    (before the fix: 28-digit operators, errors up to 1.4e-25 against a reported 5e-38)."""
    import decimal

    p = laplace_params(epsilon, sensitivity=9.0, dim=128)
    lam = Fraction(p.granularity) / Fraction(p.scale)
    true_err = _realised_rel_errors_mpmath(lam, p.table)
    assert true_err <= p.table_rel_error
    with decimal.localcontext(decimal.Context(prec=3)):
        hostile, rel = threshold_table(lam, p.n_bits, p.words_per_row)
    np.testing.assert_array_equal(hostile, p.table)
    assert rel == p.table_rel_error


def _float_up_reference(x: Fraction) -> float:
    f = float(x)
    return f if Fraction(f) >= x else math.nextafter(f, math.inf)


@pytest.mark.parametrize("eps", [1.0, 10.0, 128.0, 5000.0])
def test_effective_epsilon_is_every_term_rounded_up(eps):
    """effective_epsilon >= epsilon + d lambda + the table term + the truncation term,
    each computed here independently (mpmath), and it is that sum rounded up: the
    smallest float at or above it (before: rounded to nearest, the tiny terms dropped,
    and no truncation term)."""
    import mpmath

    d = 128
    p = laplace_params(eps, 2.0, d)
    lam = Fraction(p.granularity) / Fraction(p.scale)
    with mpmath.workdps(80):
        t = mpmath.exp(-mpmath.mpf(lam.numerator) / lam.denominator * 2**p.n_bits)
        cost = d * (-mpmath.log1p(-t))  # the per-coordinate cost, d of them
        truncation = Fraction(int(cost.man)) * Fraction(2) ** int(cost.exp)
    table = 2 * d * (p.n_bits + 1) * Fraction(p.table_rel_error) * (1 + Fraction(p.table_rel_error))
    exact = Fraction(eps) + d * lam + table + truncation
    assert truncation > 0 and Fraction(p.effective_epsilon) >= exact
    assert p.effective_epsilon <= _float_up_reference(exact * (1 + Fraction(1, 10**30)))
    assert Fraction(p.grid_epsilon) >= Fraction(eps) + d * lam


@pytest.mark.parametrize("eps", [1000.0, 5000.0])
def test_bounds_do_not_underflow_at_large_epsilon(eps):
    """At epsilon 5000 the smallest threshold is ~1e-2172 and e^-(epsilon + 50) is below
    every float: table_rel_error is still checked against mpmath (not 0), and delta is
    rounded up to a positive float, never reported as 0."""
    p = laplace_params(eps, 2.0, 128)
    lam = Fraction(p.granularity) / Fraction(p.scale)
    assert 0 < _realised_rel_errors_mpmath(lam, p.table, p.words_per_row * 10 + 200) <= p.table_rel_error
    assert 0 < p.delta < 1e-300


def test_truncated_sampler_loss_is_within_the_accounted_terms():
    """The sampler's realised pmf (its stored thresholds, truncated to n_bits bits),
    enumerated exactly over its whole support for a small configuration: the worst
    log-ratio between noise values one grid step apart is at most lambda plus the
    table and truncation terms the accounting adds per coordinate, and the truncation
    term is needed (the ratio at 0 vs 1 exceeds lambda + the table term alone)."""
    import mpmath

    from identitydp_fast.privacy.accounting import _truncation_term

    lam, n_bits, words = Fraction(1, 3), 3, 4
    table, rel = threshold_table(lam, n_bits, words)
    one = Fraction(2**(32 * words))
    theta = [Fraction((int(r[0]) << 96) | (int(r[1]) << 64) | (int(r[2]) << 32) | int(r[3])) / one
             for r in table]
    pmf = {0: theta[0]}
    for g in range(2**n_bits):
        pg = (1 - theta[0]) / 2
        for j in range(n_bits):
            pg *= theta[j + 1] if (g >> j) & 1 else 1 - theta[j + 1]
        pmf[1 + g] = pmf[-1 - g] = pg
    assert sum(pmf.values()) == 1
    with mpmath.workdps(60):
        worst = max(abs(mpmath.log(mpmath.mpf(pmf[k].numerator) / pmf[k].denominator
                                   / (mpmath.mpf(pmf[k + 1].numerator) / pmf[k + 1].denominator)))
                    for k in range(-2**n_bits, 2**n_bits))
        table_term = 2 * (n_bits + 1) * rel * (1 + rel)
        trunc = float(_truncation_term(lam, n_bits, 1))
        assert worst <= float(lam) + table_term + trunc
        assert worst > float(lam) + table_term
