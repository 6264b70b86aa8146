"""The held-out privacy/utility harness (DESIGN.md sections 7 and 7b).

``evaluate(anonymizers, methods, data_root, n_people, n_probe_per_person, seed, out_dir)``:

1. Identities: ``n_people`` drawn (seeded) from the held-out LFW people (>= 5 images with
   a face, ``training.data.split_lfw_identities``); never seen in training.
2. Gallery: every image of those people (at most ``gallery_per_person``, seeded), with
   the landmarks of ``lfw_landmarks.csv``; descriptors from ``IdentityEncoder`` on dlib's
   150x150 chip. Each probe is matched against the gallery WITHOUT its own original image,
   so rank-1 asks "which of the n_people is this?" from the person's other photos
   (chance = 1 / n_people).
3. Probes: ``n_probe_per_person`` images per person; the face is found with
   ``detect_faces(img, "hog")`` on the original (the detection nearest the image centre;
   dlib's detector, as the protocol says, whatever the product's default).
4. For every method: anonymise each probe twice (two keys: the second only for
   diversity), then measure on (a) the output ("clean") and (b) the output after a "real
   pipeline" (JPEG quality 75 with Pillow, then Gaussian blur radius 0.5, "jpeg75+blur"):
   identity descriptor on the chip cut at the ORIGINAL landmarks (the attacker knows where
   the face is; no probe drops out), rank-1, verification to the own original (< 0.6),
   detection (IoU > 0.5), landmark shift / inter-ocular distance (over detected faces),
   PSNR outside the face (pixels outside the feathered paste-back ellipse), diversity.

An anonymizer is a callable ``(image uint8 (H, W, 3), face FaceRecord, key bytes(32)) ->
image uint8 (H, W, 3)``. Built in: ``blur`` (Gaussian, radius w/8 over the face box),
``pixelate`` (the face box as 8x8 blocks), ``identity`` (no change: the privacy floor /
utility ceiling). A trained generator is the caller's anonymizer (evaluation/command.py);
nothing here assumes a model exists.

Outputs in ``out_dir``: ``results.json``, ``results.md`` (the table), ``privacy_utility.png``
(rank-1 vs PSNR outside and vs landmark shift, both conditions), ``samples.png``
(original | each method, per probe).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import random
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from . import metrics as M
from ..pipeline.align import crop_face_ellipse, crop_transform, dlib_face_chips, invert_affine
from ..pipeline.detect import FaceRecord, detect_faces
from ..pipeline.decode import read_image
from ..reference.warp_affine import feathered_ellipse, warp_affine

Anonymizer = Callable[[np.ndarray, FaceRecord, bytes], np.ndarray]
CONDITIONS = ("clean", "jpeg75+blur")
MASK_CROP = 128      # the model crop whose feathered face ellipse defines "the face"
MASK_FEATHER = 0.15


# -- baselines ----------------------------------------------------------------------------

def blur_face(image: np.ndarray, face: FaceRecord, key: bytes = b"", divisor: float = 8.0) -> np.ndarray:
    """Gaussian blur (Pillow, radius = box width / ``divisor``) inside the face box."""
    l, t, r, b = face.box
    radius = max((r - l + 1) / divisor, 0.5)
    h, w = image.shape[:2]
    pad = int(math.ceil(3 * radius))
    L, T, R, B = max(l - pad, 0), max(t - pad, 0), min(r + pad, w - 1), min(b + pad, h - 1)
    region = Image.fromarray(image[T:B + 1, L:R + 1]).filter(ImageFilter.GaussianBlur(radius))
    out = image.copy()
    out[t:b + 1, l:r + 1] = np.asarray(region)[t - T:b - T + 1, l - L:r - L + 1]
    return out


def pixelate_face(image: np.ndarray, face: FaceRecord, key: bytes = b"", blocks: int = 8) -> np.ndarray:
    """The face box replaced by a ``blocks`` x ``blocks`` grid of its mean colours."""
    l, t, r, b = face.box
    out = image.copy()
    ys = np.linspace(t, b + 1, blocks + 1).round().astype(int)
    xs = np.linspace(l, r + 1, blocks + 1).round().astype(int)
    for i in range(blocks):
        for j in range(blocks):
            cell = out[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            if cell.size:
                cell[...] = np.floor(cell.reshape(-1, 3).mean(0) + 0.5).astype(np.uint8)
    return out


def identity_face(image: np.ndarray, face: FaceRecord, key: bytes = b"") -> np.ndarray:
    """No change (the privacy floor and utility ceiling)."""
    return image.copy()


BASELINES: dict[str, Anonymizer] = {"blur": blur_face, "pixelate": pixelate_face,
                                    "identity": identity_face}


# -- helpers ------------------------------------------------------------------------------

def real_pipeline(image: np.ndarray, quality: int = 75, blur: float = 0.5) -> np.ndarray:
    """JPEG re-encode (Pillow, ``quality``) then Gaussian blur of ``blur`` px: what an
    upload does to a picture (adversarial textures rarely survive it)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    img = Image.open(buf).convert("RGB")
    if blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(img, dtype=np.uint8).copy()


def face_mask(shape, landmarks, size: int = MASK_CROP, feather: float = MASK_FEATHER) -> np.ndarray:
    """(H, W) float in [0, 1]: the feathered face ellipse of the model crop (the region a
    generator pastes back) warped into the frame; > 0 is "the face"."""
    h, w = int(shape[0]), int(shape[1])
    (cx, cy), (rx, ry) = crop_face_ellipse(size)
    ell = feathered_ellipse(size, size, (cx, cy), (rx, ry), feather, dtype=torch.float64)
    inv = invert_affine(crop_transform(landmarks, size))          # frame -> crop
    m = warp_affine(ell[None, :, :, None], inv, h, w)[0, 0]
    return m.clamp(0, 1).numpy()


def _box_around(landmarks) -> tuple:
    """A face-sized box (left, top, right, bottom) around dlib's 5 points (eye corners and
    nose base): 2.2 eye-widths wide, centred below the eyes."""
    lm = np.asarray(landmarks, np.float64)
    c = lm.mean(axis=0)
    s = 1.1 * (lm[:, 0].max() - lm[:, 0].min())
    return (c[0] - s, c[1] - 0.8 * s, c[0] + s, c[1] + 1.3 * s)


def key_for(seed: int, probe: int, which: int) -> bytes:
    """A deterministic 32-byte key per (seed, probe, which): reproducible runs."""
    return hashlib.sha256(f"identitydp-eval:{seed}:{probe}:{which}".encode()).digest()


def nearest_centre(faces: Sequence[FaceRecord], shape) -> FaceRecord | None:
    if not faces:
        return None
    cy, cx = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    return min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2
               + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)


def _read_lfw(data_root: Path, held: set) -> dict[str, list[tuple[str, np.ndarray]]]:
    import csv
    by_person: dict[str, list] = {}
    with open(data_root / "lfw_landmarks.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["faces"] in ("", "0") or r["x0"] == "":
                continue
            person = r["path"].replace("\\", "/").split("/")[0]
            if person in held:
                lm = np.array([[float(r[f"x{i}"]), float(r[f"y{i}"])] for i in range(5)])
                by_person.setdefault(person, []).append((r["path"], lm))
    return by_person


def inner_face_mask_image(shape, landmarks, size: int = MASK_CROP) -> np.ndarray:
    """(H, W) in [0, 1]: the inner-face ellipse (eyebrows to lower lip) of the model crop,
    warped into the frame: where ``sharpness`` is measured."""
    from ..pipeline.attributes import inner_face_ellipse
    h, w = int(shape[0]), int(shape[1])
    (cx, cy), (rx, ry) = inner_face_ellipse(size)
    ell = feathered_ellipse(size, size, (cx, cy), (rx, ry), MASK_FEATHER, dtype=torch.float64)
    inv = invert_affine(crop_transform(landmarks, size))
    return warp_affine(ell[None, :, :, None], inv, h, w)[0, 0].clamp(0, 1).numpy()


class _Judge:
    """SFace embeddings (the independent judge, evaluation/judge.py; never a training loss).
    Faces are aligned at the ORIGINAL image's YuNet points (the attacker knows where the face
    is, as for dlib's chips): an output is always embedded, even where no detector finds a
    face any more. Unit rows; NaN rows where YuNet found no face in the original."""

    def __init__(self):
        from .judge import IdentityJudge
        self.judge = IdentityJudge()

    def points(self, image: np.ndarray, box) -> np.ndarray | None:
        l, t, r, b = box
        face = self.judge.detect_face(image, box_hint=(l, t, r + 1, b + 1))
        return None if face is None else face[2]

    def __call__(self, images: Sequence[np.ndarray], points: Sequence) -> np.ndarray:
        out = np.full((len(images), 128), np.nan)
        ok = [i for i, p in enumerate(points) if p is not None]
        if ok:
            out[ok] = self.judge.recognizer.embed_many([images[i] for i in ok], [points[i] for i in ok])
        return out


def _judge_or_none(log):
    try:
        return _Judge()
    except FileNotFoundError as err:
        log(f"SFace judge unavailable ({err}): its columns are left empty")
        return None


class _Encoder:
    def __init__(self, backend: str):
        from ..pipeline.identity import IdentityEncoder
        self.enc = IdentityEncoder(backend=backend)
        self.calls = 0

    def __call__(self, images: Sequence[np.ndarray], landmarks: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for i in range(0, len(images), 32):
            chips = torch.cat([dlib_face_chips(im, lm[None]) for im, lm in
                               zip(images[i:i + 32], landmarks[i:i + 32])])
            out.append(self.enc(chips).cpu().numpy().astype(np.float64))
            self.calls += len(chips)
        return np.concatenate(out) if out else np.zeros((0, 128))


# -- the harness --------------------------------------------------------------------------

def evaluate(anonymizers: dict[str, Anonymizer] | None = None,
             methods: Sequence[str] | None = None, data_root=None, n_people: int = 40,
             n_probe_per_person: int = 2, seed: int = 0, out_dir=None,
             gallery_per_person: int = 10, backend: str = "cpu", sample_rows: int = 6,
             notes: Sequence[str] = (), log=print) -> dict:
    """Run the protocol (module docstring) and return the results dict.

    anonymizers: name -> anonymizer; merged over ``BASELINES`` (so the baselines are always
    available by name). methods: the names to run, in table order (default: all given).
    data_root: the shared data folder (holds lfw/ and lfw_landmarks.csv; default
    ``training.data.default_data_root()``). out_dir: where to write the table, plots and
    JSON (None: nothing written). notes: extra lines for the table's header.

    Returns {"meta": {...}, "methods": {name: {condition: {metric: value}}}, "probes": [...]}.
    Metrics: rank1, verify, detect, landmark_shift, psnr_out, diversity (see the module
    docstring); meta holds chance, counts, timings.
    """
    from ..training.data import default_data_root, split_lfw_identities

    t0 = time.perf_counter()
    pool = dict(BASELINES)
    pool.update(anonymizers or {})
    methods = list(methods) if methods is not None else list(anonymizers or BASELINES)
    unknown = [m for m in methods if m not in pool]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; available: {sorted(pool)}")
    data_root = Path(data_root) if data_root is not None else default_data_root()
    _, held = split_lfw_identities(data_root / "lfw_landmarks.csv")
    if n_people < 2 or n_people > len(held):
        raise ValueError(f"n_people must be in [2, {len(held)}] (held-out identities), got {n_people}")
    rng = random.Random(seed)
    people = sorted(rng.sample(held, n_people))
    by_person = _read_lfw(data_root, set(people))
    encode = _Encoder(backend)

    # gallery and probes
    gal_paths, gal_labels, gal_lms, probes = [], [], [], []
    for pi, person in enumerate(people):
        items = sorted(by_person[person], key=lambda x: x[0])
        chosen = rng.sample(items, min(len(items), max(gallery_per_person, n_probe_per_person + 1)))
        chosen.sort(key=lambda x: x[0])
        for k, (path, lm) in enumerate(chosen):
            if k < n_probe_per_person:
                probes.append({"person": person, "label": pi, "path": path,
                               "gallery_index": len(gal_paths)})
            gal_paths.append(path)
            gal_labels.append(pi)
            gal_lms.append(lm)
    gal_images = [read_image(data_root / "lfw" / p) for p in gal_paths]
    gallery = encode(gal_images, gal_lms)
    judge = _judge_or_none(log)
    if judge is not None:  # gallery boxes from the dlib landmarks' extent
        gal_points = [judge.points(im, _box_around(lm)) for im, lm in zip(gal_images, gal_lms)]
        sface_gallery = judge(gal_images, gal_points)
    gal_labels = np.array(gal_labels)
    t_gallery = time.perf_counter() - t0
    log(f"gallery: {len(gal_paths)} images of {n_people} people ({t_gallery:.1f} s)")

    # detect the probe faces on the originals
    kept = []
    for p in probes:
        img = gal_images[p["gallery_index"]]
        face = nearest_centre(detect_faces(img, "hog"), img.shape)
        if face is None:
            log(f"  no face detected in {p['path']}: probe skipped")
            continue
        p["image"], p["face"] = img, face
        kept.append(p)
    probes = kept
    if not probes:
        raise RuntimeError("no probe face was detected")
    orig_desc = encode([p["image"] for p in probes], [p["face"].landmarks for p in probes])
    labels = np.array([p["label"] for p in probes])
    exclude = np.array([p["gallery_index"] for p in probes])
    masks = [face_mask(p["image"].shape, p["face"].landmarks) for p in probes]
    inner = [inner_face_mask_image(p["image"].shape, p["face"].landmarks) for p in probes]
    if judge is not None:
        probe_points = [gal_points[p["gallery_index"]] for p in probes]
        sface_orig = sface_gallery[exclude]

    results: dict = {}
    per_probe: list = [dict(person=p["person"], path=p["path"]) for p in probes]
    samples: dict[str, list[np.ndarray]] = {}
    timings: dict[str, float] = {}
    for name in methods:
        fn = pool[name]
        t_m = time.perf_counter()
        outs, outs2 = [], []
        for i, p in enumerate(probes):
            o1 = np.asarray(fn(p["image"], p["face"], key_for(seed, i, 0)), dtype=np.uint8)
            o2 = np.asarray(fn(p["image"], p["face"], key_for(seed, i, 1)), dtype=np.uint8)
            if o1.shape != p["image"].shape:
                raise ValueError(f"method {name!r} returned shape {o1.shape} for an image of "
                                 f"shape {p['image'].shape}")
            outs.append(o1)
            outs2.append(o2)
        t_anon = time.perf_counter() - t_m
        samples[name] = outs[:sample_rows]
        results[name] = {}
        for cond in CONDITIONS:
            a1 = outs if cond == "clean" else [real_pipeline(o) for o in outs]
            a2 = outs2 if cond == "clean" else [real_pipeline(o) for o in outs2]
            lms = [p["face"].landmarks for p in probes]
            d1 = encode(a1, lms)
            same = [np.array_equal(x, y) for x, y in zip(a1, a2)]
            d2 = d1.copy()
            diff = [i for i, s in enumerate(same) if not s]
            if diff:
                d2[diff] = encode([a2[i] for i in diff], [lms[i] for i in diff])
            hits = M.rank1_hits(d1, labels, gallery, gal_labels, exclude)
            ver = M.pair_distance(d1, orig_desc)
            det, shift, ps = [], [], []
            for i, p in enumerate(probes):
                faces = detect_faces(a1[i], "hog")
                j, iou = M.best_match(p["face"].box, [f.box for f in faces])
                ok = iou > M.IOU_THRESHOLD
                det.append(ok)
                shift.append(M.landmark_shift(p["face"].landmarks, faces[j].landmarks)
                             if ok else float("nan"))
                ps.append(M.psnr(p["image"], a1[i], weight=(masks[i] <= 0).astype(np.float64)))
                per_probe[i].setdefault(name, {})[cond] = dict(
                    rank1_hit=bool(hits[i]), dist_to_original=float(ver[i]), iou=float(iou),
                    landmark_shift=shift[-1], psnr_out=ps[-1],
                    diversity=float(M.pair_distance(d1[i:i + 1], d2[i:i + 1])[0]))
            sharp = [M.sharpness(a1[i], p["image"], inner[i]) for i, p in enumerate(probes)]
            sface = {}
            if judge is not None:
                e1 = judge(a1, probe_points)
                valid = ~np.isnan(e1[:, 0])
                s_hits = M.cosine_rank1_hits(e1[valid], labels[valid], sface_gallery, gal_labels, exclude[valid])
                s_cos = np.sum(e1[valid] * sface_orig[valid], axis=1)
                sface = {"rank1_sface": float(s_hits.mean()) if valid.any() else float("nan"),
                         "verify_sface": float((s_cos >= M.SFACE_THRESHOLD).mean()) if valid.any() else float("nan"),
                         "sface_probes": int(valid.sum())}
            results[name][cond] = {
                **sface,
                "sharpness": M.finite_mean(sharp),
                "rank1": float(hits.mean()),
                "verify": float((ver < M.DLIB_THRESHOLD).mean()),
                "dist_to_original": float(ver.mean()),
                "detect": float(np.mean(det)),
                "landmark_shift": M.finite_mean(shift),
                "psnr_out": M.psnr_mean(ps),
                "diversity": M.diversity(d1, d2),
            }
        timings[name] = time.perf_counter() - t_m
        r = results[name]
        log(f"{name}: rank1 {r['clean']['rank1']:.3f} / {r['jpeg75+blur']['rank1']:.3f} "
            f"(clean / jpeg75+blur), verify {r['clean']['verify']:.3f}, detect "
            f"{r['clean']['detect']:.3f}, anonymise {t_anon:.1f} s, total {timings[name]:.1f} s")

    meta = {"data_root": str(data_root), "n_people": n_people, "n_probes": len(probes),
            "n_probe_per_person": n_probe_per_person, "gallery_images": len(gal_paths),
            "gallery_per_person": gallery_per_person, "seed": seed,
            "chance_rank1": M.chance_rank1(gal_labels), "heldout_identities": len(held),
            "methods": methods, "conditions": list(CONDITIONS), "notes": list(notes),
            "encoder_backend": encode.enc.backend, "descriptors_computed": encode.calls,
            "seconds": {"gallery": t_gallery, **{f"method:{k}": v for k, v in timings.items()},
                        "total": time.perf_counter() - t0}}
    out = {"meta": meta, "methods": results, "probes": per_probe}
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(out, indent=1, default=float))
        (out_dir / "results.md").write_text(markdown_table(out))
        privacy_utility_plot(out).save(out_dir / "privacy_utility.png")
        sample_grid([p["image"] for p in probes[:sample_rows]], samples, methods,
                    [p["face"].box for p in probes[:sample_rows]]).save(out_dir / "samples.png")
        meta["files"] = [str(out_dir / f) for f in
                         ("results.json", "results.md", "privacy_utility.png", "samples.png")]
        (out_dir / "results.json").write_text(json.dumps(out, indent=1, default=float))
    meta["seconds"]["total"] = time.perf_counter() - t0
    return out


# -- reports ------------------------------------------------------------------------------

_COLUMNS = (("rank1", "rank-1", "{:.3f}"), ("verify", "verify<0.6", "{:.3f}"),
            ("rank1_sface", "SFace rank-1", "{:.3f}"), ("verify_sface", "SFace verify", "{:.3f}"),
            ("sharpness", "sharpness", "{:.2f}"),
            ("detect", "detect", "{:.3f}"), ("landmark_shift", "lm shift/IOD", "{:.3f}"),
            ("psnr_out", "PSNR out (dB)", "{:.1f}"), ("diversity", "diversity", "{:.3f}"))


def markdown_table(res: dict) -> str:
    """The results as a markdown table: one row per method, each metric for both conditions
    (clean / after JPEG q75 + blur 0.5)."""
    m = res["meta"]
    lines = [f"Held-out LFW evaluation: {m['n_people']} people (of {m['heldout_identities']} "
             f"held out), {m['n_probes']} probes, gallery {m['gallery_images']} images "
             f"(the probe's own image excluded), seed {m['seed']}. Rank-1 chance = "
             f"{m['chance_rank1']:.3f}.", "",
             "Each cell: clean output / after JPEG q75 + Gaussian blur 0.5. PSNR outside the "
             "face counts identical pixels as 100 dB. Landmark shift over detected faces.", ""]
    lines += [f"- {n}" for n in m.get("notes", [])]
    if m.get("notes"):
        lines.append("")
    lines.append("| method | " + " | ".join(c[1] for c in _COLUMNS) + " |")
    lines.append("|---" * (len(_COLUMNS) + 1) + "|")
    for name in m["methods"]:
        r = res["methods"][name]
        cells = ["{} / {}".format(*(fmt.format(r[c].get(key, float("nan"))) for c in CONDITIONS))
                 for key, _, fmt in _COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "![privacy-utility](privacy_utility.png)", "", "![samples](samples.png)", ""]
    return "\n".join(lines)


def _font():
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def privacy_utility_plot(res: dict, width: int = 1000, height: int = 440) -> Image.Image:
    """Two scatter panels (Pillow only): rank-1 re-identification (y) against PSNR outside
    the face and against landmark shift (x); filled dots clean, hollow after JPEG + blur;
    the dashed line is chance."""
    img = Image.new("RGB", (width, height), "white")
    dr = ImageDraw.Draw(img)
    font = _font()
    methods = res["meta"]["methods"]
    panels = (("psnr_out", "PSNR outside the face (dB) ->  better utility"),
              ("landmark_shift", "landmark shift / inter-ocular  <- better utility"))
    pw = (width - 60) // 2
    for k, (key, title) in enumerate(panels):
        x0, y0, x1, y1 = 60 + k * (pw + 30), 40, 60 + k * (pw + 30) + pw - 40, height - 60
        vals = [res["methods"][m][c][key] for m in methods for c in CONDITIONS]
        vals = [v for v in vals if np.isfinite(v)] or [0.0, 1.0]
        lo, hi = min(vals), max(vals)
        if hi - lo < 1e-9:
            lo, hi = lo - 1, hi + 1
        pad = 0.08 * (hi - lo)
        lo, hi = lo - pad, hi + pad
        sx = lambda v: x0 + (v - lo) / (hi - lo) * (x1 - x0)
        sy = lambda v: y1 - v * (y1 - y0)
        dr.rectangle([x0, y0, x1, y1], outline="black")
        for t in np.linspace(0, 1, 6):
            dr.line([x0 - 4, sy(t), x0, sy(t)], fill="black")
            dr.text((x0 - 34, sy(t) - 7), f"{t:.1f}", fill="black", font=font)
        for t in np.linspace(lo + pad, hi - pad, 5):
            dr.line([sx(t), y1, sx(t), y1 + 4], fill="black")
            dr.text((sx(t) - 14, y1 + 6), (f"{t:.3f}" if hi - lo < 0.2 else f"{t:.2f}" if hi - lo < 2 else f"{t:.1f}"),
                    fill="black", font=font)
        ch = res["meta"]["chance_rank1"]
        for xx in range(int(x0), int(x1), 10):
            dr.line([xx, sy(ch), xx + 5, sy(ch)], fill=(120, 120, 120))
        dr.text((x0 + 4, sy(ch) - 15), "chance", fill=(120, 120, 120), font=font)
        dr.text((x0, y1 + 24), title, fill="black", font=font)
        dr.text((x0, 10), "rank-1 re-identification (lower = more private)", fill="black", font=font)
        for i, m in enumerate(methods):
            col = _PALETTE[i % len(_PALETTE)]
            for c in CONDITIONS:
                v, r1 = res["methods"][m][c][key], res["methods"][m][c]["rank1"]
                if not np.isfinite(v):
                    continue
                px, py = sx(v), sy(r1)
                if c == "clean":
                    dr.ellipse([px - 6, py - 6, px + 6, py + 6], fill=col)
                    dr.text((px + 8, py - 8), m, fill=col, font=font)
                else:
                    dr.ellipse([px - 6, py - 6, px + 6, py + 6], outline=col, width=2)
    dr.text((width - 330, height - 18), "filled: clean   hollow: JPEG q75 + blur 0.5",
            fill="black", font=font)
    return img


def sample_grid(originals: Sequence[np.ndarray], outputs: dict[str, list[np.ndarray]],
                methods: Sequence[str], boxes=None, cell: int = 160) -> Image.Image:
    """Rows: probes; columns: original | each method's output (clean), labelled."""
    cols = ["original"] + list(methods)
    head = 20
    grid = Image.new("RGB", (cell * len(cols), head + cell * len(originals)), "white")
    dr = ImageDraw.Draw(grid)
    font = _font()
    for j, name in enumerate(cols):
        dr.text((j * cell + 4, 3), name, fill="black", font=font)
    for i, orig in enumerate(originals):
        row = [orig] + [outputs[m][i] for m in methods]
        for j, im in enumerate(row):
            pim = Image.fromarray(im)
            if boxes is not None:  # a square around the face box, 60% margin
                l, t, r, b = boxes[i]
                cx, cy, s = (l + r) / 2, (t + b) / 2, 0.8 * max(r - l, b - t) * 1.6 / 2 * 1.25
                pim = pim.crop((int(cx - s), int(cy - s), int(cx + s), int(cy + s)))
            grid.paste(pim.resize((cell, cell), Image.BILINEAR), (j * cell, head + i * cell))
    return grid
