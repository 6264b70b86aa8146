"""Images per second of anonymising a data set: the plain CLI against Ray Data with 1 and 2
CPU workers on the same images, the per-image stage times, Ray's overhead per image and
the peak RSS per worker. A script, not a timed test.

    .venv/bin/python bench/dataset_throughput.py [--images 200] [--model PATH|NAME] [--data DIR] [--out bench/out]

Images: a seeded sample (random.Random(0)) of --images LFW photos (250x250 JPEG, one face
each mostly) from the shared data folder (identitydp_fast/io/shared_data.py; never
copied into the repository: a temporary folder holds the copies and is removed).

What runs, each in a fresh process (model loads and Ray's start count as a user's would):

1. **stages**: in-process, one torch thread (what a 1-CPU worker has), per image:
   read the bytes, decode (files.decode_input: Pillow + SHA-256), anonymise
   (Anonymizer.anonymize: detect, align, identity, release, generate, blend), encode
   (image_codec.encode), write (files.write_atomic): mean ms per image. The first image
   (warm-up) is left out.
2. **cli**: ``identitydp anonymize IN -r --out ...`` (torch's default: every core):
   wall time from process start, images/s, peak RSS.
3. **ray W=1, W=2**: ``anonymize_dataset(IN, OUT, workers=W)`` on a fresh local Ray of 2
   CPUs (1 CPU and 1 torch thread per worker). Wall time from process start; Ray's start
   (``ray.init``); a worker's start (an actor constructing AnonymizeBatch: process,
   imports, model load), measured once. From the report (per row: worker, seconds of the
   file's own work, when it finished): steady state per worker, after its first file
   (warm-up), = its files / the time between its first and last finish; Ray's overhead per
   image = that time per file minus the file's own work (scheduling, block and row
   serialisation, the driver's reading of results, waiting for the next block). The
   CLI's steady state: the mean of its report's per-file seconds after the first.

Prints a markdown table and saves dataset-<time>.json/.md under --out. The machine's other
load is not controlled: on a shared machine run it alone.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY, SALT = "5a" * 32, "c3" * 16
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # loopback only


def _sample(data: Path, n: int, dest: Path) -> int:
    photos = sorted((data / "lfw").rglob("*.jpg"))
    if len(photos) < n:
        sys.exit(f"need {n} LFW images under {data / 'lfw'}, found {len(photos)}")
    for p in random.Random(0).sample(photos, n):
        target = dest / p.relative_to(data / "lfw")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, target)
    return n


def _child(code: str, env: dict | None = None, timeout: int = 3600) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last."""
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, **(env or {})}, timeout=timeout)
    wall = time.perf_counter() - t0
    if res.returncode not in (0, 1):
        sys.exit(f"child failed ({res.returncode}):\n{res.stderr[-4000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    return out


STAGES = r"""
import json, sys, time, tempfile, numpy as np, torch
from pathlib import Path
torch.set_num_threads(1)
from identitydp_fast.anonymizer import Anonymizer
from identitydp_fast.io import files, image_codec
from identitydp_fast.privacy.keys import derive_key
src, model = Path({src!r}), {model!r}
anon = Anonymizer(model=model)
out = Path(tempfile.mkdtemp())
t = {{k: [] for k in ("read", "decode", "anonymise", "encode", "write")}}
faces = 0
for i, p in enumerate(sorted(src.rglob("*.jpg"))):
    rel = p.relative_to(src).as_posix()
    t0 = time.perf_counter(); data = files.read_input(p)
    t1 = time.perf_counter(); dec = files.decode_input(data)
    t2 = time.perf_counter()
    rgb, res = anon.anonymize(dec.image.rgb, key=derive_key(bytes.fromhex({key!r}), bytes.fromhex({salt!r}), dec.digest, rel))
    t3 = time.perf_counter(); enc = image_codec.encode(dec.image, np.asarray(rgb if res else dec.image.rgb))
    t4 = time.perf_counter(); files.write_atomic(out / rel, enc)
    t5 = time.perf_counter()
    if i:  # the first image warms up the model
        for k, a, b in (("read", t0, t1), ("decode", t1, t2), ("anonymise", t2, t3), ("encode", t3, t4), ("write", t4, t5)):
            t[k].append(b - a)
        faces += len(res)
print(json.dumps({{"ms": {{k: 1000 * sum(v) / len(v) for k, v in t.items()}}, "images": len(t["read"]), "faces": faces}}))
"""

CLI = r"""
import json, resource, sys, time
from identitydp_fast.cli import main
rc = main(["anonymize", {src!r}, "-r", "--out", {out!r}, "--key", {key!r}, "--salt", {salt!r}, "-q",
           "--report", {report!r}] + ({model!r} and ["--model", {model!r}] or []))
secs = [f["seconds"] for f in json.load(open({report!r}))["files"]]
print(json.dumps({{"rc": rc, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "steady_ms": 1000 * sum(secs[1:]) / max(1, len(secs) - 1)}}))
"""

RAY = r"""
import json, time
t0 = time.perf_counter()
import ray
ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
t_init = time.perf_counter() - t0
from identitydp_fast.io import dataset, dataset_report, storage
start = None
if {measure_start!r}:
    src, out = storage.parse({src!r}), storage.parse({out!r} + "-probe")
    Probe = ray.remote(num_cpus=1)(dataset.AnonymizeBatch)
    t1 = time.perf_counter()
    actor = Probe.remote(src, out, {{"model": {model!r}}}, threads=1)
    ray.get(actor.__ray_ready__.remote())
    start = time.perf_counter() - t1
    ray.kill(actor)
t2 = time.perf_counter()
res = dataset.anonymize_dataset({src!r}, {out!r}, workers={workers}, model={model!r}, key={key!r}, salt={salt!r},
                                batch_size=16, report={report!r}, progress=False)
pipeline = time.perf_counter() - t2
_, table = dataset_report.read({report!r})
by_worker = {{}}
for r in table.to_pylist():
    by_worker.setdefault(r["worker"], []).append(r)
workers = []
for rows in by_worker.values():
    rows.sort(key=lambda r: r["finished"])
    warm = rows[1:]                     # after the worker's first file (its warm-up)
    span = rows[-1]["finished"] - rows[0]["finished"]
    workers.append({{"files": len(rows), "steady_files": len(warm), "span_s": span,
                    "busy_s": sum(r["seconds"] for r in warm), "first_s": rows[0]["seconds"],
                    "peak_rss_mb": max(r["worker_peak_rss_mb"] or 0 for r in rows)}})
print(json.dumps({{"init_s": t_init, "worker_start_s": start, "pipeline_s": pipeline,
                  "totals": res.totals, "workers": workers}}))
"""


def _ray_row(name: str, w: int, r: dict) -> tuple:
    """Steady state per worker: files after its first / time between its first and last
    finish; overhead: that time per file minus the file's own work."""
    ws = [x for x in r["workers"] if x["steady_files"] > 0]
    rate = sum(x["steady_files"] / x["span_s"] for x in ws if x["span_s"] > 0)
    busy = sum(x["busy_s"] for x in ws) / max(1, sum(x["steady_files"] for x in ws))
    over = sum(x["span_s"] - x["busy_s"] for x in ws) / max(1, sum(x["steady_files"] for x in ws))
    rss = " / ".join(f"{x['peak_rss_mb']:.0f}" for x in r["workers"])
    return name, w, r["wall_s"], r["totals"]["files"] / r["wall_s"], rate, 1000 * busy, 1000 * over, rss


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--model", default=None, help="weights file or packaged name (default: the packaged default)")
    ap.add_argument("--data", type=Path, default=None, help="the shared data folder (default: io/shared_data.py's)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from identitydp_fast.io.shared_data import default_data_root

    data = args.data or default_data_root()
    work = Path(tempfile.mkdtemp(prefix="idp-dataset-bench-"))
    try:
        src = work / "in"
        n = _sample(data, args.images, src)
        fmt = {"src": str(src), "model": args.model, "key": KEY, "salt": SALT}
        print(f"{n} LFW images in {src}; stages...", file=sys.stderr)
        stages = _child(STAGES.format(**fmt))
        print("cli...", file=sys.stderr)
        cli = _child(CLI.format(out=str(work / "cli"), report=str(work / "cli.json"), **fmt))
        ray_runs = {}
        for w in (1, 2):
            print(f"ray workers={w}...", file=sys.stderr)
            ray_runs[w] = _child(RAY.format(out=str(work / f"ray{w}"), workers=w, measure_start=(w == 1),
                                            report=str(work / f"ray{w}.parquet"), **fmt), env=RAY_ENV)
        per_img_ms = sum(stages["ms"].values())
        rows = [("plain CLI (`identitydp anonymize`, 2 torch threads)", 1, cli["wall_s"], n / cli["wall_s"],
                 1000 / cli["steady_ms"], cli["steady_ms"], None, f"{cli['peak_rss_mb']:.0f}")]
        rows += [_ray_row(f"Ray Data, {w} CPU worker(s) (1 torch thread each)", w, r) for w, r in ray_runs.items()]
        lines = [f"{n} LFW images (250x250 JPEG), model {args.model or 'packaged default'}, "
                 f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
                 f"python {platform.python_version()}",
                 "",
                 "| run | workers | wall s | images/s (wall) | images/s (steady) | ms/img of file work | "
                 "Ray overhead ms/img | peak RSS MB (per worker) |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, w, wall, ips, steady, busy, over, rss in rows:
            lines.append(f"| {name} | {w} | {wall:.1f} | {ips:.2f} | {steady:.2f} | {busy:.1f} | "
                         f"{'' if over is None else f'{over:.1f}'} | {rss} |")
        lines += ["", "wall: from process start (imports, model load, Ray start included); steady: "
                  "after each worker's first file; Ray overhead: a worker's time per file between "
                  "its first and last finish minus the file's own work.",
                  "", "Per-image stage times (1 torch thread, in-process, warm): "
                  + ", ".join(f"{k} {v:.1f} ms" for k, v in stages["ms"].items())
                  + f"; total {per_img_ms:.1f} ms ({stages['faces']} faces in {stages['images']} images)",
                  f"Ray start (ray.init) {ray_runs[1]['init_s']:.1f} s; a worker's start (process, "
                  f"imports, model load) {ray_runs[1]['worker_start_s']:.1f} s; first file per worker "
                  + ", ".join(f"{x['first_s']:.1f} s" for r in ray_runs.values() for x in r["workers"])]
        text = "\n".join(lines)
        print(text)
        args.out.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        (args.out / f"dataset-{stamp}.md").write_text(text + "\n")
        (args.out / f"dataset-{stamp}.json").write_text(json.dumps(
            {"images": n, "model": args.model, "stages_ms": stages["ms"], "cli": cli, "ray": ray_runs,
             "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
