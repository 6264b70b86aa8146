"""Anonymizer: an image in, the same image out with every face replaced, the identity
change set by an epsilon-IdentityDP budget.

    from identitydp_fast import Anonymizer
    anon = Anonymizer()                        # packaged prior-256 model, epsilon DEFAULT_EPSILON
    out, results = anon.anonymize(image)       # numpy / torch / PIL in, the same kind out

This module only composes the stages of identitydp_fast/pipeline/ (one module each,
every face of an image batched through each network in one forward), checks the caller's
arguments and holds the per-instance state: decode -> detect -> align -> identity ->
release -> attributes -> generate -> blend. Input and output kinds: pipeline/decode.py
(pixels outside the pasted ellipses come back bit-identical; the input is never modified).

What epsilon guarantees (privacy/GUARANTEE.md): each face's released identity vector is
(effective_epsilon, delta)-DP with respect to replacing the person, reported per face in
``FaceResult``. The attribute path (the crop with its inner face blurred) is NOT covered;
that leak is measured, not claimed (``identitydp evaluate``, docs/MODEL_CARD.md).

Keys: ``key=None`` draws a fresh 256-bit key from the OS CSPRNG for the call; a caller key
(32 bytes or 64 hex characters) is the reproducible mode. All faces of a call are released
in one mechanism call on stream 0, so face i's noise depends only on (key, i): give every
release its own key (the video pipeline derives one per track).

Threads: one Anonymizer may be used from many threads at once (tests/test_anonymizer.py):
the networks run under inference mode and keep no per-call state, pipeline/detect.py keeps
one dlib HOG detector per thread (the CNN detectors are read-only), CUDA-graph replays are
serialised. Geometry (warps, chips,
paste-back) runs on the CPU, the networks and the noise on ``device``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from . import _backends
from .pipeline import align, attributes, decode, detect, generate, identity, release
from .pipeline.blend import blend_crops, fit_rendered, paste_faces, paste_mask
from .pipeline.detect import FaceRecord
from .pipeline.release import FaceResult
from .privacy import keys as _keys
from .privacy.accounting import check_epsilon
from .privacy.ledger import ReleaseLedger

#: default budget per face (docs/MODEL_CARD.md, "Choice of the default epsilon", fast-128; for
#: prior-256 detection, landmark shift and PSNR are flat from epsilon 1 to 1000 as well,
#: docs/MODEL_CARD_prior-256.md): on 80
#: held-out LFW probes detection, landmark shift and PSNR outside the face are flat from
#: epsilon 1 to 1000 while re-identification rises (rank-1 0.175 at 1, 0.53 at 100): the
#: smallest grid value costs no measured utility and gives the strongest guarantee.
DEFAULT_EPSILON = 1.0


class Anonymizer:
    """Replace every face of an image with a generated face whose identity is released
    with epsilon-IdentityDP (see the module docstring for the pipeline and the guarantee).

    Args:
        model: None (the packaged default, ``DEFAULT_MODEL_PATH``, or ``$IDP_WEIGHTS``), a
            path to a weights file (AEI-Net: models/weights.py; prior-256:
            models/prior_weights.py), or a loaded ``reference.aei_net.AEINet`` or
            ``reference.prior_mix.PriorMixGenerator`` (moved to ``device``, eval mode).
            prior-256 faces are drawn on the prior's canvas (``eyes_y``), then re-aligned
            to the photo's landmarks and colour-matched at the seam before the paste.
        epsilon: default budget per face, 0 < epsilon <= privacy.accounting.MAX_EPSILON
            (5000); each call may pass its own.
        device: where the networks and the noise run ('cpu', 'cuda', 'cuda:1', ...).
        backend: 'auto' (cuda > triton > reference on a GPU, cpu > reference on the CPU),
            'reference', 'cpu', 'cuda' or 'triton': the generator's, encoder's and noise's.
        detector: one of pipeline.detect.DETECTORS: 'centerface' (the default, measured
            best: bench/DETECTORS.md), 'retinaface', 'hog' (dlib's HOG + SVM) or 'mmod'
            (dlib's CNN, slow on the CPU).
        upsample: dlib: how often the detector doubles the image first (0..4; faces down to
            ~80 / 2^upsample pixels, ~4x time per step); CNN: 0 half size, 1 the image as
            it is, 2..4 extra tiled passes at 2x..8x for small faces.
        min_score: detections scoring below it are dropped (caller faces are kept). None:
            the detector's default (pipeline.detect.DEFAULT_MIN_SCORE: a CNN probability
            chosen on the dev set's precision-recall curve; HOG 0.0 keeps every detection).
        min_size: detections whose box side is below it (pixels) are dropped (0: keep all).
        dtype: torch.float32, or float16 / bfloat16 for the identity encoder and the
            generator (backend 'triton'); the noise and released vectors stay float32.
        cuda_graph_batches: face counts (e.g. ``(1, 2, 4)``) whose generator call replays a
            CUDA graph (pipeline/generate.py); GPU engine backends only.
        typical_identity: post-process each released vector onto the shell of typical
            identities (pipeline/release.py ``to_typical_identity``, same guarantee; without
            it low epsilons paint artefacts, docs/MODEL_CARD.md). False: the raw release.
    """

    def __init__(self, model=None, epsilon: float = DEFAULT_EPSILON, device="cpu",
                 backend: str = "auto", detector: str = detect.DEFAULT_DETECTOR, upsample: int = 1,
                 min_score: float | None = None, min_size: int = 0, dtype: torch.dtype = torch.float32,
                 cuda_graph_batches: Sequence[int] = (), typical_identity: bool = True):
        self.epsilon = check_epsilon(epsilon)
        self.min_score = detect.check_options(detector, upsample, min_size, min_score)
        self.detector, self.upsample, self.min_size = detector, upsample, min_size
        self.device = _backends.check_device(device)
        self.backend = _backends.resolve(backend, self.device)
        graphs = generate.check_options(self.device, self.backend, dtype, cuda_graph_batches)
        self.dtype, self.typical_identity = dtype, bool(typical_identity)

        self.model, self.model_path = generate.load_model(model, self.device)
        self.crop_size = s = int(self.model.config.crop_size)
        self.eyes_y = float(getattr(self.model.config, "eyes_y", align.EYES_Y))
        self._fits_rendered = generate.is_prior_model(self.model)  # realign + colour match
        self.degrade_sigma = attributes.trained_sigma(self.model, self.model_path)
        self._generator = generate.Generator(self.model, self.backend, self.device, dtype, graphs,
                                             str(self.model_path or "in memory"))
        self._encoder = identity.IdentityEncoder(self.backend, self.device, dtype)
        # geometry runs on the CPU: the warp kernel where _C is built, the reference otherwise
        self._geometry_backend = ("reference" if self.backend == "reference"
                                  else _backends.resolve("auto", "cpu"))
        self.paste_mask = paste_mask(s, self.eyes_y, getattr(self.model.config, "paste_scale", 1.0))
        self._template = align.crop_template(s, self.eyes_y)        # (5, 2) crop pixels
        self._ledger = ReleaseLedger()

    def __repr__(self) -> str:
        model = self.model_path if self.model_path is not None else f"{type(self.model).__name__}({self.model.config.name!r})"
        return (f"Anonymizer(model={str(model)!r}, epsilon={self.epsilon:g}, device='{self.device}', "
                f"backend={self.backend!r}, detector={self.detector!r}, upsample={self.upsample}, "
                f"min_score={self.min_score:g}, min_size={self.min_size})")

    # ---- public API ------------------------------------------------------------------
    def detect(self, image) -> list[FaceRecord]:
        """The faces this Anonymizer would replace in ``image`` (its detection options)."""
        return self._faces(decode.decode(image).rgb, None)

    def describe(self, image, faces=None) -> torch.Tensor:
        """(N, 128) float32 CPU raw identity descriptors of the faces (dlib's scale).

        NOT private: these are the people's real identity vectors (for evaluation and
        donor identities; ``release_identities`` is the DP release)."""
        rgb = decode.decode(image).rgb
        return self._descriptors(rgb, self._faces(rgb, faces)).cpu()

    def release_identities(self, image, faces=None, key=None, epsilon=None) -> torch.Tensor:
        """(N, 128) float32 CPU epsilon-IdentityDP released identity vectors, one per face
        (faces=None: detect): the identity step of ``anonymize``, recorded in the ledger
        (privacy/ledger.py) so that ``render`` reports its guarantee."""
        eps, key = self._budget(epsilon, key)
        rgb = decode.decode(image).rgb
        return self._release(self._descriptors(rgb, self._faces(rgb, faces)), key, eps)[0]

    def render(self, image, faces, identities) -> tuple[object, list[FaceResult]]:
        """Generate and paste back a face for every face of ``image`` with the given
        identity vectors: (image of the input's kind, results). Releases nothing.

        faces: list of FaceRecord (None: detect). identities: (N, 128), N = len(faces):
        vectors from ``release_identities`` (video: one release per track, rendered on every
        frame at no extra privacy cost) or any vectors in dlib's scale (a donor's raw
        ``describe``: a plain swap, no DP). Each result reports the guarantee of the release
        its vector came from when this Anonymizer made it (the ledger), else nan."""
        decoded = decode.decode(image)
        faces = self._faces(decoded.rgb, faces)
        ids = release.check_identities(identities, len(faces), self.model.config.identity_dim)
        if not faces:
            return decoded.encode(decoded.rgb), []
        records = self._ledger.lookup(ids)
        out = self._render_rgb(decoded.rgb, faces, ids)
        return decoded.encode(out), [release.face_result(f, r) for f, r in zip(faces, records)]

    def anonymize(self, image, faces=None, key=None, epsilon=None) -> tuple[object, list[FaceResult]]:
        """Replace every face: detect (or take ``faces``), release each identity with
        epsilon-IdentityDP (``epsilon``: this call's budget per face, default the
        Anonymizer's), generate, paste back. Returns (image of the input's kind, one
        FaceResult per face). An image without faces comes back unchanged (a new object)
        with an empty list. key: None (fresh CSPRNG key), 32 bytes or 64 hex characters
        (reproducible: the same key, image and faces give the same output)."""
        eps, key = self._budget(epsilon, key)
        decoded = decode.decode(image)
        faces = self._faces(decoded.rgb, faces)
        if not faces:
            return decoded.encode(decoded.rgb), []
        vectors, record = self._release(self._descriptors(decoded.rgb, faces), key, eps)
        out = self._render_rgb(decoded.rgb, faces, vectors)
        return decoded.encode(out), [release.face_result(f, record) for f in faces]

    def anonymize_aligned(self, crops, key=None, epsilon=None, blend: bool = True,
                          return_results: bool = False):
        """Anonymise faces the caller has already aligned to the model's crop.

        crops: (N, S, S, 3) uint8 RGB, numpy or torch (any device), S = ``crop_size``,
        aligned like ``pipeline.align.crop_transform`` (the 5 landmarks on
        ``crop_template(S, eyes_y)``). Returns the same kind, shape and dtype.

        The identity comes from dlib's chip cut from the crop itself at the template
        (softer than a chip of the original photo: prefer ``anonymize(image, faces)``).
        blend=True: the new face blended in through the paste-back ellipse (pixels outside
        it unchanged); False: the generator's whole crop. return_results=True returns
        (crops, [FaceResult]) with box = the whole crop and landmarks = the template."""
        eps, key = self._budget(epsilon, key)
        arr, wrap = decode.decode_crops(crops, self.crop_size)
        n, s = arr.shape[0], self.crop_size
        if n == 0:
            return (wrap(arr.copy()), []) if return_results else wrap(arr.copy())
        chips = torch.cat([align.dlib_face_chips(arr[i], self._template[None], align.CHIP_SIZE,
                                                 align.CHIP_PADDING) for i in range(n)])
        vectors, record = self._release(self._encoder(chips), key, eps)
        x = torch.from_numpy(arr).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        pixels = self._generate(x, vectors)                              # (N, S, S, 3)
        out = wrap(blend_crops(arr, pixels, self.paste_mask if blend else None))
        if not return_results:
            return out
        face = FaceRecord(box=(0, 0, s - 1, s - 1), landmarks=self._template.numpy(),
                          score=float("nan"))
        return out, [release.face_result(face, record) for _ in range(n)]

    def warmup(self) -> None:
        """One forward of every network on a dummy crop, and dlib's detector loaded, so the
        first real call is not slowed by lazy loading, oneDNN/cuDNN planning or JIT."""
        s = self.crop_size
        chip = torch.full((1, align.CHIP_SIZE, align.CHIP_SIZE, 3), 128, dtype=torch.uint8)
        vectors, _ = self._release(self._encoder(chip), None, self.epsilon,
                                   record=False)
        self._generate(torch.zeros(1, 3, s, s, device=self.device), vectors)
        detect.detect_faces(np.zeros((64, 64, 3), dtype=np.uint8), self.detector, 0)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ---- composition of the stages ---------------------------------------------------
    def _budget(self, epsilon, key):
        eps = self.epsilon if epsilon is None else check_epsilon(epsilon)
        return eps, (None if key is None else _keys.check_key(key))

    def _faces(self, rgb: np.ndarray, faces) -> list[FaceRecord]:
        if faces is not None:
            return detect.check_faces(faces)
        return detect.find_faces(rgb, self.detector, self.upsample, self.min_size, self.min_score)

    def _descriptors(self, rgb: np.ndarray, faces: Sequence[FaceRecord]) -> torch.Tensor:
        return identity.describe_faces(self._encoder, rgb, [f.landmarks for f in faces])

    def _release(self, desc: torch.Tensor, key, epsilon: float, record: bool = True):
        return release.release_faces(self.model.bottleneck, desc, epsilon, key, self.backend,
                                     self.typical_identity, self._ledger if record else None)

    def _generate(self, crops: torch.Tensor, identities: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) crops in [-1, 1] on ``device`` + (N, 128) identities -> (N, S, S, 3)
        float32 CPU in [0, 255], through the attribute input the model was trained with."""
        with torch.inference_mode():
            x_att = attributes.degrade_inner_face(crops, self.degrade_sigma, eyes_y=self.eyes_y)
            return self._generator(x_att, identities)

    def _render_rgb(self, rgb: np.ndarray, faces: Sequence[FaceRecord], vectors) -> np.ndarray:
        lm = np.stack([f.landmarks for f in faces])                      # (N, 5, 2)
        crops, mats = align.model_crops(rgb, lm, self.crop_size, self._geometry_backend, self.eyes_y)
        pixels = self._generate(crops.to(self.device), vectors)
        if self._fits_rendered:
            pixels = fit_rendered(pixels, crops, mats, self.paste_mask, self._template)
        return paste_faces(rgb, pixels, mats, self.paste_mask, self._geometry_backend)
