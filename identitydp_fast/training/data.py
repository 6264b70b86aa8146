"""Training data: the identity split, the aligned-crop cache, the dataset, identity stats.

Sources (DESIGN.md section 6, never copied into the repository): ``<data_root>/lfw`` and
``<data_root>/utkface`` with ``<data_root>/<set>_landmarks.csv`` (columns ``path, faces,
left, top, right, bottom, x0, y0, ..., x4, y4``; ``faces`` empty or 0 when dlib found no
face; landmarks in dlib's ``shape_predictor_5`` order).

The split (``split_lfw_identities``): LFW people with at least 5 images with a detected
face are the project's held-out evaluation identities and never enter training; every
other LFW person, and all of UTKFace (no identity labels), trains.

The cache (``build_crop_cache``), one group of files per set in ``out_dir``::

    <set>_<split>_crops.npy        uint8   (N, S, S, 3) RGB model crops (channels last)
    <set>_<split>_descriptors.npy  float32 (N, 128) dlib descriptors (dlib's scale)
    <set>.json                     the index, written last (its presence = set complete):
        {"format": 1, "set", "size", "limit", "backend", "min_images",
         "skipped_no_face", "skipped_degenerate",
         "splits": {split: {"count": N, "entries": [{"path", "label", "landmarks"}]}}}

with ``split`` in ``train``/``heldout`` for LFW and ``train`` for UTKFace; ``label`` is
the LFW person's name (None for UTKFace) and ``landmarks`` the five points mapped into
crop pixel coordinates (x = column, y = row, pixel centres at integers). Crops are what
inference cuts: ``crop_transform(landmarks, S)`` + ``warp_affine`` (bilinear, rounded to
uint8). Descriptors come from ``IdentityEncoder`` on the 150x150 dlib chip
(``dlib_chip_transform(landmarks, 150, 0.25)``, truncated like ``dlib.get_face_chip``).
"""
from __future__ import annotations

from ..io.shared_data import default_data_root  # noqa: F401  (re-exported for tools and the harness)

import csv
import json
import os
import time
from bisect import bisect_right
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

CACHE_FORMAT = 1
SETS = ("lfw", "utkface")
HELDOUT_MIN_IMAGES = 5
CHIP_SIZE, CHIP_PADDING = 150, 0.25
QUANTILES = (0.5, 0.9, 0.99, 0.999)
_PROGRESS_EVERY = 500



# -- the landmark tables and the identity split -----------------------------------------

def _read_face_rows(landmarks_csv) -> list[dict]:
    """Rows of a landmarks CSV with a detected face: {path, landmarks (5, 2) float64}."""
    path = Path(landmarks_csv)
    if not path.is_file():
        raise FileNotFoundError(f"landmarks table not found: {path} (expected the shared "
                                f"data folder's <set>_landmarks.csv; set IDP_DATA or --data)")
    rows = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = {"path", "faces"} | {f"{a}{i}" for i in range(5) for a in "xy"}
        missing = need - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} lacks the columns {sorted(missing)}")
        for r in reader:
            if r["faces"] in ("", "0") or r["x0"] == "":
                continue
            lm = np.array([[float(r[f"x{i}"]), float(r[f"y{i}"])] for i in range(5)])
            rows.append({"path": r["path"], "landmarks": lm})
    return rows


def _lfw_person(rel_path: str) -> str:
    return rel_path.replace("\\", "/").split("/")[0]


def split_lfw_identities(landmarks_csv, min_images: int = HELDOUT_MIN_IMAGES
                         ) -> tuple[list[str], list[str]]:
    """(train_people, heldout_people), both sorted: people with >= ``min_images`` images
    with a detected face are held out (evaluation only), everyone else trains."""
    counts = Counter(_lfw_person(r["path"]) for r in _read_face_rows(landmarks_csv))
    held = sorted(p for p, n in counts.items() if n >= min_images)
    train = sorted(p for p, n in counts.items() if n < min_images)
    return train, held


def _spread_ok(lm: np.ndarray) -> bool:
    return bool(np.isfinite(lm).all()) and float(((lm - lm.mean(0)) ** 2).sum()) > 1.0


def _select(rows: list, limit: int | None) -> list:
    """``limit`` rows evenly spread over the table (many people, deterministic)."""
    if limit is None or limit >= len(rows):
        return rows
    if limit <= 0:
        return []
    idx = np.unique(np.linspace(0, len(rows) - 1, limit).round().astype(np.int64))
    return [rows[i] for i in idx]


# -- atomic writes -------------------------------------------------------------------------

def _atomic_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.stem + ".tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _files(out_dir: Path, name: str, split: str) -> tuple[Path, Path]:
    return (out_dir / f"{name}_{split}_crops.npy", out_dir / f"{name}_{split}_descriptors.npy")


def _complete(out_dir: Path, name: str, want: dict) -> bool:
    """True when ``<name>.json`` and its arrays exist and were built with ``want``;
    raises when a complete cache of other parameters is in the way."""
    meta_path = out_dir / f"{name}.json"
    if not meta_path.is_file():
        return False
    meta = json.loads(meta_path.read_text())
    have = {k: meta.get(k) for k in want}
    if have != want:
        raise ValueError(f"{out_dir} already holds a {name} cache built with {have}, not "
                         f"{want}: use another output folder or overwrite=True")
    for split, info in meta["splits"].items():
        crops, descs = _files(out_dir, name, split)
        if not (crops.is_file() and descs.is_file()):
            return False
        c = np.load(crops, mmap_mode="r")
        d = np.load(descs, mmap_mode="r")
        size = want["size"]
        if c.shape != (info["count"], size, size, 3) or d.shape != (info["count"], 128):
            return False
    return True


# -- the cache -----------------------------------------------------------------------------

def _load_and_warp(image_path: Path, crop_m: torch.Tensor, chip_m: torch.Tensor, size: int,
                   backend: str) -> tuple[np.ndarray, np.ndarray]:
    from ..pipeline.decode import read_image
    from ..ops.warp_affine import warp_affine

    img = torch.from_numpy(np.ascontiguousarray(read_image(str(image_path))))[None]
    crop = warp_affine(img, crop_m[None], size, size, backend=backend)
    chip = warp_affine(img, chip_m[None], CHIP_SIZE, CHIP_SIZE, truncate=True, backend=backend)
    crop = crop.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).contiguous()
    chip = chip.clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).contiguous()
    return crop.numpy(), chip.numpy()


def _build_split(image_dir: Path, rows: list, size: int, backend: str, encoder, batch: int,
                 tag: str, out_crops: Path, out_descs: Path, log) -> list[dict]:
    from ..pipeline.align import apply_affine, crop_transform, dlib_chip_transform, invert_affine

    n = len(rows)
    if n:
        lms = np.stack([r["landmarks"] for r in rows])
        crop_m = crop_transform(lms, size)
        chip_m = dlib_chip_transform(lms, CHIP_SIZE, CHIP_PADDING)
        lm_crop = apply_affine(invert_affine(crop_m), torch.from_numpy(lms)).numpy()
    crops_tmp = out_crops.with_name(out_crops.stem + ".tmp.npy")
    crops = np.lib.format.open_memmap(crops_tmp, mode="w+", dtype=np.uint8,
                                      shape=(n, size, size, 3))
    descs = np.zeros((n, 128), dtype=np.float32)
    t0 = time.perf_counter()
    pending: list[np.ndarray] = []
    done = 0

    def flush():
        nonlocal done
        if pending:
            d = encoder(np.stack(pending)).cpu().numpy()
            descs[done:done + len(pending)] = d
            done += len(pending)
            pending.clear()

    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = pool.map(lambda i: _load_and_warp(image_dir / rows[i]["path"], crop_m[i],
                                                 chip_m[i], size, backend), range(n))
        for i, (crop, chip) in enumerate(jobs):
            crops[i] = crop
            pending.append(chip)
            if len(pending) >= batch:
                flush()
            if (i + 1) % _PROGRESS_EVERY == 0 or i + 1 == n:
                flush()
                dt = time.perf_counter() - t0
                log(f"  [{tag}] {i + 1}/{n} images, {(i + 1) / max(dt, 1e-9):.1f} images/s")
    flush()
    crops.flush()
    del crops
    os.replace(crops_tmp, out_crops)
    _atomic_npy(out_descs, descs)
    return [{"path": r["path"], "label": r.get("label"),
             "landmarks": np.round(lm_crop[i], 4).tolist()} for i, r in enumerate(rows)]


def build_crop_cache(data_root, out_dir, size: int = 128, sets=SETS, limit: int | None = None,
                     backend: str = "cpu", batch_size: int = 32, overwrite: bool = False,
                     verbose: bool = True) -> dict:
    """Build (or find complete) the aligned-crop cache of ``sets`` under ``out_dir``.

    data_root: the shared data folder (holding ``<set>/`` and ``<set>_landmarks.csv``).
    size: the model crop side S. limit: at most this many faces per set, spread evenly
    over the table (deterministic), for quick builds. backend: the warp kernels and the
    identity encoder ('cpu' is the fast C++ path; 'reference' works everywhere).

    Idempotent: a set whose index and arrays are complete with the same parameters is
    left alone (no image is read, no network loaded). All files are written to a
    temporary name and renamed; the index last. Returns ``{"built": [...],
    "skipped": [...], "sets": {name: summary}, "seconds": t, "images": n_built}``.
    """
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise FileNotFoundError(f"data folder not found: {data_root} (point --data / IDP_DATA "
                                f"at ../shared/data, holding lfw/, utkface/ and the "
                                f"*_landmarks.csv tables)")
    if isinstance(sets, str):
        sets = (sets,)
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        raise ValueError(f"unknown sets {unknown}; choose from {list(SETS)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = print if verbose else (lambda *a, **k: None)
    encoder = None
    report = {"built": [], "skipped": [], "sets": {}, "images": 0}
    t_start = time.perf_counter()
    for name in sets:
        want = {"format": CACHE_FORMAT, "set": name, "size": size, "limit": limit,
                "min_images": HELDOUT_MIN_IMAGES}
        if not overwrite and _complete(out_dir, name, want):
            meta = json.loads((out_dir / f"{name}.json").read_text())
            report["skipped"].append(name)
            report["sets"][name] = {s: v["count"] for s, v in meta["splits"].items()}
            log(f"{name}: cache complete in {out_dir}, nothing to do "
                f"({report['sets'][name]})")
            continue
        csv_path = data_root / f"{name}_landmarks.csv"
        image_dir = data_root / name
        if not image_dir.is_dir():
            raise FileNotFoundError(f"image folder not found: {image_dir}")
        rows = _read_face_rows(csv_path)
        with open(csv_path, newline="") as f:
            n_rows = sum(1 for _ in csv.DictReader(f))
        no_face = n_rows - len(rows)
        good = [r for r in rows if _spread_ok(r["landmarks"])]
        degenerate = len(rows) - len(good)
        good = _select(good, limit)
        if name == "lfw":
            _, held = split_lfw_identities(csv_path)
            held = set(held)
            for r in good:
                r["label"] = _lfw_person(r["path"])
            splits = {"train": [r for r in good if r["label"] not in held],
                      "heldout": [r for r in good if r["label"] in held]}
        else:
            for r in good:
                r["label"] = None
            splits = {"train": good}
        log(f"{name}: {len(good)} faces ({no_face} rows without a face, {degenerate} "
            f"degenerate landmark sets skipped) -> "
            + ", ".join(f"{s} {len(v)}" for s, v in splits.items()))
        if encoder is None and good:
            from ..pipeline.identity import IdentityEncoder
            encoder = IdentityEncoder(backend=backend if backend != "triton" else "auto")
        meta = dict(want, backend=backend, skipped_no_face=no_face,
                    skipped_degenerate=degenerate, splits={})
        for split, split_rows in splits.items():
            crops_path, descs_path = _files(out_dir, name, split)
            entries = _build_split(image_dir, split_rows, size, backend, encoder, batch_size,
                                   f"{name}/{split}", crops_path, descs_path, log)
            meta["splits"][split] = {"count": len(entries), "entries": entries}
            report["images"] += len(entries)
        _atomic_json(out_dir / f"{name}.json", meta)
        report["built"].append(name)
        report["sets"][name] = {s: v["count"] for s, v in meta["splits"].items()}
    report["seconds"] = time.perf_counter() - t_start
    return report


# -- the dataset ----------------------------------------------------------------------------

class CropDataset(torch.utils.data.Dataset):
    """The cached crops of one split (all sets found in ``cache_dir``, or ``sets``).

    ``ds[i]`` is ``(crop, descriptor, label)``:
      * crop: uint8 tensor (3, S, S) RGB (``as_float=False``, the default: cheap to batch;
        convert on the training device), or float32 in [-1, 1] (x / 127.5 - 1) with
        ``as_float=True``;
      * descriptor: float32 (128,), dlib's scale (not normalised);
      * label: int, the index of the LFW person in ``self.names``, or -1 (UTKFace).

    Arrays are memory-mapped, so the dataset is cheap to open and to share with
    DataLoader workers. Also: ``descriptors`` (N, 128), ``landmarks`` (N, 5, 2) in crop
    pixels, ``paths`` (``<set>/<path>``), ``labels`` (N,) int64, ``names``.
    """

    def __init__(self, cache_dir, split: str = "train", sets=None, as_float: bool = False):
        cache_dir = Path(cache_dir)
        if not cache_dir.is_dir():
            raise FileNotFoundError(f"crop cache not found: {cache_dir} (build it with "
                                    f"tools/prepare_data.py)")
        names = [sets] if isinstance(sets, str) else list(sets or SETS)
        self.as_float = as_float
        self._crops, self._descs, entries = [], [], []
        self.size = None
        for name in names:
            meta_path = cache_dir / f"{name}.json"
            if not meta_path.is_file():
                if sets is not None:
                    raise FileNotFoundError(f"{meta_path} missing: the {name} cache is not built")
                continue
            meta = json.loads(meta_path.read_text())
            if split not in meta["splits"]:
                continue
            if self.size is not None and meta["size"] != self.size:
                raise ValueError(f"sets in {cache_dir} have different crop sizes")
            self.size = meta["size"]
            crops_path, descs_path = _files(cache_dir, name, split)
            self._crops.append(np.load(crops_path, mmap_mode="r"))
            self._descs.append(np.load(descs_path, mmap_mode="r"))
            entries += [dict(e, set=name) for e in meta["splits"][split]["entries"]]
        if not self._crops:
            raise ValueError(f"no '{split}' split in {cache_dir} (sets looked for: {names})")
        self._offsets = np.cumsum([0] + [len(c) for c in self._crops]).tolist()
        self.paths = [f"{e['set']}/{e['path']}" for e in entries]
        self.names = sorted({e["label"] for e in entries if e["label"] is not None})
        index = {n: i for i, n in enumerate(self.names)}
        self.labels = np.array([index[e["label"]] if e["label"] is not None else -1
                                for e in entries], dtype=np.int64)
        self.landmarks = np.array([e["landmarks"] for e in entries],
                                  dtype=np.float32).reshape(-1, 5, 2)

    @property
    def descriptors(self) -> np.ndarray:
        return np.concatenate([np.asarray(d) for d in self._descs])

    def __len__(self) -> int:
        return self._offsets[-1]

    def __getitem__(self, i: int):
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        part = bisect_right(self._offsets, i) - 1
        j = i - self._offsets[part]
        crop = torch.from_numpy(np.ascontiguousarray(self._crops[part][j].transpose(2, 0, 1)))
        if self.as_float:
            crop = crop.to(torch.float32) / 127.5 - 1.0
        desc = torch.from_numpy(np.array(self._descs[part][j], dtype=np.float32))
        return crop, desc, int(self.labels[i])


# -- identity statistics (the DP centre and clip radius) ----------------------------------

def identity_statistics(descriptors, quantiles=QUANTILES) -> dict:
    """Statistics of TRAINING descriptors for epsilon-IdentityDP (DESIGN.md section 4).

    u = e / ||e||_2. Returns ``mean_unit`` (mu = mean of u, float64 (d,), NOT
    renormalised), ``mean_unit_norm`` (||mu||_2), ``residual_l1_quantiles`` ({"0.5": ..,
    "0.9", "0.99", "0.999", "max"} of ||u - mu||_1: where to put the clip radius C),
    ``norm_mean`` (mean ||e||_2, the scale of a real descriptor) and ``count``.
    """
    e = torch.as_tensor(np.asarray(descriptors), dtype=torch.float64)
    if e.dim() != 2 or e.shape[0] == 0:
        raise ValueError(f"descriptors must be (N, d) with N >= 1, got {tuple(e.shape)}")
    if not bool(torch.isfinite(e).all()):
        raise ValueError("descriptors hold non-finite values")
    norms = e.norm(dim=1)
    if bool((norms <= 0).any()):
        raise ValueError("descriptors hold zero vectors")
    u = e / norms[:, None]
    mu = u.mean(dim=0)
    r = (u - mu).abs().sum(dim=1)
    q = torch.quantile(r, torch.tensor(list(quantiles), dtype=torch.float64))
    stats = {f"{p:g}": float(v) for p, v in zip(quantiles, q)}
    stats["max"] = float(r.max())
    return {"mean_unit": mu.numpy(), "mean_unit_norm": float(mu.norm()),
            "residual_l1_quantiles": stats, "norm_mean": float(norms.mean()),
            "count": int(e.shape[0])}


def suggested_clip(stats: dict, quantile: str = "0.99", step: float = 0.5) -> float:
    """C = the ``quantile`` of ||u - mu||_1 rounded up to a multiple of ``step``."""
    v = stats["residual_l1_quantiles"][quantile]
    return float(np.ceil(v / step) * step)
