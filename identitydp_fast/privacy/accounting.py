"""Parameters and accounting of the epsilon-IdentityDP Laplace mechanism.

Mechanism (what every backend computes, row by row, for a row x in R^d)::

    u = x / ||x||_2                                  unit identity vector
    r = u - mu                                       residual around a public centre (mu = 0 if none)
    r = r * min(1, C' / ||r||_1),  C' = C (1 - 2^-16) clip to the L1 ball of radius C
    n = floor(r / g + 1/2)                           snap to the grid g Z (g a power of two)
    K_i ~ DLap(exp(-g / b)) i.i.d.                   discrete Laplace, integer valued
    v = (n + K) g                                    released noisy residual (exact integers)
    out = normalise(mu + v) * output_norm            post-processing

Guarantee. Neighbouring inputs are two arbitrary identity vectors (replace the person).
After the clip, ||r||_1 <= C for every input, so the L1 sensitivity of r is
Delta_1 = 2C. Snapping changes each coordinate by at most g/2, so the integer vectors
n differ by at most Delta_1 / g + d in L1. Discrete Laplace noise with parameter
p = exp(-lambda), lambda = g / b, b = Delta_1 / epsilon, then gives privacy loss at most
lambda (Delta_1 / g + d) = epsilon + d * g / b: this is ``grid_epsilon``. The
kernels realise each Bernoulli probability theta as floor(theta 2^(32W)) / 2^(32W);
the relative error of every realised probability is below ``table_rel_error``, which
adds at most ``2 d (n_bits + 1) table_rel_error`` to the privacy loss;
the geometric part is truncated to n_bits bits (|K| <= 2^n_bits), which rescales the
non-zero noise values by 1 / (1 - p^(2^n_bits)) and adds at most
d e^-(epsilon + 50) (``_truncation_term``); ``effective_epsilon`` is the sum of the
four terms, each an upper bound, rounded up to a float. An output outside the other
input's support has probability at most ``delta`` (2^n_bits * lambda >= epsilon + 50
makes it ~1e-19 at epsilon 1; rounded up, never reported as 0). So the released vector is
(effective_epsilon, delta)-DP for replace-one-person neighbours; everything computed
from it (renormalisation, the generated face) is post-processing.

What is NOT covered: anything that reaches the output without passing through this
vector (e.g. the attribute path of the generator). That is measured empirically.

Construction: a discrete Laplace on a power-of-two grid, as recommended against the
floating-point attack of Mironov (CCS 2012, "On significance of the least significant
bits for differential privacy"), in the style of Google's "Secure Noise Generation"
(differential-privacy library, 2020) with an integer-only exact-bits geometric
sampler (the binary digits of a geometric variable are independent Bernoulli
variables), so every backend draws the same integers from the same key.
"""
from __future__ import annotations

import dataclasses
import decimal
import fractions
import functools
import math

import numpy as np

#: grid g = 2^(ceil(log2 b) - GRID_BITS): between 2^19 and 2^20 grid steps per scale b.
GRID_BITS = 20
#: tail margin in units of b beyond the worst-case per-coordinate shift (delta ~ e^-50).
TAIL_MARGIN = 50.0
#: largest supported epsilon: the sampler's tables need ~1.44 epsilon bits of precision
#: (events of probability e^-epsilon must keep their exact relative probability).
MAX_EPSILON = 5000.0
#: the clip radius used by the kernels is C (1 - CLIP_SLACK), so float32 rounding of the
#: scaled residual can never push ||r||_1 above C.
CLIP_SLACK = 2.0**-16


def check_epsilon(epsilon, name: str = "epsilon") -> float:
    """epsilon as a float, or TypeError / ValueError: a real number with 0 < epsilon <=
    MAX_EPSILON (the budget a caller of the Anonymizer or the CLI may ask for)."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(epsilon).__name__} {epsilon!r}")
    e = float(epsilon)
    if not (math.isfinite(e) and 0.0 < e <= MAX_EPSILON):
        raise ValueError(f"{name}={epsilon!r} is out of range: it must be > 0 and <= "
                         f"{MAX_EPSILON:g} (privacy.MAX_EPSILON); smaller is more private")
    return e


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity (params are cached)
class LaplaceParams:
    """Everything a backend needs to draw the noise, and what the draw guarantees.

    Attributes:
        epsilon: nominal privacy budget.
        sensitivity: Delta_1 = 2 C, the L1 sensitivity of the clipped residual.
        scale: b = Delta_1 / epsilon, the Laplace scale per coordinate.
        granularity: g, a power of two; every released residual is a multiple of g.
        log2_granularity: log2(g) (an integer).
        n_bits: bits of the geometric magnitude (|K| <= 2^n_bits).
        words_per_row: uint32 words per Bernoulli threshold.
        table: uint32 array (n_bits + 1, words_per_row): row 0 the zero test, row j+1 bit j.
        dim: d, coordinates per vector.
        grid_epsilon: epsilon + d g / b (the cost of snapping the input to the grid), rounded up.
        table_rel_error: largest relative error of any realised Bernoulli probability.
        effective_epsilon: epsilon + d g / b + 2 d (n_bits + 1) table_rel_error (1 + it)
            + the truncation term, rounded up.
        delta: bound on the probability of an output outside the neighbour's support.
    """

    epsilon: float
    sensitivity: float
    scale: float
    granularity: float
    log2_granularity: int
    n_bits: int
    words_per_row: int
    table: np.ndarray
    dim: int
    grid_epsilon: float
    table_rel_error: float
    effective_epsilon: float
    delta: float

    @property
    def clip_radius(self) -> float:
        """C = Delta_1 / 2."""
        return self.sensitivity / 2.0

    @property
    def kernel_clip_radius(self) -> float:
        """The radius the kernels clip to: C (1 - 2^-16) <= C despite float32 rounding."""
        return self.clip_radius * (1.0 - CLIP_SLACK)


def _check_positive_finite(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return value


def laplace_params(epsilon: float, sensitivity: float, dim: int) -> LaplaceParams:
    """Grid, sampler table and privacy accounting for Laplace(sensitivity / epsilon).

    Args:
        epsilon: privacy budget, finite and > 0.
        sensitivity: Delta_1, finite and > 0 (2 C for a clip radius C).
        dim: number of coordinates d that share the budget (>= 1).
    """
    epsilon = _check_positive_finite("epsilon", epsilon)
    if epsilon > MAX_EPSILON:
        raise ValueError(f"epsilon={epsilon!r} exceeds the supported maximum {MAX_EPSILON:g} "
                         "(beyond it the noise no longer hides anything: use no noise instead)")
    sensitivity = _check_positive_finite("sensitivity", sensitivity)
    if int(dim) != dim or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    return _laplace_params_cached(epsilon, sensitivity, int(dim))


@functools.lru_cache(maxsize=256)
def _laplace_params_cached(epsilon: float, sensitivity: float, dim: int) -> LaplaceParams:
    scale = sensitivity / epsilon
    log2_g = math.ceil(math.log2(scale)) - GRID_BITS
    granularity = math.ldexp(1.0, log2_g)
    if not (2.0**-1000 < granularity < 2.0**1000):
        raise ValueError(
            f"epsilon={epsilon!r} with sensitivity={sensitivity!r} gives a noise scale "
            f"{scale!r} outside the supported range")
    n_bits = math.ceil(math.log2((epsilon + TAIL_MARGIN) * scale / granularity))
    if n_bits > 40:
        raise ValueError(f"epsilon={epsilon!r} is too large for the sampler (needs {n_bits} bits)")

    # Exact-enough decimal arithmetic for the thresholds: the smallest probability is
    # about e^-(epsilon + 50); 64 more bits than its exponent give relative error < 2^-60.
    neg_log2_min = (epsilon + TAIL_MARGIN) * math.log2(math.e) + 2
    words = max(2, math.ceil((neg_log2_min + 64) / 32))
    table, rel = threshold_table(fractions.Fraction(granularity) / fractions.Fraction(scale), n_bits, words)

    lam_f = granularity / scale
    # Every term of the bound is computed as an upper bound and rounded UP to a float
    # (_float_up): a float sum rounds to nearest and would drop the tiny terms.
    lam = fractions.Fraction(granularity) / fractions.Fraction(scale)  # exact: g and b are floats
    grid_epsilon = _float_up(fractions.Fraction(epsilon) + dim * lam)
    table_rel_error = rel
    rel_f = fractions.Fraction(rel)
    # log(1 + e) <= e and -log(1 - e) <= e (1 + e); per probability (n_bits + 1) factors,
    # two probabilities per coordinate ratio, d coordinates.
    table_term = 2 * dim * (n_bits + 1) * rel_f * (1 + rel_f)
    truncation_term = _truncation_term(lam, n_bits, dim)
    effective_epsilon = _float_up(fractions.Fraction(epsilon) + dim * lam + table_term
                                  + truncation_term)
    # |K| <= 2^n_bits. Worst per-coordinate shift in grid steps: Delta_1 / g + 1.
    # P(|K| >= m) <= 2 p^m / (1 + p) <= 2 exp(-lambda m) for the exact distribution; the
    # realised one differs by the factor (1 + table_rel_error)^(n_bits + 1) and the
    # truncation's normalisation 1 / (1 - p^(2^n_bits)).
    m = 2**n_bits - (fractions.Fraction(sensitivity) / fractions.Fraction(granularity) + 1)
    t = _exp_up(-lam * 2**n_bits)
    delta = min(1.0, _float_up(2 * dim * _exp_up(-lam * m) * (1 + rel_f) ** (n_bits + 2) / (1 - t)))
    return LaplaceParams(
        epsilon=epsilon, sensitivity=sensitivity, scale=scale, granularity=granularity,
        log2_granularity=log2_g, n_bits=n_bits, words_per_row=words, table=table, dim=dim,
        grid_epsilon=grid_epsilon, table_rel_error=table_rel_error,
        effective_epsilon=effective_epsilon, delta=delta)


_BOUND_CTX = decimal.Context(prec=60, Emin=-10**9, Emax=10**9)


def _float_up(x: fractions.Fraction) -> float:
    """The smallest float >= x (x >= 0): a bound rounded up, never to nearest. Below the
    smallest positive float it is that float (5e-324), never 0."""
    f = float(x)
    if fractions.Fraction(f) < x:
        f = math.nextafter(f, math.inf)
    return f


def _exp_up(t: fractions.Fraction) -> fractions.Fraction:
    """An upper bound on exp(t), also where a float exp would underflow (t ~ -5000).
    decimal's exp is correctly rounded (error <= 1/2 ulp of 60 digits); the factor
    1 + 10^-50 covers it."""
    with decimal.localcontext(_BOUND_CTX):
        e = (decimal.Decimal(t.numerator) / decimal.Decimal(t.denominator)).exp()
        return fractions.Fraction(e) * (1 + fractions.Fraction(1, 10**50))


def _truncation_term(lam: fractions.Fraction, n_bits: int, dim: int) -> fractions.Fraction:
    """The privacy loss added by truncating the geometric magnitude to n_bits bits.

    The sampler's G (the binary digits drawn independently, bits >= n_bits dropped) has
    P(G = g) = p^g (1 - p) / (1 - p^(2^n_bits)) for 0 <= g < 2^n_bits: the untruncated
    geometric scaled by 1 / (1 - t), t = p^(2^n_bits) = exp(-lambda 2^n_bits). The scale
    cancels in a ratio of two non-zero noise values but not in a ratio of zero to
    non-zero, so each coordinate's loss grows by at most -log(1 - t) <= t / (1 - t);
    d coordinates: d t / (1 - t). 2^n_bits lambda >= epsilon + 50, so t <= e^-(epsilon + 50).
    """
    t = _exp_up(-lam * 2**n_bits)
    return dim * t / (1 - t)


def threshold_table(lam, n_bits: int, words: int) -> tuple[np.ndarray, float]:
    """Bernoulli thresholds of the sampler for DLap(p = exp(-lam)).

    Row 0: theta_z = (1 - p) / (1 + p) (the zero test); row j + 1: p^(2^j) / (1 + p^(2^j))
    (bit j of the geometric magnitude). Each theta is stored as
    floor(theta 2^(32 words)) in ``words`` uint32, most significant first; the sampler
    realises exactly that fraction. ``lam`` may be a float, a decimal.Decimal or (exact)
    a fractions.Fraction such as Fraction(g) / Fraction(b).

    Returns the (n_bits + 1, words) uint32 table (read-only) and the largest relative
    error of a realised probability (theta or 1 - theta), rounded up.
    """
    # Every operation runs in this context, operators included (``1 - p`` etc. use the
    # current context): a host that lowered the thread's ambient precision must not
    # change the table (tests/test_accounting.py runs it under prec = 3).
    ctx = decimal.Context(prec=int(words * 32 * 0.302) + 30)
    with decimal.localcontext(ctx):
        if isinstance(lam, fractions.Fraction):
            lam = decimal.Decimal(lam.numerator) / decimal.Decimal(lam.denominator)
        else:
            lam = +decimal.Decimal(lam)
        p = (-lam).exp()
        probs = [(1 - p) / (1 + p)]
        for j in range(n_bits):
            pj = p ** (2**j)
            probs.append(pj / (1 + pj))
        one = decimal.Decimal(2) ** (32 * words)
        table = np.zeros((n_bits + 1, words), dtype=np.uint32)
        rel_err = decimal.Decimal(0)
        # each theta above carries at most a few units of 10^-prec relative error from the
        # decimal arithmetic; bound it by 10^-(prec - 5) and add it to the floor's error
        arith = decimal.Decimal(10) ** -(ctx.prec - 5)
        for row, theta in enumerate(probs):
            t_int = int((theta * one).to_integral_value(rounding=decimal.ROUND_FLOOR))
            realised = decimal.Decimal(t_int) / one
            err = abs(theta - realised) + arith * theta
            if theta > 0:
                rel_err = max(rel_err, err / theta)
            rel_err = max(rel_err, err / (1 - theta))
            for t in range(words):
                table[row, t] = (t_int >> (32 * (words - 1 - t))) & 0xFFFFFFFF
    table.setflags(write=False)
    return table, _float_up(fractions.Fraction(rel_err))


def discrete_laplace_pmf(k: np.ndarray, params: LaplaceParams) -> np.ndarray:
    """Exact pmf of the untruncated DLap(exp(-g/b)) at integers k (float64)."""
    lam = params.granularity / params.scale
    p = math.exp(-lam)
    return (-math.expm1(-lam)) / (1 + p) * np.exp(-lam * np.abs(np.asarray(k, dtype=np.float64)))
