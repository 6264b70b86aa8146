"""pytest-benchmark plumbing for bench/: providers, device sync, and a ratio table.

Every benchmark takes a ``provider`` (reference, cpu, cuda, triton) and a size. At the
end of the session a table prints each provider's median time and its speed-up over
the ``reference`` provider measured in the same run (same group, same size), and the
table is saved as JSON under bench/out/ with the machine, versions and commit.
Triton is benchmarked only on a GPU (its CPU interpreter is for tests, not timing).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess

import pytest
import torch

from identitydp_fast import _backends

PROVIDERS = ("reference", "cpu", "cuda", "triton")
#: external baselines some benchmarks add (e.g. dlib itself); sorted before the providers
EXTERNAL = ("dlib",)


def provider_device(provider: str) -> str:
    return "cuda" if provider in ("cuda", "triton") else (
        "cuda" if provider == "reference" and os.environ.get("IDP_BENCH_DEVICE") == "cuda" else "cpu")


def provider_params():
    out = []
    for p in PROVIDERS:
        dev = provider_device(p)
        usable = _backends.available(p, dev) and not (p == "triton" and dev == "cpu")
        marks = [] if usable else [pytest.mark.skip(reason=f"{p} not available on {dev}")]
        out.append(pytest.param(p, marks=marks, id=p))
    return out


@pytest.fixture
def sync():
    """Call after the timed function so GPU work is finished before the clock is read."""
    if torch.cuda.is_available():
        return torch.cuda.synchronize
    return lambda: None


def _machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    try:
        import triton
        info["triton"] = triton.__version__
    except ImportError:
        pass
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                        text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    rows = []
    for bench in session.benchmarks:
        params = bench.params or {}
        if not bench.stats:
            continue
        rows.append({"group": bench.group, "size": params.get("size"), "provider": params.get("provider"),
                     "median_s": bench.stats.median, **(bench.extra_info or {})})
    ref = {(r["group"], r["size"]): r["median_s"] for r in rows if r["provider"] == "reference"}
    lines = [f"{'group':<18} {'size':>9} {'provider':<10} {'median':>12} {'throughput':>22} {'x reference':>12}"]
    order = EXTERNAL + PROVIDERS
    for r in sorted(rows, key=lambda r: (r["group"] or "", str(r["size"] or ""), order.index(r["provider"])
                                         if r["provider"] in order else len(order))):
        base = ref.get((r["group"], r["size"]))
        r["speedup_vs_reference"] = None if base is None else base / r["median_s"]
        unit, count = r.get("unit", "items"), r.get("items", 0)
        thr = f"{count / r['median_s']:.3g} {unit}/s" if count else ""
        sp = "" if r["speedup_vs_reference"] is None else f"{r['speedup_vs_reference']:.1f}x"
        lines.append(f"{r['group'] or '':<18} {r['size'] or '':>9} {r['provider']:<10} "
                     f"{r['median_s'] * 1e3:>10.3f}ms {thr:>22} {sp:>12}")
    terminalreporter.write_sep("=", "identitydp-fast: speed-up over the reference (same run)")
    for line in lines:
        terminalreporter.write_line(line)
    out_dir = os.path.join(os.path.dirname(__file__), "out")
    os.makedirs(out_dir, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(out_dir, f"ratios-{stamp}.json")
    with open(path, "w") as fh:
        json.dump({"machine": _machine(), "results": rows}, fh, indent=1)
    terminalreporter.write_line(f"saved {path}")
