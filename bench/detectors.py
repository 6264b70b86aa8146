"""Face detectors on the WIDER FACE dev subset (../shared/data/widerface): recall by face
height, false positives, AP, speed; plus latency at three photo sizes. Not a test.

    .venv/bin/python bench/detectors.py                       # every config, tables to stdout
    .venv/bin/python bench/detectors.py --configs centerface,hog --limit 50
    .venv/bin/python bench/detectors.py --mmod-limit 40 --out bench/DETECTORS.md

Scoring (the data's README): per image, detections highest score first each take the
unmatched valid face with the highest IoU >= 0.5 (a hit); failing that one is ignored if it
overlaps an ``invalid`` face at IoU >= 0.5, else it is a false positive (so is a second
detection of a matched face). WIDER leaves faces in crowds unannotated, so a second count,
FP/img (crowd-lenient), also ignores a false positive shorter than 10 px or overlapping any
annotation at IoU > 0.3. AP: VOC all-point over all detections (strict rule). Recall by
height and on the hard list are at the config's operating threshold (``OPERATING``);
"recall @ 1 FP/img" is the recall at the lowest threshold whose strict FP count is at most
one per image. Boxes: continuous pixels (dlib's inclusive boxes as (l, t, r + 1, b + 1)).

Detections of each config are cached in bench/out/detectors/<config>.json (``--rerun`` to
redo), so thresholds can be studied without running the detectors again (``--curve``).
Times: the sweep runs with ``--threads`` (default 1: this machine is shared); the latency
table with ``--latency-threads`` (default 2), median of ``--repeats`` runs.
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from identitydp_fast.io.shared_data import default_data_root
from identitydp_fast.pipeline import detect
from identitydp_fast.pipeline.decode import read_image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "detectors"
BINS = ((0, 16), (16, 32), (32, 64), (64, 128), (128, 1e9))
BIN_NAMES = ("<16", "16-32", "32-64", "64-128", ">=128")
FLOOR = detect.CNN_SCORE_FLOOR
#: config -> (kind, options); kind 'cnn' (raw network + NMS), 'dlib', 'yunet', 'pipeline'
CONFIGS = {
    "hog": ("dlib", {"detector": "hog", "upsample": 1}),
    "mmod": ("dlib", {"detector": "mmod", "upsample": 1}),
    "centerface": ("cnn", {"name": "centerface", "scales": (1.0,)}),
    "retinaface": ("cnn", {"name": "retinaface", "scales": (1.0,)}),
    "centerface-x2": ("cnn", {"name": "centerface", "scales": (1.0, 2.0)}),
    "retinaface-x2": ("cnn", {"name": "retinaface", "scales": (1.0, 2.0)}),
    "yunet": ("yunet", {}),
    "default": ("pipeline", {}),
}
CURVE = (0.05, 0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8)
#: threshold at which recall and FP/img are reported
OPERATING = {"hog": 0.0, "mmod": 0.0, "yunet": 0.6,
             **{k: detect.DEFAULT_MIN_SCORE[v[1]["name"]] for k, v in CONFIGS.items() if v[0] == "cnn"},
             "default": detect.DEFAULT_MIN_SCORE[detect.DEFAULT_DETECTOR]}


# ---------------------------------------------------------------------------- data

def load_annotations(root: Path) -> dict[str, dict]:
    """path -> {'boxes' (n, 4), 'valid' (n,) bool, 'height' (n,), 'hard' (n,) bool}."""
    rows = defaultdict(list)
    with open(root / "boxes.csv", newline="") as f:
        for r in csv.DictReader(f):
            rows[r["path"]].append(r)
    out = {}
    for path, rs in sorted(rows.items()):
        out[path] = {
            "boxes": np.array([[float(r[k]) for k in ("left", "top", "right", "bottom")] for r in rs]),
            "valid": np.array([r["invalid"] == "0" and float(r["width"]) > 0 and float(r["height"]) > 0
                               for r in rs]),
            "height": np.array([float(r["height"]) for r in rs]),
            "hard": np.array([r["hard"] == "1" for r in rs]),
        }
    return out


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of x0 y0 x1 y1 boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-12)


# ---------------------------------------------------------------------------- scoring

def match_image(dets: np.ndarray, gt: dict):
    """Per detection (score-sorted): label 1 hit, 0 FP, -1 ignored, and lenient flag (a FP
    ignored by the crowd rule); per valid face: the best score of the detection that hit it
    (nan: missed at any threshold)."""
    order = np.argsort(-dets[:, 4]) if len(dets) else np.zeros(0, int)
    d = dets[order]
    ov = iou(d[:, :4], gt["boxes"])
    valid = gt["valid"]
    taken = np.zeros(len(valid), bool)
    hit_score = np.full(len(valid), np.nan)
    label, crowd = np.zeros(len(d), int), np.zeros(len(d), bool)
    for i in range(len(d)):
        cand = np.where(valid & ~taken & (ov[i] >= 0.5))[0] if ov.shape[1] else np.zeros(0, int)
        if len(cand):
            j = cand[np.argmax(ov[i, cand])]
            taken[j], hit_score[j], label[i] = True, d[i, 4], 1
        elif ov.shape[1] and np.any(~valid & (ov[i] >= 0.5)):
            label[i] = -1
        else:
            label[i] = 0
            crowd[i] = (d[i, 3] - d[i, 1] < 10) or (ov.shape[1] and ov[i].max() > 0.3)
    return d[:, 4], label, crowd, hit_score


def evaluate(dets_by_image: dict, ann: dict, threshold: float) -> dict:
    """The metrics of one config (module docstring)."""
    scores, labels, crowds, hits = [], [], [], []
    heights, hard = [], []
    for path, dets in dets_by_image.items():
        gt = ann[path]
        s, l, c, h = match_image(np.asarray(dets, float).reshape(-1, 5), gt)
        scores.append(s), labels.append(l), crowds.append(c)
        hits.append(h[gt["valid"]]), heights.append(gt["height"][gt["valid"]]), hard.append(gt["hard"][gt["valid"]])
    s, l, c = np.concatenate(scores), np.concatenate(labels), np.concatenate(crowds)
    h, hgt, hd = np.concatenate(hits), np.concatenate(heights), np.concatenate(hard)
    n_img, n_pos = len(dets_by_image), len(h)
    found = h >= threshold                                  # nan compares False: missed
    out = {"images": n_img, "faces": n_pos, "threshold": threshold,
           "recall": found.mean(), "recall_hard": found[hd].mean()}
    for (lo, hi), name in zip(BINS, BIN_NAMES):
        sel = (hgt >= lo) & (hgt < hi)
        out[f"recall {name}"] = found[sel].mean() if sel.any() else float("nan")
    out["recall >=32"] = found[hgt >= 32].mean() if (hgt >= 32).any() else float("nan")
    above = s >= threshold
    out["fp_per_image"] = np.sum((l == 0) & above) / n_img
    out["fp_per_image_lenient"] = np.sum((l == 0) & ~c & above) / n_img
    keep = l >= 0                                           # AP over hits and FPs
    order = np.argsort(-s[keep], kind="stable")
    tp = (l[keep][order] == 1).astype(float)
    ctp, cfp = np.cumsum(tp), np.cumsum(1 - tp)
    rec, prec = ctp / n_pos, ctp / np.maximum(ctp + cfp, 1e-12)
    mprec = np.concatenate([[0], prec, [0]])
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    mrec = np.concatenate([[0], rec, [1]])
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    out["ap"] = float(np.sum((mrec[idx + 1] - mrec[idx]) * mprec[idx + 1]))
    ok = np.where(cfp <= n_img)[0]
    out["recall_at_1fp"] = float(rec[ok[-1]]) if len(ok) else 0.0
    out["score_at_1fp"] = float(s[keep][order][ok[-1]]) if len(ok) else float("nan")
    return out


# ---------------------------------------------------------------------------- running

def make_runner(config: str):
    """fn(rgb) -> (n, 5) detections x0 y0 x1 y1 score for ``config``."""
    kind, opt = CONFIGS[config]
    if kind == "cnn":
        from identitydp_fast.models.face_detector import get_detector

        det = get_detector(opt["name"])

        def run(rgb):
            [d] = det.detect([rgb], FLOOR, opt["scales"])
            return np.concatenate([d.boxes, d.scores[:, None]], 1)
    elif kind == "dlib":
        obj = detect._dlib_object(opt["detector"])

        def run(rgb):
            if opt["detector"] == "hog":
                rects, scores, _ = obj.run(rgb, opt["upsample"], -0.5)   # floor below the default 0
            else:
                found = obj(rgb, opt["upsample"])
                rects, scores = [d.rect for d in found], [d.confidence for d in found]
            return np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1, s]
                             for r, s in zip(rects, scores)]).reshape(-1, 5)
    elif kind == "yunet":
        from identitydp_fast.evaluation.judge import YuNet

        yn = YuNet(score_threshold=FLOOR, max_side=10 ** 6, threads=torch.get_num_threads())

        def run(rgb):
            return np.array([[*f[0], f[1]] for f in yn.detect(rgb)], float).reshape(-1, 5)
    else:
        def run(rgb):
            faces = detect.detect_faces(rgb)
            return np.array([[f.box[0], f.box[1], f.box[2] + 1, f.box[3] + 1, f.score]
                             for f in faces], float).reshape(-1, 5)
    return run


def sweep(config: str, paths: list[str], root: Path, rerun: bool) -> dict:
    """{'dets': {path: [[x0, y0, x1, y1, s], ...]}, 'seconds': {path: s}} (cached)."""
    cache = OUT / f"{config}.json"
    got = json.loads(cache.read_text()) if cache.is_file() and not rerun else {"dets": {}, "seconds": {}}
    todo = [p for p in paths if p not in got["dets"]]
    if todo:
        run = make_runner(config)
        run(read_image(root / todo[0]))                         # warm-up (loading, oneDNN plans)
        for k, p in enumerate(todo):
            rgb = read_image(root / p)
            t0 = time.perf_counter()
            d = run(rgb)
            got["seconds"][p] = time.perf_counter() - t0
            got["dets"][p] = np.round(d, 2).tolist()
            if (k + 1) % 50 == 0:
                print(f"  {config}: {k + 1}/{len(todo)}", flush=True)
                cache.write_text(json.dumps(got))
        OUT.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(got))
    return got


def latency(configs: list[str], root: Path, threads: int, repeats: int) -> list[tuple]:
    """(config, size, median seconds) on a WIDER photo resized to each size."""
    from PIL import Image

    torch.set_num_threads(threads)
    src = Image.open(root / "img" / "12--Group" / sorted((root / "img" / "12--Group").iterdir())[0].name) \
        if (root / "img" / "12--Group").is_dir() else Image.open(ROOT / "examples" / "astronaut.png")
    rows = []
    for w, h in ((640, 480), (1920, 1080), (4000, 3000)):
        rgb = np.asarray(src.convert("RGB").resize((w, h), Image.BILINEAR))
        for config in configs:
            if config == "mmod" and w > 640:
                continue                                         # minutes per call on this CPU
            run = make_runner(config)
            run(rgb[:64, :64].copy())
            n = 1 if (w > 2000 and config in ("hog", "centerface-x2", "retinaface-x2")) else repeats
            ts = []
            for _ in range(n):
                t0 = time.perf_counter()
                run(rgb)
                ts.append(time.perf_counter() - t0)
            rows.append((config, f"{w}x{h}", statistics.median(ts)))
            print(f"  latency {config} {w}x{h}: {rows[-1][2]:.3f} s", flush=True)
    return rows


# ---------------------------------------------------------------------------- report

def table(results: dict) -> str:
    head = (["config", "images", "thr", "recall"] + [f"R {b}" for b in BIN_NAMES] +
            ["R >=32", "R hard", "FP/img", "FP/img lenient", "AP", "R @1FP/img (thr)", "s/img"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for config, (m, sec) in results.items():
        cells = [config, str(m["images"]), f"{m['threshold']:g}", f"{m['recall']:.3f}"]
        cells += [f"{m[f'recall {b}']:.3f}" for b in BIN_NAMES]
        cells += [f"{m['recall >=32']:.3f}", f"{m['recall_hard']:.3f}", f"{m['fp_per_image']:.2f}",
                  f"{m['fp_per_image_lenient']:.2f}", f"{m['ap']:.3f}", f"{m['recall_at_1fp']:.3f} ({m['score_at_1fp']:.2f})", f"{sec:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curve(dets: dict, ann: dict, thresholds) -> str:
    head = ["thr", "recall"] + [f"R {b}" for b in BIN_NAMES] + ["R hard", "FP/img", "FP/img lenient"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in thresholds:
        m = evaluate(dets, ann, t)
        cells = [f"{t:g}", f"{m['recall']:.3f}"] + [f"{m[f'recall {b}']:.3f}" for b in BIN_NAMES]
        cells += [f"{m['recall_hard']:.3f}", f"{m['fp_per_image']:.2f}", f"{m['fp_per_image_lenient']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="widerface folder (default: shared data)")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    ap.add_argument("--mmod-limit", type=int, default=40, help="images for mmod (slow)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--latency-threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--latency-configs", default="", help="configs timed at the three sizes (default: --configs)")
    ap.add_argument("--curve", default="", help="configs whose score curve to print")
    ap.add_argument("--rerun", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="also write the tables here (markdown)")
    a = ap.parse_args(argv)
    root = a.data or default_data_root() / "widerface"
    if not (root / "boxes.csv").is_file():
        raise SystemExit(f"detectors: {root}/boxes.csv not found (pass --data)")
    torch.set_num_threads(a.threads)
    ann = load_annotations(root)
    paths = list(ann)[:a.limit] if a.limit else list(ann)
    configs = [c for c in a.configs.split(",") if c]
    results, cached = {}, {}
    for config in configs:
        use = paths[:a.mmod_limit] if config == "mmod" else paths
        print(f"{config}: {len(use)} images", flush=True)
        got = sweep(config, use, root, a.rerun)
        dets = {p: got["dets"][p] for p in use}
        cached[config] = dets
        sec = float(np.mean([got["seconds"][p] for p in use]))
        results[config] = (evaluate(dets, ann, OPERATING[config]), sec)
        if config != "default":      # the same detections at the threshold of 1 strict FP/img
            at1 = evaluate(dets, ann, evaluate(dets, ann, -1e9)["score_at_1fp"])
            results[f"{config} @1FP/img"] = (at1, sec)
    if "mmod" in configs:      # the other configs on mmod's images, for a like-for-like row
        sub = paths[:a.mmod_limit]
        for config in configs:
            if config != "mmod":
                got = sweep(config, sub, root, False)
                results[f"{config} (mmod's {len(sub)})"] = (
                    evaluate({p: got["dets"][p] for p in sub}, ann, OPERATING[config]),
                    float(np.mean([got["seconds"][p] for p in sub])))
    report = [f"## WIDER FACE dev subset ({len(paths)} images), {platform.processor() or platform.machine()}, "
              f"torch {torch.__version__}, {a.threads} thread(s)", "", table(results), ""]
    for config in [c for c in a.curve.split(",") if c]:
        report += [f"### {config}: threshold sweep", "",
                   curve(cached[config], ann, CURVE), ""]
    if not a.no_latency:
        lat_configs = [c for c in a.latency_configs.split(",") if c] or configs
        rows = latency(lat_configs, root, a.latency_threads, a.repeats)
        report += [f"### Latency, {a.latency_threads} threads, median of {a.repeats} (one run for the slowest)",
                   "", "| config | 640x480 | 1920x1080 | 4000x3000 |", "|---|---|---|---|"]
        by = defaultdict(dict)
        for c, size, t in rows:
            by[c][size] = t
        for c in lat_configs:
            report.append(f"| {c} | " + " | ".join(f"{by[c][s]:.3f} s" if s in by[c] else "-"
                                                  for s in ("640x480", "1920x1080", "4000x3000")) + " |")
    text = "\n".join(report)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
