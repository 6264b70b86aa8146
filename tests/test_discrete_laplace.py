"""Discrete Laplace sampler: exact equality of every backend with the reference, the
stream layout (no ChaCha20 block used twice), and goodness of fit.

Statistical tests use fixed keys, so each outcome is deterministic; the thresholds are
set so that a correct sampler would fail a given test with probability ALPHA = 1e-4
over the choice of key (a false alarm).
"""
from __future__ import annotations

import math
import secrets
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy import stats

from identitydp_fast.ops import discrete_laplace
from identitydp_fast.privacy.accounting import LaplaceParams, laplace_params, threshold_table
from identitydp_fast.reference import discrete_laplace as reference_module

ALPHA = 1e-4
N_STAT = 1_000_000
D = 128


def _params(eps: float) -> LaplaceParams:
    return laplace_params(eps, 2 * math.sqrt(D), D)


def _small_lambda_params(lam: float, n_bits: int = 6, words: int = 2) -> LaplaceParams:
    """A coarse sampler (p = exp(-lam)) whose pmf on small integers can be tested bin by bin."""
    table, rel = threshold_table(Fraction(lam), n_bits, words)
    return LaplaceParams(epsilon=1.0, sensitivity=1.0, scale=1.0 / lam, granularity=1.0,
                         log2_granularity=0, n_bits=n_bits, words_per_row=words, table=table, dim=1,
                         grid_epsilon=1.0, table_rel_error=rel, effective_epsilon=1.0, delta=0.0)


@pytest.mark.parametrize("eps", [0.1, 1.0, 30.0, 1000.0])
@pytest.mark.parametrize("n", [1, 3, 127, 1000])
def test_kernels_equal_reference_exactly(eps, n, kernel):
    backend, device = kernel
    key, stream, offset = secrets.token_bytes(32), secrets.randbelow(2**64), secrets.randbelow(2**20)
    params = _params(eps)
    got = discrete_laplace(key, stream, n, params, backend, device, sample_offset=offset)
    want = discrete_laplace(key, stream, n, params, "reference", "cpu", sample_offset=offset)
    assert got.dtype == torch.int64 and got.shape == (n,)
    assert torch.equal(got.cpu(), want)


def test_no_block_is_used_twice(monkeypatch):
    """Every (key, nonce, counter) block computed for one call is distinct."""
    seen = []
    original = reference_module.chacha20_blocks

    def recording(key_words, counters, nonces):
        n0, n1, n2 = (torch.as_tensor(v).expand_as(counters) for v in nonces)
        seen.extend(zip(n0.tolist(), n1.tolist(), n2.tolist(), counters.tolist()))
        return original(key_words, counters, nonces)

    monkeypatch.setattr(reference_module, "chacha20_blocks", recording)
    params = _params(1000.0)  # the widest table: more than one block per sample
    discrete_laplace(bytes(32), 7, 5000, params, "reference", "cpu")
    assert len(seen) >= 5000 * 2
    assert len(set(seen)) == len(seen)
    # and the nonce carries the sample index: samples never share a stream
    assert {s[2] for s in seen} == set(range(5000))


def test_words_consumed_per_sample():
    """Each sample reads 1 + (n_bits + 1) words plus ~2^-32 per Bernoulli for ties."""
    params = _params(1.0)
    streams = reference_module.WordStreams(bytes(32), 0, torch.arange(1000))
    everyone = torch.ones(1000, dtype=torch.bool)
    streams.next(everyone)
    for row in np.asarray(params.table):
        reference_module.bernoulli(streams, [int(w) for w in row], everyone)
    assert int(streams.pos.min()) == params.n_bits + 2


def _chi_square_pvalue(observed: np.ndarray, expected: np.ndarray) -> float:
    stat = float(((observed - expected) ** 2 / expected).sum())
    return float(stats.chi2.sf(stat, df=len(observed) - 1))


def _exact_cdf(k: np.ndarray, p: float) -> np.ndarray:
    """P(K <= k) of the untruncated DLap(p)."""
    k = np.asarray(k, dtype=np.float64)
    return np.where(k >= 0, 1 - p ** (k + 1) / (1 + p), p ** (-k) / (1 + p))


@pytest.mark.slow
def test_goodness_of_fit_fine_grid(impl):
    """10^6 draws at epsilon = 1 (b/g ~ 2^19.5) against the exact distribution in 50
    equiprobable bins, plus mean and variance z-tests."""
    backend, device = impl
    params = _params(1.0)
    k = discrete_laplace(b"\x01" * 32, 3, N_STAT, params, backend, device).cpu().numpy()
    lam = params.granularity / params.scale
    p = math.exp(-lam)
    qs = np.linspace(0, 1, 51)[1:-1]
    edges = np.round(params.scale / params.granularity * np.where(
        qs < 0.5, np.log(2 * qs), -np.log(2 * (1 - qs)))).astype(np.int64)
    cdf = np.concatenate([[0.0], _exact_cdf(edges, p), [1.0]])
    expected = np.diff(cdf) * N_STAT
    observed = np.bincount(np.searchsorted(edges, k, side="left"), minlength=50).astype(float)
    assert _chi_square_pvalue(observed, expected) > ALPHA
    # mean 0, variance 2p/(1-p)^2 (grid units); kurtosis of Laplace = 6 -> Var(s^2) = 5 var^2 / n
    var = 2 * p / (1 - p) ** 2
    z = stats.norm.isf(ALPHA / 2)
    assert abs(k.mean()) < z * math.sqrt(var / N_STAT)
    assert abs(k.var() / var - 1) < z * math.sqrt(5 / N_STAT)


@pytest.mark.slow
def test_goodness_of_fit_coarse_pmf(impl):
    """p = 1/2: the pmf itself, value by value, over 10^6 draws."""
    backend, device = impl
    params = _small_lambda_params(math.log(2))
    k = discrete_laplace(b"\x02" * 32, 0, N_STAT, params, backend, device).cpu().numpy()
    assert np.abs(k).max() <= 2**params.n_bits
    values = np.arange(-8, 9)
    p = 0.5
    pmf = (1 - p) / (1 + p) * p ** np.abs(values)
    tail = 1 - pmf.sum()
    observed = np.array([(k == v).sum() for v in values] + [(np.abs(k) > 8).sum()], dtype=float)
    expected = np.append(pmf, tail) * N_STAT
    assert _chi_square_pvalue(observed, expected) > ALPHA
    assert abs(k.mean()) < stats.norm.isf(ALPHA / 2) * math.sqrt(2 * p / (1 - p) ** 2 / N_STAT)


def test_statistical_test_detects_a_wrong_scale():
    """The fine-grid test above would fail for noise of 0.9x the scale (power check)."""
    params, wrong = _params(1.0), _params(1.0 / 0.9)
    k = discrete_laplace(b"\x01" * 32, 3, N_STAT, wrong, "cpu" if _has_cpu() else "reference").numpy()
    p = math.exp(-params.granularity / params.scale)
    var = 2 * p / (1 - p) ** 2
    assert abs(k.var() / var - 1) > stats.norm.isf(ALPHA / 2) * math.sqrt(5 / N_STAT)


def _has_cpu() -> bool:
    from identitydp_fast import _backends
    return _backends.available("cpu", "cpu")
