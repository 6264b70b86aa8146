"""Anonymizer: an image in, the same image out with every face replaced, the identity
change set by an epsilon-IdentityDP budget.

    from identitydp_fast import Anonymizer
    anon = Anonymizer()                        # packaged fast-128 weights, epsilon DEFAULT_EPSILON
    out, results = anon.anonymize(image)       # numpy / torch / PIL in, the same kind out

Per image, every face batched through each network in one forward (DESIGN.md section 1):

1. decode (pipeline/decode.py) to (H, W, 3) uint8 RGB;
2. detect: dlib HOG (or MMOD) + 5 landmarks, detections scoring below ``min_score``
   dropped; or the caller's ``FaceRecord`` list;
3. align: the model crop (``crop_transform`` + the warp kernel of identitydp_fast/ops,
   S x S in [-1, 1]; pixels outside the image read black) and dlib's 150x150 identity chip
   (``dlib_face_chips``, padding 0.25);
4. identity: ``IdentityEncoder`` (dlib's ResNet, ported) -> (N, 128) descriptors;
5. release: ``model.bottleneck.privatise`` (epsilon-IdentityDP with the model's stored
   centre, clip and norm): (N, 128) released vectors;
6. generate: the attribute input is the crop with its inner face blurred
   (``degrade_inner_face`` with the sigma the model was trained with, read from the weights'
   training summary ``hparams.degrade_sigma``), the generator is ``EngineAEINet`` (fused
   kernels) on the cpu/cuda/triton backends or the reference ``AEINet`` on 'reference';
7. paste back (pipeline/paste.py): the new crop is inverse-warped into the frame through
   the feathered face ellipse of the crop (``crop_face_ellipse``, feather PASTE_FEATHER),
   so no seam or box edge shows. Every pixel outside the union of the pasted ellipses is
   returned bit-identical to the input (in the input's own dtype and mode).

Inputs and outputs (pipeline/decode.py has the full table): numpy or torch arrays
(H, W, 3) RGB, (H, W) or (H, W, 1) grey, (H, W, 4) RGBA, in uint8, uint16 or float in
[0, 1] (torch on any device), and PIL images of any mode. The result is the same kind,
shape, dtype, device and (for PIL) mode: grey stays grey (the model sees R = G = B), alpha
is returned untouched, 16-bit and float inputs keep their full precision wherever the face
was not pasted (pasted pixels are 8-bit values scaled to the input's range); PIL modes
without a direct equivalent (P, PA, CMYK, YCbCr, LAB, HSV, ...) come back as RGB, or RGBA
when they have transparency, and bilevel "1" as L; PIL images are made upright by their
EXIF orientation first and come back without EXIF. Other dtypes or layouts raise a
TypeError / ValueError naming the problem. The input is never modified.

What epsilon guarantees: each face's released identity vector is (effective_epsilon,
delta)-DP with respect to replacing the person (identity_dp.py, README "What epsilon
guarantees"); ``FaceResult`` reports both per face. The generator's attribute path (the
crop with its inner face blurred) is NOT covered: identity can leak through pose, hair and
face shape. That leak is measured, not claimed (``identitydp evaluate``, docs/MODEL_CARD.md).

Keys and noise streams: ``key=None`` draws a fresh 256-bit key from the OS CSPRNG for the
call (``key_supplied`` False; nobody can reproduce the noise). A caller key (32 bytes or 64
hex characters) is the reproducible mode. All faces of a call are released in one
mechanism call on stream 0: coordinate c of face i reads ChaCha20 nonce (0, 0, 128 i + c),
so every face draws independent noise, and face i's noise depends only on (key, i). The
same key in another call therefore reuses the noise of face i: give every release its own
key (the video pipeline derives one per track).

Threads: one Anonymizer may be used from many threads at once (tests/test_anonymizer.py
checks threaded results against serial ones). The networks run under inference mode and
keep no per-call state. Detection runs in parallel too: dlib's HOG detector object is NOT
thread-safe (concurrent ``run`` calls on one object returned other threads' faces or
crashed, reproduced with 3-4 threads), so pipeline/detect.py keeps one per thread; the
shape predictor is shared (safe in 2,000 concurrent calls) and the MMOD net runs under
its own lock (tests/test_detect_threads.py).

Devices: geometry (warps, chips, paste-back) runs on the CPU, the networks and the noise on
``device``; only crops, chips and vectors cross.
"""
from __future__ import annotations

import dataclasses
import math
import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import _backends
from .privacy import keys as _keys
from .pipeline.align import crop_face_ellipse, crop_template, crop_transform, dlib_face_chips
from .pipeline.detect import DETECTORS, FaceRecord, detect_faces
from .pipeline import decode as _decode
from .privacy.ledger import ReleaseLedger, ReleaseRecord
from .privacy.accounting import MAX_EPSILON

#: the packaged model (shipped with the trained release; ``$IDP_WEIGHTS`` overrides it)
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "weights" / "fast-128.safetensors"
WEIGHTS_ENV = "IDP_WEIGHTS"

#: default budget per face, chosen from the default model's evaluation curve
#: (docs/MODEL_CARD.md, "Choice of the default epsilon"): on 80 held-out LFW probes,
#: detection (0.99), landmark shift (0.04 IOD) and PSNR outside the face (42 dB after
#: JPEG) are flat from epsilon 1 to 1000, while re-identification rises with epsilon
#: (rank-1 0.175 at 1, 0.26 at 10, 0.53 at 100); the smallest grid value costs no
#: measured utility and gives the strongest guarantee.
DEFAULT_EPSILON = 1.0

#: feather of the paste-back ellipse, as a fraction of its radius; the same value as
#: evaluation.harness.MASK_FEATHER, whose "outside the face" is what this leaves untouched
PASTE_FEATHER = 0.15
CHIP_SIZE, CHIP_PADDING = 150, 0.25  # dlib's identity chip (pipeline/identity.py)



def check_epsilon(epsilon, name: str = "epsilon") -> float:
    """epsilon as a float, or TypeError / ValueError: a real number with 0 < epsilon <=
    privacy.MAX_EPSILON."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(epsilon).__name__} {epsilon!r}")
    e = float(epsilon)
    if not (math.isfinite(e) and 0.0 < e <= MAX_EPSILON):
        raise ValueError(f"{name}={epsilon!r} is out of range: it must be > 0 and <= "
                         f"{MAX_EPSILON:g} (privacy.MAX_EPSILON); smaller is more private")
    return e


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: numpy landmarks do not compare as bools
class FaceResult:
    """What was done to one face.

    box: (left, top, right, bottom) inclusive pixels (the detector's box, clipped to the
        image; a caller's FaceRecord box as given).
    landmarks: (5, 2) float64 read-only, dlib's shape_predictor_5 order (may lie outside
        the image for faces cut by its border).
    score: detector confidence (nan for caller-supplied faces).
    epsilon: the nominal budget of the identity release; effective_epsilon and delta: what
        it guarantees ((effective_epsilon, delta)-DP, identity_dp.py). nan when the vector
        was not released by this Anonymizer (``render`` with foreign vectors).
    key_supplied: True when the caller supplied the key (reproducible mode).
    key_id: public fingerprint of the key (keys.key_id; "" when unknown).
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


def _resolve_model_path(model) -> Path:
    if model is None:
        env = os.environ.get(WEIGHTS_ENV)
        path = Path(env) if env else DEFAULT_MODEL_PATH
        if not path.is_file():
            where = f"${WEIGHTS_ENV}" if env else "the packaged default model"
            raise FileNotFoundError(
                f"no model weights at {path} ({where}): pass model=PATH to a trained "
                f"identitydp-fast AEI-Net .safetensors file"
                + ("" if env else f" or set ${WEIGHTS_ENV}"))
        return path
    path = Path(os.fspath(model))
    if not path.exists():
        raise FileNotFoundError(f"model weights file {path} does not exist")
    if not path.is_file():
        raise ValueError(f"model={str(path)!r} is not a file (pass the .safetensors weights file)")
    return path


def _load(model, device: torch.device):
    """(AEINet in eval mode on device, its path or None)."""
    from .models.weights import load_model
    from .reference.aei_net import AEINet

    if isinstance(model, AEINet):
        return model.to(device).eval(), None
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be None, a path to a weights file or an AEINet, "
                        f"got {type(model).__name__}")
    path = _resolve_model_path(model)
    try:
        net = load_model(path, device)
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as exc:  # safetensors raises its own error type on a corrupt header
        if str(path) in str(exc):
            raise
        raise ValueError(f"cannot load model weights {path}: {exc}") from exc
    for name, t in net.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"model weights {path} hold NaN or inf in {name}: the file is broken")
    return net, path


def _degrade_sigma(model, path) -> float:
    """The attribute input's inner-face blur the model was trained with (its training
    summary's hparams.degrade_sigma), else the training default for its crop size."""
    from .training.degrade import default_sigma

    summary = getattr(model, "training_summary", None)
    hp = summary.get("hparams") if isinstance(summary, dict) else None
    sigma = hp.get("degrade_sigma") if isinstance(hp, dict) else None
    if sigma is None:
        return default_sigma(model.config.crop_size)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not (
            math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"model weights {path or '(in memory)'}: training summary "
                         f"hparams.degrade_sigma={sigma!r} is not a finite number >= 0")
    return float(sigma)


class Anonymizer:
    """Replace every face of an image with a generated face whose identity is released
    with epsilon-IdentityDP (see the module docstring for the pipeline and the guarantee).

    Args:
        model: None (the packaged default, ``DEFAULT_MODEL_PATH``, or ``$IDP_WEIGHTS``), a
            path to an AEI-Net weights file (models/weights.py), or a loaded
            ``reference.aei_net.AEINet`` (moved to ``device``, set to eval mode).
        epsilon: default budget per face, 0 < epsilon <= privacy.MAX_EPSILON (5000); each
            call may pass its own.
        device: where the networks and the noise run ('cpu', 'cuda', 'cuda:1', ...).
        backend: 'auto' (cuda > triton > reference on a GPU, cpu > reference on the CPU),
            'reference', 'cpu', 'cuda' or 'triton': the kernels of the generator, the
            identity encoder and the noise.
        detector: 'hog' (dlib's HOG + SVM, fast on CPU, frontal faces) or 'mmod' (dlib's
            CNN, slow on CPU, better at profiles).
        upsample: how often the detector doubles the image first (0..4; faces down to
            ~80 / 2^upsample pixels are found, time grows ~4x per step).
        min_score: detections scoring below it are dropped (faces passed by the caller are
            kept whatever their score). HOG margins at upsample 1: the astronaut in
            examples/astronaut.png scores 1.16, her mission patch (a false face) 0.12; on
            148 LFW photos the pictured person's face scored median 1.69, 5th percentile
            0.80, minimum 0.07. So a threshold trades false faces for missed real ones
            (0.3 drops the patch and ~1% of those LFW faces). The default 0.0 keeps every
            detection: a missed face is a privacy failure, a false one only alters a patch.
        min_size: detections whose box side is below it (pixels) are dropped (0: keep all).
        dtype: torch.float32 (default), or torch.float16 / torch.bfloat16 for the identity
            encoder and the generator (backend 'triton' on a GPU: half-precision
            convolutions, float32 arithmetic in the fused kernels; bounds in
            tests/test_aei_net_engine.py and tests/test_dlib_resnet_engine.py). The noise
            and the released vectors are float32 whatever the dtype.
        cuda_graph_batches: face counts (e.g. ``(1, 2, 4)``) for which the generator is
            captured once as a CUDA graph (engine/cuda_graph.py) and replayed: calls with
            exactly that many faces skip the per-kernel launch cost; other counts run
            eagerly. GPU engine backends only. Replays of one graph are serialised by a
            lock (its buffers are shared), so threads stay safe.
        typical_identity: post-process each released vector onto the shell of typical
            identities (``IdentityBottleneck.to_typical_identity``: shrink its residual
            from the public centre to the training set's typical norm). Post-processing:
            the guarantee is unchanged. Without it, epsilon below ~300 feeds the
            generator vectors 2-3x farther from the centre than any real identity, and it
            paints artefacts (docs/MODEL_CARD.md). False: the raw mechanism output.
    """

    def __init__(self, model=None, epsilon: float = DEFAULT_EPSILON, device="cpu",
                 backend: str = "auto", detector: str = "hog", upsample: int = 1,
                 min_score: float = 0.0, min_size: int = 0, dtype: torch.dtype = torch.float32,
                 cuda_graph_batches: Sequence[int] = (), typical_identity: bool = True):
        from .pipeline.identity import IdentityEncoder
        from .reference.warp_affine import feathered_ellipse

        self.epsilon = check_epsilon(epsilon)
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        if isinstance(upsample, bool) or not isinstance(upsample, int) or not 0 <= upsample <= 4:
            raise ValueError(f"upsample must be an integer in [0, 4], got {upsample!r}")
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
            raise ValueError(f"min_size must be an integer >= 0 (pixels), got {min_size!r}")
        if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or math.isnan(min_score):
            raise ValueError(f"min_score must be a real number (a detector score), got {min_score!r}")
        self.detector, self.upsample = detector, upsample
        self.min_score, self.min_size = float(min_score), min_size
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device={device!r} is not a torch device: {exc}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r}, but torch sees no CUDA GPU on this machine")
        if self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be a CPU or CUDA device, got {self.device}")
        self.backend = _backends.resolve(backend, self.device)
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be torch.float32, float16 or bfloat16, got {dtype!r}")
        if dtype != torch.float32 and self.backend != "triton":
            raise ValueError(f"dtype={dtype} needs backend='triton' (its kernels take half "
                             f"precision; the {self.backend!r} path is float32-only)")
        self.dtype = dtype
        self.typical_identity = bool(typical_identity)
        graph_batches = sorted({int(b) for b in cuda_graph_batches})
        if graph_batches and (self.device.type != "cuda" or self.backend not in ("cuda", "triton")):
            raise ValueError("cuda_graph_batches needs device='cuda' and backend 'cuda' or "
                             f"'triton', got device={self.device}, backend={self.backend!r}")
        if any(b < 1 for b in graph_batches):
            raise ValueError(f"cuda_graph_batches must be positive face counts, got {graph_batches}")

        self.model, self.model_path = _load(model, self.device)
        self.crop_size = int(self.model.config.crop_size)
        self.degrade_sigma = _degrade_sigma(self.model, self.model_path)
        if self.backend == "reference":
            self._generator = self.model
        else:
            from .engine.aei_net import EngineAEINet
            self._generator = EngineAEINet(self.model, self.backend, dtype).to(self.device).eval()
        self._encoder = IdentityEncoder(backend=self.backend, device=self.device, dtype=dtype)
        self._graphs = {}
        for b in graph_batches:
            from .engine.cuda_graph import CUDAGraphed
            s = self.crop_size
            graphed = CUDAGraphed(self._generator.generate,
                                  torch.zeros(b, 3, s, s, device=self.device),
                                  torch.zeros(b, 128, device=self.device))
            self._graphs[b] = (graphed, threading.Lock())
        # geometry runs on the CPU: the warp kernel where _C is built, the reference otherwise
        self._geometry_backend = ("reference" if self.backend == "reference"
                                  else _backends.resolve("auto", "cpu"))
        s = self.crop_size
        (cx, cy), (rx, ry) = crop_face_ellipse(s)
        self.paste_mask = feathered_ellipse(s, s, (cx, cy), (rx, ry), PASTE_FEATHER,
                                            dtype=torch.float64)   # (S, S), 0 outside
        self._template = crop_template(s)                           # (5, 2) crop pixels
        self._ledger = ReleaseLedger()

    def __repr__(self) -> str:
        model = self.model_path if self.model_path is not None else f"AEINet({self.model.config.name!r})"
        return (f"Anonymizer(model={str(model)!r}, epsilon={self.epsilon:g}, device='{self.device}', "
                f"backend={self.backend!r}, detector={self.detector!r}, upsample={self.upsample}, "
                f"min_score={self.min_score:g}, min_size={self.min_size})")

    # ---- public API ------------------------------------------------------------------
    def detect(self, image) -> list[FaceRecord]:
        """The faces this Anonymizer would replace in ``image`` (its detector, upsample,
        min_size and min_score)."""
        return self._detect(_decode.decode(image).rgb)

    def describe(self, image, faces=None) -> torch.Tensor:
        """(N, 128) float32 CPU raw identity descriptors of the faces (dlib's scale).

        NOT private: these are the people's real identity vectors (for evaluation and
        donor identities; ``release_identities`` is the DP release)."""
        rgb = _decode.decode(image).rgb
        return self._descriptors(rgb, self._faces(rgb, faces)).cpu()

    def release_identities(self, image, faces=None, key=None, epsilon=None) -> torch.Tensor:
        """(N, 128) float32 CPU epsilon-IdentityDP released identity vectors, one per face
        (faces=None: detect). The identity step of ``anonymize``; ``render`` turns them into
        faces. The release is recorded (privacy/ledger.py) so that ``render`` reports its
        guarantee."""
        eps = self.epsilon if epsilon is None else check_epsilon(epsilon)
        key = self._check_key(key)
        rgb = _decode.decode(image).rgb
        faces = self._faces(rgb, faces)
        vectors, _ = self._release(self._descriptors(rgb, faces), key, eps)
        return vectors

    def render(self, image, faces, identities) -> tuple[object, list[FaceResult]]:
        """Generate and paste back a face for every face of ``image`` with the given
        identity vectors: (image of the input's kind, results). Releases nothing.

        faces: list of FaceRecord (None: detect). identities: (N, 128) float tensor or
        array, N = len(faces): vectors from ``release_identities`` (video: one release per
        track, rendered on every frame at no extra privacy cost), or any other identity
        vectors in dlib's scale, e.g. a donor's raw descriptor from ``describe`` (a plain
        face swap, no DP). The generator normalises each vector, so only its direction
        counts. Each result reports the guarantee of the release its vector came from when
        this Anonymizer made it (recognised by the vector's exact float32 bits), else nan
        epsilon / effective_epsilon / delta and key_supplied False.
        """
        decoded = _decode.decode(image)
        faces = self._faces(decoded.rgb, faces)
        ids = self._check_identities(identities, len(faces))
        if not faces:
            return decoded.encode(decoded.rgb), []
        records = self._ledger.lookup(ids)
        out = self._render_rgb(decoded.rgb, faces, ids)
        return decoded.encode(out), [self._result(f, r) for f, r in zip(faces, records)]

    def anonymize(self, image, faces=None, key=None, epsilon=None) -> tuple[object, list[FaceResult]]:
        """Replace every face: detect (or take ``faces``), release each identity with
        epsilon-IdentityDP (``epsilon``: this call's budget per face, default the
        Anonymizer's), generate, paste back. Returns (image of the input's kind, one
        FaceResult per face). An image without faces comes back unchanged (a new object)
        with an empty list. key: None (fresh CSPRNG key), 32 bytes or 64 hex characters
        (reproducible: the same key, image and faces give the same output)."""
        eps = self.epsilon if epsilon is None else check_epsilon(epsilon)
        key = self._check_key(key)
        decoded = _decode.decode(image)
        faces = self._faces(decoded.rgb, faces)
        if not faces:
            return decoded.encode(decoded.rgb), []
        vectors, record = self._release(self._descriptors(decoded.rgb, faces), key, eps)
        out = self._render_rgb(decoded.rgb, faces, vectors)
        return decoded.encode(out), [self._result(f, record) for f in faces]

    def anonymize_aligned(self, crops, key=None, epsilon=None, blend: bool = True,
                          return_results: bool = False):
        """Anonymise faces the caller has already aligned to the model's crop.

        crops: (N, S, S, 3) uint8 RGB, numpy or torch (any device), S = ``crop_size``,
        aligned like ``pipeline.align.crop_transform`` (the 5 landmarks on
        ``crop_template(S)``). Returns the same kind, shape and dtype.

        The identity comes from the crop itself: since the crop's landmarks ARE the
        template, dlib's 150x150 chip is cut from the crop at ``crop_template(S)``
        (``dlib_face_chips``). At S = 128 the chip's face spans ~88 crop pixels, so the chip
        is an upsampled (softer) view: the descriptor is a little less sharp than one cut
        from the original photo; use ``anonymize(image, faces)`` when the photo is at hand.
        blend=True: the new face is blended into the input crop through the paste-back
        ellipse (pixels outside it are returned unchanged, as ``anonymize`` would leave
        them); blend=False: the generator's whole crop. return_results=True returns
        (crops, [FaceResult]) with box = the whole crop and landmarks = the template.
        """
        eps = self.epsilon if epsilon is None else check_epsilon(epsilon)
        key = self._check_key(key)
        arr, wrap = self._check_crops(crops)
        n, s = arr.shape[0], self.crop_size
        if n == 0:
            return (wrap(arr.copy()), []) if return_results else wrap(arr.copy())
        chips = torch.cat([dlib_face_chips(arr[i], self._template[None], CHIP_SIZE, CHIP_PADDING)
                           for i in range(n)])
        vectors, record = self._release(self._encoder(chips), key, eps)
        x = torch.from_numpy(arr).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        pixels = self._generate(x, vectors).to(torch.float64)          # (N, S, S, 3)
        if blend:
            m = self.paste_mask.view(1, s, s, 1)
            src = torch.from_numpy(arr).to(torch.float64)
            pixels = src * (1 - m) + pixels * m                          # m = 0: src exactly
        out = wrap(torch.floor(pixels + 0.5).clamp(0, 255).to(torch.uint8).numpy())
        if not return_results:
            return out
        box = (0, 0, s - 1, s - 1)
        face = FaceRecord(box=box, landmarks=self._template.numpy(), score=math.nan)
        return out, [self._result(face, record) for _ in range(n)]

    def warmup(self) -> None:
        """One forward of every network on a dummy crop, and dlib's detector loaded, so the
        first real call is not slowed by lazy loading, oneDNN/cuDNN planning or JIT."""
        s = self.crop_size
        chip = torch.full((1, CHIP_SIZE, CHIP_SIZE, 3), 128, dtype=torch.uint8)
        desc = self._encoder(chip)
        vectors, _ = self._release(desc, bytes(_keys.KEY_BYTES), self.epsilon, record=False)
        self._generate(torch.zeros(1, 3, s, s, device=self.device), vectors)
        detect_faces(np.zeros((64, 64, 3), dtype=np.uint8), self.detector, 0)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ---- internals ---------------------------------------------------------------------
    @staticmethod
    def _check_key(key):
        return None if key is None else _keys.check_key(key)

    def _detect(self, rgb: np.ndarray) -> list[FaceRecord]:
        faces = detect_faces(rgb, self.detector, self.upsample, self.min_size)
        return [f for f in faces if f.score >= self.min_score]

    def _faces(self, rgb: np.ndarray, faces) -> list[FaceRecord]:
        if faces is None:
            return self._detect(rgb)
        if isinstance(faces, FaceRecord) or not isinstance(faces, (list, tuple)):
            raise TypeError(f"faces must be None (detect) or a list of FaceRecord "
                            f"(detect_faces, pipeline.detect.records_from_landmarks), got "
                            f"{type(faces).__name__}")
        for i, f in enumerate(faces):
            if not isinstance(f, FaceRecord):
                raise TypeError(f"faces[{i}] must be a FaceRecord, got {type(f).__name__}")
            if not np.isfinite(f.landmarks).all():
                raise ValueError(f"faces[{i}] has non-finite landmarks; drop that face")
        return list(faces)

    def _descriptors(self, rgb: np.ndarray, faces: Sequence[FaceRecord]) -> torch.Tensor:
        """(N, 128) float32 descriptors on ``device`` from dlib chips of ``rgb``."""
        if not faces:
            return torch.empty(0, 128, dtype=torch.float32, device=self.device)
        lm = np.stack([f.landmarks for f in faces])                      # (N, 5, 2)
        return self._encoder(dlib_face_chips(rgb, lm, CHIP_SIZE, CHIP_PADDING))

    def _release(self, desc: torch.Tensor, key, epsilon: float, record: bool = True):
        """(released (N, 128) float32 CPU, ReleaseRecord) from descriptors, one mechanism
        call on stream 0 (face i: nonces (0, 0, 128 i + c))."""
        if desc.shape[0] == 0:
            return torch.empty(0, 128, dtype=torch.float32), None
        # the DP mechanism, then (post-processing, same guarantee) the released vector is
        # moved onto the shell of typical identities (bottleneck.to_typical_identity)
        released, res = self.model.bottleneck.release(desc, epsilon, key=key,
                                                      backend=self.backend, stream=0,
                                                      typical=self.typical_identity)
        vectors = released.to("cpu", torch.float32)
        rec = ReleaseRecord(res.epsilon, res.effective_epsilon, res.delta, res.key_supplied,
                            res.key_id)
        if record:
            self._ledger.add(vectors, rec)
        return vectors, rec

    def _check_identities(self, identities, n: int) -> torch.Tensor:
        d = self.model.config.identity_dim
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

    def _check_crops(self, crops):
        """(N, S, S, 3) uint8 numpy copy of the caller's crops, and a wrap back to its kind."""
        s = self.crop_size
        if isinstance(crops, torch.Tensor):
            dev = crops.device
            arr = crops.detach().cpu().numpy()

            def wrap(a):
                return torch.from_numpy(a).to(dev)
        elif isinstance(crops, np.ndarray):
            arr = crops

            def wrap(a):
                return a
        else:
            raise TypeError(f"crops must be a numpy array or torch tensor (N, {s}, {s}, 3) uint8, "
                            f"got {type(crops).__name__}")
        if arr.dtype != np.uint8:
            raise TypeError(f"crops must be uint8, got {arr.dtype}")
        if arr.ndim != 4 or arr.shape[1:] != (s, s, 3):
            hint = " (add a batch axis: crops[None])" if arr.ndim == 3 else ""
            raise ValueError(f"crops must have shape (N, {s}, {s}, 3) (this model's crop size "
                             f"is {s}), got {arr.shape}{hint}")
        return np.ascontiguousarray(arr), wrap

    def _crops(self, rgb: np.ndarray, faces: Sequence[FaceRecord]):
        """Model crops (N, 3, S, S) float32 in [-1, 1] on ``device`` and their (N, 2, 3)
        float64 crop -> image maps."""
        from .ops.warp_affine import warp_affine

        s = self.crop_size
        mats = crop_transform(np.stack([f.landmarks for f in faces]), s)   # (N, 2, 3)
        img = torch.from_numpy(rgb).unsqueeze(0)                           # (1, H, W, 3) uint8
        # one warp per face: the image is shared, and the kernels want one image per matrix
        crops = torch.cat([warp_affine(img, mats[i:i + 1], s, s, mean=(127.5, 127.5, 127.5),
                                       scale=1.0 / 127.5, backend=self._geometry_backend)
                           for i in range(len(faces))])
        return crops.to(self.device), mats

    def _generate(self, crops: torch.Tensor, identities: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) crops in [-1, 1] + (N, 128) identities -> (N, S, S, 3) float32 CPU
        in [0, 255]; the attribute input is the crop with its inner face blurred, as the
        model was trained."""
        from .training.degrade import degrade_inner_face

        with torch.inference_mode():
            x_att = degrade_inner_face(crops, self.degrade_sigma)
            graph = self._graphs.get(int(crops.shape[0]))
            if graph is not None:
                graphed, lock = graph
                with lock:
                    y = graphed(x_att, identities.to(self.device, torch.float32))
            else:
                y = self._generator(x_att, identities.to(self.device))
        if not bool(torch.isfinite(y).all()):
            raise RuntimeError(f"the generator produced NaN or inf (model "
                               f"{self.model_path or 'in memory'}, backend {self.backend}); "
                               "nothing was pasted")
        return ((y.float() + 1.0) * 127.5).clamp(0, 255).permute(0, 2, 3, 1).cpu()

    def _render_rgb(self, rgb: np.ndarray, faces: Sequence[FaceRecord], vectors: torch.Tensor) -> np.ndarray:
        from .pipeline.paste import paste_faces

        crops, mats = self._crops(rgb, faces)
        pixels = self._generate(crops, vectors)
        return paste_faces(rgb, pixels, mats, self.paste_mask, self._geometry_backend)

    @staticmethod
    def _result(face: FaceRecord, rec: ReleaseRecord | None) -> FaceResult:
        from .privacy.ledger import UNKNOWN

        rec = rec or UNKNOWN
        return FaceResult(box=face.box, landmarks=face.landmarks, score=float(face.score),
                          epsilon=rec.epsilon, effective_epsilon=rec.effective_epsilon,
                          delta=rec.delta, key_supplied=rec.key_supplied, key_id=rec.key_id)
