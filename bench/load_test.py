"""Concurrent-load test of one shared Anonymizer: latency percentiles, throughput, every
result checked, and resident memory over many calls.

    .venv/bin/python bench/load_test.py --threads 4 --requests 25 --calls-for-leak 2000 [--model W]

Workload: real-size photos, examples/astronaut.png and (when the shared data is present)
a few LFW images, each resized to about --megapixels (default 1.5 MP). One Anonymizer is
built, warmed up, and then:

1. **Load.** --threads threads each send --requests ``anonymize(image)`` calls (detection
   included, fresh key per call), images taken in turn; per-call latency (wall clock around
   the call), p50/p95/p99, total throughput (calls / wall time of the phase).
2. **Checks, every call.** Against the faces detected once up front: the number of faces
   and their boxes, output shape and dtype, output pixels outside the union of the faces'
   crop footprints (the only pixels paste-back may touch, +2 px) bit-identical to the
   input, and each face's box changed. Any failure is counted and the first few are shown.
3. **Memory.** --calls-for-leak sequential calls (faces passed in, so the dlib detector is
   not what is measured and the phase stays short; --leak-detect includes it), VmRSS from
   /proc/self/status sampled every calls/40; after the first 20% (allocator and caches
   warming), the least-squares slope of RSS over calls, in KiB per call. Verdict "no growth"
   when slope x calls stays under max(32 MiB, 5% of the RSS at the start of the fit).

Writes load-<time>.json and load-<time>.md under --out (default bench/out). Exit 1 when any
check failed or memory grew.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def rss_kib() -> int:
    """Resident set size of this process in KiB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def load_images(megapixels: float, lfw: int) -> list[tuple[str, np.ndarray]]:
    """examples/astronaut.png and up to ``lfw`` LFW images (sorted names), each resized
    (Lanczos) to about ``megapixels`` MP, aspect kept."""
    from PIL import Image

    from identitydp_fast.pipeline.decode import read_image
    from identitydp_fast.io.shared_data import default_data_root

    paths = [REPO / "examples" / "astronaut.png"]
    root = default_data_root() / "lfw"
    if lfw > 0 and root.is_dir():
        found = []
        for person in sorted(root.iterdir()):
            files = sorted(person.glob("*.jpg")) if person.is_dir() else []
            if files:
                found.append(files[0])
            if len(found) == lfw:
                break
        paths += found
    images = []
    for p in paths:
        img = Image.fromarray(read_image(p))
        scale = math.sqrt(megapixels * 1e6 / (img.width * img.height))
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        images.append((p.name, np.asarray(img.resize(size, Image.LANCZOS))))
    return images


def untouched_mask(shape, faces, margin: int = 2) -> np.ndarray:
    """(H, W) bool: True where paste-back may not write (outside every face's crop
    footprint + margin). The footprint does not depend on the crop size: the alignment
    template scales with it."""
    from identitydp_fast.pipeline.align import crop_transform

    h, w = shape[:2]
    keep = np.ones((h, w), dtype=bool)
    size = 128
    corners = torch.tensor([[-0.5, -0.5, 1], [size - 0.5, -0.5, 1], [-0.5, size - 0.5, 1],
                            [size - 0.5, size - 0.5, 1]], dtype=torch.float64)
    for f in faces:
        m = crop_transform(np.array(f.landmarks)[None], size)[0]     # crop -> frame
        pts = corners @ m.to(torch.float64).T
        x0 = max(0, math.floor(float(pts[:, 0].min())) - margin)
        y0 = max(0, math.floor(float(pts[:, 1].min())) - margin)
        x1 = min(w - 1, math.ceil(float(pts[:, 0].max())) + margin)
        y1 = min(h - 1, math.ceil(float(pts[:, 1].max())) + margin)
        if x1 >= x0 and y1 >= y0:
            keep[y0:y1 + 1, x0:x1 + 1] = False
    return keep


class Expected:
    """What every result for one image must satisfy."""

    def __init__(self, name: str, image: np.ndarray, faces: list):
        self.name, self.image, self.faces = name, image, faces
        self.boxes = sorted(tuple(f.box) for f in faces)
        self.keep = untouched_mask(image.shape, faces)

    def problems(self, out, results) -> list[str]:
        out = np.asarray(out)
        bad = []
        if out.shape != self.image.shape or out.dtype != np.uint8:
            return [f"{self.name}: output {out.shape} {out.dtype}, expected {self.image.shape} uint8"]
        boxes = sorted(tuple(r.box) for r in results)
        if boxes != self.boxes:
            bad.append(f"{self.name}: faces {boxes}, expected {self.boxes}")
        changed = int((out != self.image).any(axis=2)[self.keep].sum())
        if changed:
            bad.append(f"{self.name}: {changed} pixel(s) outside the faces changed")
        for (l, t, r, b) in self.boxes:
            if np.array_equal(out[t:b + 1, l:r + 1], self.image[t:b + 1, l:r + 1]):
                bad.append(f"{self.name}: face {(l, t, r, b)} unchanged")
        return bad


def percentile(xs, q: float) -> float:
    return float(np.percentile(np.asarray(xs, dtype=np.float64), q)) if len(xs) else float("nan")


def load_phase(anon, expected: list[Expected], threads: int, requests: int) -> dict:
    """threads x requests concurrent anonymize() calls; latencies and checks."""
    lat: list[float] = []
    problems: list[str] = []
    lock = threading.Lock()

    def worker(tid: int) -> None:
        for i in range(requests):
            exp = expected[(tid + i * threads) % len(expected)]
            t0 = time.perf_counter()
            out, results = anon.anonymize(exp.image)
            dt = time.perf_counter() - t0
            bad = exp.problems(out, results)
            with lock:
                lat.append(dt)
                problems.extend(bad)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for f in [pool.submit(worker, t) for t in range(threads)]:
            f.result()
    wall = time.perf_counter() - t0
    n = len(lat)
    return {"threads": threads, "requests_per_thread": requests, "calls": n,
            "wall_s": wall, "throughput_per_s": n / wall if wall > 0 else float("nan"),
            "latency_ms": {"p50": 1e3 * percentile(lat, 50), "p95": 1e3 * percentile(lat, 95),
                           "p99": 1e3 * percentile(lat, 99), "min": 1e3 * min(lat),
                           "max": 1e3 * max(lat), "mean": 1e3 * float(np.mean(lat))},
            "failed_checks": len(problems), "first_failures": problems[:5]}


def leak_phase(anon, expected: list[Expected], calls: int, detect: bool) -> dict:
    """``calls`` sequential calls; RSS samples and the growth verdict."""
    every = max(1, calls // 40)
    samples = [(0, rss_kib())]
    problems = 0
    t0 = time.perf_counter()
    for i in range(1, calls + 1):
        exp = expected[i % len(expected)]
        out, results = anon.anonymize(exp.image, faces=None if detect else exp.faces)
        if i % every == 0 or i == calls:
            problems += len(exp.problems(out, results))
            samples.append((i, rss_kib()))
    wall = time.perf_counter() - t0
    fit = [(c, r) for c, r in samples if c >= 0.2 * calls]
    if len(fit) >= 2 and fit[0][1] > 0:
        x = np.array([c for c, _ in fit], dtype=np.float64)
        y = np.array([r for _, r in fit], dtype=np.float64)
        slope = float(np.polyfit(x, y, 1)[0]) if np.ptp(x) > 0 else 0.0
        limit = max(32 * 1024, 0.05 * fit[0][1])
        verdict = "no growth" if slope * calls < limit else "GROWTH"
    else:
        slope, limit, verdict = float("nan"), float("nan"), "not measured (too few calls or no /proc)"
    return {"calls": calls, "detection_included": detect, "wall_s": wall,
            "rss_kib_start": samples[0][1], "rss_kib_end": samples[-1][1],
            "rss_kib_fit_start": fit[0][1] if fit else None,
            "slope_kib_per_call": slope, "limit_kib": limit, "verdict": verdict,
            "samples": samples, "failed_checks": problems}


def machine(device: str) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "device": device}
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                        capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def markdown(rec: dict) -> str:
    m, ld, lk = rec["machine"], rec["load"], rec["leak"]
    lines = [f"# Load test ({rec['time']})", "",
             f"{m.get('gpu', m['cpu'])}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
             f"device {m['device']}, backend {rec['backend']}, commit {m.get('commit', '?')}; model "
             f"{rec['model']}; images: {', '.join(f'{n} {w}x{h} ({k} face(s))' for n, w, h, k in rec['images'])}", "",
             "| threads | calls | p50 ms | p95 ms | p99 ms | max ms | throughput /s | failed checks |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {ld['threads']} | {ld['calls']} | {ld['latency_ms']['p50']:.1f} | {ld['latency_ms']['p95']:.1f} "
             f"| {ld['latency_ms']['p99']:.1f} | {ld['latency_ms']['max']:.1f} | {ld['throughput_per_s']:.2f} "
             f"| {ld['failed_checks']} |", "",
             f"Memory over {lk['calls']} sequential calls (detection {'included' if lk['detection_included'] else 'excluded: faces passed in'}): "
             f"RSS {lk['rss_kib_start'] / 1024:.0f} -> {lk['rss_kib_end'] / 1024:.0f} MiB, slope after "
             f"warm-up {lk['slope_kib_per_call']:.3f} KiB/call; verdict: **{lk['verdict']}** "
             f"(limit: slope x calls < {lk['limit_kib'] / 1024:.0f} MiB); failed checks {lk['failed_checks']}."]
    for f in ld["first_failures"]:
        lines.append(f"- {f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--requests", type=int, default=25, help="calls per thread")
    ap.add_argument("--calls-for-leak", type=int, default=2000, help="sequential calls for the RSS check (0: skip)")
    ap.add_argument("--leak-detect", action="store_true", help="include face detection in the RSS phase")
    ap.add_argument("--model", default=None, help="weights file (default: the packaged model)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--megapixels", type=float, default=1.5, help="size of every test image")
    ap.add_argument("--lfw", type=int, default=3, help="LFW images added when the shared data is present")
    ap.add_argument("--out", default=str(REPO / "bench" / "out"), help="folder for the JSON and markdown")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.requests < 1 or args.calls_for_leak < 0 or not 0.01 <= args.megapixels <= 50:
        ap.error("need --threads >= 1, --requests >= 1, --calls-for-leak >= 0, 0.01 <= --megapixels <= 50")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but no CUDA GPU is visible to torch")

    from identitydp_fast.anonymizer import Anonymizer

    try:
        anon = Anonymizer(model=args.model, device=args.device, backend=args.backend)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"load_test: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    anon.warmup()
    images = load_images(args.megapixels, args.lfw)
    expected = [Expected(n, img, anon.detect(img) if hasattr(anon, "detect") else
                         anon.anonymize(img)[1]) for n, img in images]
    expected = [e for e in expected if e.faces] or expected
    print(f"load_test: {len(expected)} image(s): " + ", ".join(
        f"{e.name} {e.image.shape[1]}x{e.image.shape[0]} ({len(e.faces)} face(s))" for e in expected))
    # one untimed call per image, in threads, so lazily built state is in place
    load_phase(anon, expected, min(args.threads, len(expected)), 1)

    rec = {"time": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(args.device),
           "backend": args.backend, "model": args.model or "packaged default",
           "images": [(e.name, int(e.image.shape[1]), int(e.image.shape[0]), len(e.faces)) for e in expected]}
    rec["load"] = load_phase(anon, expected, args.threads, args.requests)
    ld = rec["load"]
    print(f"load: {ld['threads']} threads x {ld['requests_per_thread']} = {ld['calls']} calls in "
          f"{ld['wall_s']:.1f} s: {ld['throughput_per_s']:.2f}/s, p50 {ld['latency_ms']['p50']:.1f} ms, "
          f"p95 {ld['latency_ms']['p95']:.1f} ms, p99 {ld['latency_ms']['p99']:.1f} ms; "
          f"failed checks {ld['failed_checks']}")
    for f in ld["first_failures"]:
        print(f"  {f}")
    rec["leak"] = leak_phase(anon, expected, args.calls_for_leak, args.leak_detect)
    lk = rec["leak"]
    print(f"memory: {lk['calls']} calls, RSS {lk['rss_kib_start'] / 1024:.0f} -> {lk['rss_kib_end'] / 1024:.0f} MiB, "
          f"slope {lk['slope_kib_per_call']:.3f} KiB/call: {lk['verdict']}; failed checks {lk['failed_checks']}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"load-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    stem.with_suffix(".json").write_text(json.dumps(rec, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(rec))
    print(f"wrote {stem}.json and {stem}.md")
    ok = ld["failed_checks"] == 0 and lk["failed_checks"] == 0 and lk["verdict"] != "GROWTH"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
