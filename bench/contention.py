"""The prior-256 generator's latency when the machine is not idle: median and p90 of the
generator call (batch 1) for the eager reference and the engine, alone and with one
other process spinning on a core, per thread setting.

    .venv/bin/python bench/contention.py [--repeats 30] [--settings default,passive,1thread]

Settings (each in a fresh process: libgomp reads its environment once, at load):
  active    OMP_WAIT_POLICY=ACTIVE: waiting threads spin (libgomp's default when nothing
            is set spins ~300,000 times before sleeping)
  passive   OMP_WAIT_POLICY=PASSIVE: waiting threads sleep at once (no spinning)
  spin10k   GOMP_SPINCOUNT=10000: spin briefly (~10 us), then sleep
  1thread   torch.set_num_threads(1) (IDP_THREADS=1): no barrier to wait at

Why it matters: with 2 threads on 2 cores and a third busy process, every OpenMP parallel
region ends at a barrier where one thread waits for the other, which the scheduler
has preempted: latency collapses (tens of ms per region) and p90 explodes. Printed as a
markdown table; the busy process is ``python -c 'while True: pass'``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

_CHILD = r"""
import json, os, statistics, sys, time, torch
threads = int(os.environ.get("IDP_BENCH_THREADS", "0"))
if threads:
    torch.set_num_threads(threads)
from identitydp_fast.pipeline.generate import Generator, load_model
model, _ = load_model("prior-256", torch.device("cpu"))
x = torch.rand(1, 3, 256, 256) * 2 - 1
ident = torch.nn.functional.normalize(torch.randn(1, 128), dim=1)
out = {}
for backend in ("reference", "cpu"):
    gen = Generator(model, backend, torch.device("cpu"))
    for _ in range(3):
        gen(x, ident)
    times = []
    for _ in range(int(sys.argv[1])):
        t0 = time.perf_counter(); gen(x, ident); times.append(1e3 * (time.perf_counter() - t0))
    times.sort()
    out[backend] = (statistics.median(times), times[int(0.9 * (len(times) - 1))])
print(json.dumps(out))
"""

SETTINGS = {"active": {"OMP_WAIT_POLICY": "ACTIVE"}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
            "spin10k": {"GOMP_SPINCOUNT": "10000"}, "1thread": {"IDP_BENCH_THREADS": "1"}}


def run(setting: str, busy: bool, repeats: int) -> dict:
    env = {**os.environ, **SETTINGS[setting]}
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)
        out = subprocess.run([sys.executable, "-c", _CHILD, str(repeats)], env=env, check=True,
                             capture_output=True, text=True).stdout
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--settings", default="active,passive,spin10k,1thread")
    args = p.parse_args()
    print("| setting | load | reference median / p90 (ms) | engine median / p90 (ms) | engine vs reference |")
    print("|---|---|---|---|---|")
    for setting in args.settings.split(","):
        for busy in (False, True):
            r = run(setting, busy, args.repeats)
            (rm, rp), (em, ep) = r["reference"], r["cpu"]
            print(f"| {setting} | {'1 core busy' if busy else 'idle'} | {rm:.1f} / {rp:.1f} | "
                  f"{em:.1f} / {ep:.1f} | {rm / em:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
