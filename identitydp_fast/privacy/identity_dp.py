"""The user-facing epsilon-IdentityDP mechanism on identity vectors.

``IdentityDP(epsilon, center=None, clip=None)(vectors)`` releases, for every row of an
(N, d) float tensor, ``normalise(mu + (snap(clip(u - mu)) + K) g) * output_norm`` with
``u = row / ||row||_2`` and K discrete Laplace noise of scale ``b = Delta_1 / epsilon``.

Sensitivity: the residual ``u - mu`` is clipped (by scaling) into the L1 ball of radius
C, so Delta_1 = 2C holds for every possible input, not just typical ones:

* no centre, no clip: C = sqrt(d) (a unit vector has ||u||_1 <= sqrt(d)), Delta_1 = 2 sqrt(d);
* a centre mu and no clip: C = sqrt(d) + ||mu||_1;
* an explicit clip C: Delta_1 = 2C (with a centre near the data, C ~ 4-5 cuts the noise
  ~2.5x for dlib's descriptors, DESIGN.md section 4).

Guarantee (identitydp_fast/privacy/accounting.py, GUARANTEE.md): the released vectors are
(effective_epsilon, delta)-DP per row with respect to replacing the person behind the
row's identity vector; ``effective_epsilon`` = epsilon + d g / b (grid rounding) + a
sampler-precision term + a truncation term, rounded up; delta < 5e-20 at d = 128. It
covers the identity vector only: whatever else reaches an output (a generator's
attribute path) is not covered. The fine print:

* domain: finite rows with a non-zero norm; NaN, inf, all-zero rows and rows whose norm
  overflows float32 are refused (ValueError), never released;
* computational: the noise is ChaCha20 used as a pseudo-random function of the key, so
  the guarantee holds against anyone who cannot distinguish ChaCha20 from random; with a
  caller-supplied ``key`` it also assumes that key is secret and used for one release
  (a reused key and stream repeat the noise exactly: KeyReuseWarning);
* public parameters: ``center`` and ``clip`` (and a model's typical-identity radius) are
  treated as public; they are public only for people whose data did not produce them;
* composition: the guarantee is per release. k releases of one person (k photos, k
  tracks, k runs without a key) cost k epsilon.
"""
from __future__ import annotations

import dataclasses
import math
import warnings

import torch

from .. import _backends, ops
from . import keys as _keys
from .accounting import LaplaceParams, laplace_params


@dataclasses.dataclass(frozen=True)
class IdentityDPResult:
    """What a call released and what it guarantees.

    vectors: (N, d) float32 released identity vectors (norm ``output_norm``).
    noisy_residual: (N, d) float32 released residual (n + K) g before renormalisation.
    epsilon: nominal budget; effective_epsilon: after grid rounding and sampler precision.
    delta: probability bound of the truncated noise tail.
    sensitivity: Delta_1 (L1); scale: b = Delta_1 / epsilon; granularity: grid g.
    key_supplied: True when the caller passed the key (reproducible mode).
    key_id: public fingerprint of the key; stream: the stream id used.
    backend: the backend that ran.
    """

    vectors: torch.Tensor
    noisy_residual: torch.Tensor
    epsilon: float
    effective_epsilon: float
    delta: float
    sensitivity: float
    scale: float
    granularity: float
    key_supplied: bool
    key_id: str
    stream: int
    backend: str

    def summary(self) -> str:
        n, d = self.vectors.shape
        mode = ("caller-supplied key (reproducible; the guarantee holds only while the key is "
                "secret and used for this release alone)" if self.key_supplied else "fresh random key")
        return (f"released {n} identity vector(s) of dimension {d} with epsilon={self.epsilon:g} "
                f"(effective {self.effective_epsilon:.6g}, delta<={self.delta:.2g}); "
                f"Delta_1={self.sensitivity:.6g}, scale b={self.scale:.6g}, grid g={self.granularity:.3g}; "
                f"{mode}, key id {self.key_id}, stream {self.stream}; backend {self.backend}")


class IdentityDP:
    """epsilon-IdentityDP on identity vectors (see the module docstring for the math).

    Args:
        epsilon: privacy budget per vector, finite and > 0.
        center: optional public centre mu, (d,) (computed from public/training data).
        clip: optional L1 radius C of the residual; Delta_1 = 2C.
        output_norm: L2 norm of the released vectors (a public constant, e.g. the typical
            norm of the encoder's descriptors; never the input's own norm).
        backend: 'auto', 'reference', 'cpu', 'cuda' or 'triton'.
    """

    def __init__(self, epsilon: float, center=None, clip: float | None = None,
                 output_norm: float = 1.0, backend: str = "auto"):
        self.epsilon = _positive_finite("epsilon", epsilon)
        self.output_norm = _positive_finite("output_norm", output_norm)
        self.center = None if center is None else _as_center(center)
        if clip is not None:
            clip = _positive_finite("clip", clip)
        self.clip = clip
        if backend != "auto" and backend not in _backends.NAMES:
            raise ValueError(f"backend={backend!r} is not one of {_backends.NAMES} or 'auto'")
        self.backend = backend

    def clip_radius(self, dim: int) -> float:
        """C for vectors of dimension ``dim``."""
        if self.clip is not None:
            return self.clip
        c = math.sqrt(dim)
        if self.center is not None:
            c += float(self.center.abs().sum())
        return c

    def params(self, dim: int) -> LaplaceParams:
        """Noise parameters and accounting for vectors of dimension ``dim``."""
        return laplace_params(self.epsilon, 2.0 * self.clip_radius(dim), dim)

    def __call__(self, vectors: torch.Tensor, key: bytes | str | None = None,
                 stream: int = 0) -> IdentityDPResult:
        """Release noisy identity vectors for the rows of ``vectors`` ((N, d) float tensor)."""
        x = _check_vectors(vectors)
        n, d = x.shape
        center = None
        if self.center is not None:
            if self.center.numel() != d:
                raise ValueError(f"center has {self.center.numel()} coordinates but vectors have d={d}")
            center = self.center.to(x.device)
        if not isinstance(stream, int) or isinstance(stream, bool) or not 0 <= stream < 2**64:
            raise ValueError(f"stream must be an integer in [0, 2^64), got {stream!r}")
        if n * d > 2**32:
            raise ValueError(f"N * d must be <= 2^32 per call (one nonce per coordinate), got {n * d}")
        key_supplied = key is not None
        key = _keys.check_key(key) if key_supplied else _keys.fresh_key()
        if key_supplied and _keys.note_use(key, stream):
            warnings.warn(f"key {_keys.key_id(key)} was already used on stream {stream} in this "
                          f"process: this release repeats that one's noise, and the difference of "
                          f"the two releases reveals the difference of their inputs. Give every "
                          f"release its own key (or stream)", _keys.KeyReuseWarning, stacklevel=2)
        backend = _backends.resolve(self.backend, x.device)
        params = self.params(d)
        out, v = ops.identity_dp(x, center, params, key, stream, self.output_norm, backend)
        return IdentityDPResult(
            vectors=out, noisy_residual=v, epsilon=self.epsilon,
            effective_epsilon=params.effective_epsilon, delta=params.delta,
            sensitivity=params.sensitivity, scale=params.scale, granularity=params.granularity,
            key_supplied=key_supplied, key_id=_keys.key_id(key), stream=stream, backend=backend)


def _positive_finite(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
            isinstance(value, torch.Tensor) and value.numel() == 1):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return value


def _as_center(center) -> torch.Tensor:
    c = torch.as_tensor(center)
    if c.dim() != 1 or c.numel() == 0:
        raise ValueError(f"center must be a non-empty 1-D vector, got shape {tuple(c.shape)}")
    if not c.is_floating_point():
        raise TypeError(f"center must be a floating-point vector, got dtype {c.dtype}")
    c = c.detach().to(torch.float32).contiguous()
    if not bool(torch.isfinite(c).all()):
        raise ValueError("center contains NaN or inf")
    return c


def _check_vectors(vectors) -> torch.Tensor:
    if not isinstance(vectors, torch.Tensor):
        raise TypeError(f"vectors must be a torch.Tensor of shape (N, d), got {type(vectors).__name__}")
    if vectors.dim() != 2:
        raise ValueError(f"vectors must have shape (N, d), got shape {tuple(vectors.shape)}")
    n, d = vectors.shape
    if n == 0 or d == 0:
        raise ValueError(f"vectors must be non-empty, got shape {tuple(vectors.shape)}")
    if vectors.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise TypeError(f"vectors must be a floating-point tensor, got dtype {vectors.dtype}")
    if not vectors.is_contiguous():
        raise ValueError("vectors must be contiguous (row-major); call .contiguous() first")
    if vectors.device.type not in ("cpu", "cuda"):
        raise ValueError(f"vectors must be on a CPU or CUDA device, got {vectors.device}")
    x = vectors.detach().to(torch.float32)
    finite = torch.isfinite(x).all(dim=1)
    if not bool(finite.all()):
        rows = torch.nonzero(~finite).flatten()[:5].tolist()
        raise ValueError(f"vectors contain NaN or inf (rows {rows})")
    zero = (x.abs().amax(dim=1) == 0)
    if bool(zero.any()):
        rows = torch.nonzero(zero).flatten()[:5].tolist()
        raise ValueError(f"vectors contain all-zero rows {rows}: a zero vector has no identity direction")
    # Rows whose squared norm under/overflows float32 cannot be normalised exactly.
    sq = (x * x).sum(dim=1)
    bad = ~torch.isfinite(sq) | (sq == 0)
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten()[:5].tolist()
        raise ValueError(f"vectors rows {rows} have a norm outside float32 range; rescale them")
    return x.contiguous()
