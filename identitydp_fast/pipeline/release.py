"""Release (pipeline stage 5): the epsilon-IdentityDP release of each face's identity.

``release(bottleneck, descriptors, epsilon, key)`` is what an anonymisation feeds the
generator:

1. ``privatise``: the mechanism (identitydp_fast.privacy.identity_dp.IdentityDP) with the
   public DP parameters stored in the model's ``IdentityBottleneck`` buffers
   (reference/bottleneck.py): ``dp_center`` mu, ``dp_clip`` C (Delta_1 = 2C for every
   input) and ``dp_output_norm`` (the norm it releases at);
2. with ``typical``, ``to_typical_identity``: post-processing of the released vector onto
   the shell where real identities live (same guarantee).

``release_faces`` runs it for the faces of one call (one mechanism call on stream 0: face
i reads nonces (0, 0, 128 i + c)) and returns the ``ReleaseRecord`` that the release
ledger (privacy/ledger.py) keeps and every ``FaceResult`` reports.

Guarantee: each released vector is (effective_epsilon, delta)-DP with respect to replacing
the person (privacy/GUARANTEE.md); the attribute path, missed faces and metadata are not
covered. Tests: tests/test_release.py.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..privacy.identity_dp import IdentityDP, IdentityDPResult
from ..privacy.ledger import UNKNOWN, ReleaseLedger, ReleaseRecord


def privatise(bottleneck, identity: torch.Tensor, epsilon: float, key: bytes | str | None = None,
              backend: str = "reference", stream: int = 0) -> tuple[torch.Tensor, IdentityDPResult]:
    """Release (N, D) identity descriptors with epsilon-IdentityDP using the bottleneck's
    stored dp_center / dp_clip / dp_output_norm. Returns (released (N, D) float32, result).

    The guarantee is IdentityDP's (identitydp_fast/privacy/identity_dp.py): Delta_1 = 2
    dp_clip for every input, effective epsilon in ``result``. key=None draws a fresh key
    from the OS CSPRNG (the default); a given key is the flagged reproducible mode.
    """
    mech = IdentityDP(epsilon, center=bottleneck.dp_center.detach().float().cpu(),
                      clip=float(bottleneck.dp_clip), output_norm=float(bottleneck.dp_output_norm),
                      backend=backend)
    result = mech(identity.detach().float().contiguous(), key=key, stream=stream)
    return result.vectors, result


def typical_residual_norm(bottleneck) -> float:
    """rho = sqrt(E ||u - mean(u)||^2) of the training unit descriptors u, from the
    bottleneck's stored whitening statistics (input_std is the per-coordinate std of u r,
    so rho = ||input_std|| / r). Public: a function of the published statistics only."""
    return float(bottleneck.input_std.double().norm() / bottleneck.dp_output_norm.double())


def to_typical_identity(bottleneck, released: torch.Tensor) -> torch.Tensor:
    """Post-process released vectors onto the shell where real identities live.

    On the unit sphere, ||u - mu||^2 = 1 + m^2 - 2 m cos(u, mu) (m = ||mu||), so the
    distance from the public centre mu = dp_center is set by the angle to it alone.
    Write u = v / ||v|| = cos(a) mu^ + sin(a) e (e: unit, orthogonal to mu). A vector
    farther than rho from mu (cos(a) < c* = (1 + m^2 - rho^2) / (2 m)) is turned
    towards mu, keeping e, to exactly that distance:

        u' = c* mu^ + sqrt(1 - c*^2) e,     out = r u'      (r = dp_output_norm);

    nearer vectors only get the norm r. rho = ``typical_residual_norm(bottleneck)``.

    Why: below epsilon ~ 300 the Laplace noise dominates, and a released unit vector
    lies 2-3 rho from the centre (measured for the default model: median 3.25 rho at
    epsilon 1, 2.3 rho at 100, 1.03 rho at 1000), while training identities lie at
    0.84-1.22 rho (1st-99th percentile). The generator, never shown such vectors,
    painted artefacts; on the shell it renders a typical (random) identity.

    Guarantee: the map uses only the released vector and public statistics of the
    model, so it is post-processing and the release keeps its (effective_epsilon,
    delta)-DP guarantee exactly. (N, D) -> (N, D) float32."""
    v = released.detach().to(torch.float64)
    mu = bottleneck.dp_center.detach().to(device=v.device, dtype=torch.float64)
    m = float(mu.norm())
    rho = typical_residual_norm(bottleneck)
    r = float(bottleneck.dp_output_norm)
    u = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)
    if m < 1e-12 or not rho < 1 + m:       # no centre (or no spread): nothing to do
        return (u * r).to(torch.float32)
    mu_hat = mu / m
    c_star = min(1.0, max(-1.0, (1 + m * m - rho * rho) / (2 * m)))
    cos = u @ mu_hat                                               # (N,)
    e = u - cos[:, None] * mu_hat
    e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-300)
    turned = c_star * mu_hat + math.sqrt(max(0.0, 1 - c_star * c_star)) * e
    u = torch.where((cos < c_star)[:, None], turned, u)
    return (u * r).to(torch.float32)


def release(bottleneck, identity: torch.Tensor, epsilon: float, key: bytes | str | None = None,
            backend: str = "reference", stream: int = 0, typical: bool = True
            ) -> tuple[torch.Tensor, IdentityDPResult]:
    """What an anonymisation feeds the generator: ``privatise`` (the DP mechanism), then,
    with ``typical``, ``to_typical_identity`` (post-processing: same guarantee)."""
    vectors, result = privatise(bottleneck, identity, epsilon, key=key, backend=backend,
                                stream=stream)
    return (to_typical_identity(bottleneck, vectors) if typical else vectors), result


def release_faces(bottleneck, descriptors: torch.Tensor, epsilon: float, key, backend: str,
                  typical: bool = True, ledger: ReleaseLedger | None = None
                  ) -> tuple[torch.Tensor, ReleaseRecord | None]:
    """(released (N, 128) float32 CPU, ReleaseRecord) from one call's descriptors, in one
    mechanism call on stream 0 (face i: nonces (0, 0, 128 i + c)); recorded in ``ledger``
    when given. No faces: an empty tensor and None."""
    if descriptors.shape[0] == 0:
        return torch.empty(0, 128, dtype=torch.float32), None
    released, res = release(bottleneck, descriptors, epsilon, key=key, backend=backend,
                            stream=0, typical=typical)
    vectors = released.to("cpu", torch.float32)
    rec = ReleaseRecord(res.epsilon, res.effective_epsilon, res.delta, res.key_supplied,
                        res.key_id)
    if ledger is not None:
        ledger.add(vectors, rec)
    return vectors, rec


def check_identities(identities, n: int, d: int) -> torch.Tensor:
    """Caller identity vectors (for rendering) as an (n, d) float32 CPU tensor, or
    TypeError / ValueError naming the problem."""
    if isinstance(identities, torch.Tensor):
        t = identities.detach()
    elif isinstance(identities, (np.ndarray, list, tuple)):
        try:
            t = torch.from_numpy(np.asarray(identities, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"identities must be an (N, {d}) float array or tensor: {exc}") from None
    else:
        raise TypeError(f"identities must be an (N, {d}) float tensor or array, got "
                        f"{type(identities).__name__}")
    if n == 0 and t.numel() == 0:
        return torch.empty(0, d, dtype=torch.float32)
    if not t.is_floating_point():
        raise TypeError(f"identities must be floating point, got {t.dtype}")
    if t.dim() != 2 or tuple(t.shape) != (n, d):
        raise ValueError(f"identities must have shape (N, {d}) with N = len(faces) = {n}, "
                         f"got {tuple(t.shape)}")
    t = t.to("cpu", torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise ValueError("identities contain NaN or inf")
    if bool((t.abs().amax(dim=1) == 0).any()):
        raise ValueError("identities contain an all-zero row: a zero vector has no identity direction")
    return t.contiguous()


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: numpy landmarks do not compare as bools
class FaceResult:
    """What was done to one face.

    box: (left, top, right, bottom) inclusive pixels (the detector's box, clipped to the
        image; a caller's FaceRecord box as given).
    landmarks: (5, 2) float64 read-only, dlib's shape_predictor_5 order (may lie outside
        the image for faces cut by its border).
    score: detector confidence (nan for caller-supplied faces).
    epsilon: the nominal budget of the identity release; effective_epsilon and delta: what
        it guarantees ((effective_epsilon, delta)-DP, privacy/identity_dp.py). nan when the
        vector was not released by this Anonymizer (``render`` with foreign vectors).
    key_supplied: True when the caller supplied the key (reproducible mode).
    key_id: public fingerprint of the key (privacy.keys.key_id; "" when unknown).
    """

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    score: float
    epsilon: float
    effective_epsilon: float
    delta: float
    key_supplied: bool
    key_id: str = ""

    def __post_init__(self):
        lm = np.array(self.landmarks, dtype=np.float64)
        lm.setflags(write=False)
        object.__setattr__(self, "landmarks", lm)
        object.__setattr__(self, "box", tuple(int(v) for v in self.box))

    def to_dict(self) -> dict:
        """JSON-ready dict (landmarks as nested lists; nan stays float nan)."""
        d = dataclasses.asdict(self)
        d["landmarks"] = self.landmarks.tolist()
        d["box"] = list(self.box)
        return d


def face_result(face, rec: ReleaseRecord | None) -> FaceResult:
    """The FaceResult of a FaceRecord released under ``rec`` (None: UNKNOWN, all nan)."""
    rec = rec or UNKNOWN
    return FaceResult(box=face.box, landmarks=face.landmarks, score=float(face.score),
                      epsilon=rec.epsilon, effective_epsilon=rec.effective_epsilon,
                      delta=rec.delta, key_supplied=rec.key_supplied, key_id=rec.key_id)
