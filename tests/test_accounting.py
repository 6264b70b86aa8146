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


def test_thresholds_are_the_exact_binary_expansion():
    """Row j + 1 = floor(theta_j 2^64) for p = 1/2 (theta_j = 2^-2^j / (1 + 2^-2^j))."""
    table, _ = threshold_table(Fraction(math.log(2)), 4, 2)
    for j in range(4):
        theta = Fraction(1, 2**(2**j) + 1)
        want = math.floor(theta * 2**64)
        got = (int(table[j + 1, 0]) << 32) | int(table[j + 1, 1])
        assert abs(got - want) <= 2**14  # log(2) is a float: theta is off by ~1e-16 relative
    zero = (int(table[0, 0]) << 32) | int(table[0, 1])
    assert abs(zero - math.floor(Fraction(1, 3) * 2**64)) <= 2**12


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


def _realised_rel_errors_mpmath(lam: Fraction, table: np.ndarray) -> float:
    """Largest relative error of each realised probability (theta and 1 - theta) against an
    independent 2,000-digit mpmath computation of the same thresholds."""
    import mpmath

    mp = mpmath.mp.clone() if hasattr(mpmath.mp, "clone") else mpmath.mp
    with mpmath.workdps(2000):
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
