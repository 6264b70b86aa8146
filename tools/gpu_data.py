"""Pack the training crop cache small enough to carry to a lent GPU machine, and unpack it
there into an ordinary crop cache (the format ``training.data.CropDataset`` reads).

The device tool carries at most 64 MiB with the working tree, and the dlib ResNet file
the identity loss needs takes 22 MB of it, so the crops travel as JPEG (quality 90 by
default, ~4-6 kB per 128x128 crop instead of 49 kB raw) in one ``.npz`` with their
descriptors, landmarks, paths and labels, under ``--max-mib`` (default 40):

    python tools/gpu_data.py pack --cache /work/runs/cache_full --out .gpu_data/train.npz
    python tools/gpu_data.py unpack .gpu_data/train.npz --cache /tmp/gpu_cache   # on the GPU

When the whole train split does not fit, a seeded random subset of it does (the summary
says how many). Only the TRAIN split is packed: the held-out LFW people never leave this
machine. A fresh (not warm-started) run on the unpacked cache computes the DP centre and
clip from the packed subset's descriptors (still training data only); a warm start
(``train.py --init``) keeps the published model's. JPEG changes the pixels slightly (the crops are training targets, not
evaluation data; the descriptors are the ones computed on the original crops).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PACK_FORMAT = "identitydp-gpu-pack-1"


def _jpeg(crop: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def pack(cache: Path, out: Path, max_mib: float = 40.0, quality: int = 90, seed: int = 0) -> dict:
    """Write ``out`` (.npz) with as many train crops as fit in ``max_mib``; returns a summary."""
    from identitydp_fast.training.data import CropDataset

    ds = CropDataset(cache, "train")
    n = len(ds)
    order = np.random.default_rng(seed).permutation(n)
    budget = int(max_mib * 2**20)
    descs = ds.descriptors.astype(np.float32)
    # per-crop cost besides the JPEG: descriptor, landmarks, path and label in the json
    per_item = 128 * 4 + 5 * 2 * 4 + 80
    blobs, chosen, used = [], [], 0
    for i in order:
        crop, _, _ = ds[int(i)]
        b = _jpeg(crop.permute(1, 2, 0).numpy(), quality)
        if used + len(b) + per_item + len(ds.paths[i]) > budget:
            break
        blobs.append(b)
        chosen.append(int(i))
        used += len(b) + per_item + len(ds.paths[i])
    chosen_arr = np.array(chosen, dtype=np.int64)
    lengths = np.array([len(b) for b in blobs], dtype=np.int64)
    meta = {"format": PACK_FORMAT, "size": ds.size, "quality": quality, "seed": seed,
            "source": str(cache), "train_total": n, "packed": len(chosen),
            "paths": [ds.paths[i] for i in chosen],
            "labels": [ds.names[ds.labels[i]] if ds.labels[i] >= 0 else None for i in chosen]}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, jpeg=np.frombuffer(b"".join(blobs), dtype=np.uint8), lengths=lengths,
             descriptors=descs[chosen_arr], landmarks=ds.landmarks[chosen_arr], meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    tmp.replace(out)
    return {"packed": len(chosen), "train_total": n, "mib": out.stat().st_size / 2**20,
            "mean_jpeg_bytes": float(lengths.mean()) if len(lengths) else 0.0}


def unpack(packed: Path, cache: Path) -> dict:
    """Write a crop cache (train split only, one file set per original set: lfw, utkface)
    from a pack, in ``build_crop_cache``'s format; returns {set: count}."""
    from PIL import Image

    with np.load(packed) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        if meta.get("format") != PACK_FORMAT:
            raise ValueError(f"{packed}: not a {PACK_FORMAT} file (format {meta.get('format')!r})")
        data, lengths = z["jpeg"].tobytes(), z["lengths"]
        descs, lms = z["descriptors"], z["landmarks"]
    size = int(meta["size"])
    crops = np.empty((len(lengths), size, size, 3), dtype=np.uint8)
    pos = 0
    for k, ln in enumerate(lengths):
        img = Image.open(io.BytesIO(data[pos:pos + int(ln)])).convert("RGB")
        if img.size != (size, size):
            raise ValueError(f"{packed}: crop {k} is {img.size}, expected {size}x{size}")
        crops[k] = np.asarray(img)
        pos += int(ln)
    cache.mkdir(parents=True, exist_ok=True)
    sets = [p.split("/", 1)[0] for p in meta["paths"]]
    counts = {}
    for name in sorted(set(sets)):
        idx = np.array([i for i, s in enumerate(sets) if s == name], dtype=np.int64)
        np.save(cache / f"{name}_train_crops.npy", crops[idx])
        np.save(cache / f"{name}_train_descriptors.npy", descs[idx].astype(np.float32))
        entries = [{"path": meta["paths"][i].split("/", 1)[1], "label": meta["labels"][i],
                    "landmarks": lms[i].tolist()} for i in idx]
        (cache / f"{name}.json").write_text(json.dumps({
            "format": 1, "set": name, "size": size, "limit": None, "min_images": None,
            "backend": "unpacked", "source": meta["source"],
            "splits": {"train": {"count": len(entries), "entries": entries}}}))
        counts[name] = len(entries)
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="crop cache -> one .npz under --max-mib")
    p.add_argument("--cache", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--max-mib", type=float, default=40.0)
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--seed", type=int, default=0)
    u = sub.add_parser("unpack", help=".npz -> crop cache folder")
    u.add_argument("packed", type=Path)
    u.add_argument("--cache", required=True, type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "pack":
        print(json.dumps(pack(a.cache, a.out, a.max_mib, a.quality, a.seed)))
    else:
        print(json.dumps(unpack(a.packed, a.cache)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
