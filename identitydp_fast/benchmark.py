"""End-to-end latency of the anonymisation network per backend (``identitydp bench``).

One "call" is what an anonymisation of N aligned faces costs after alignment:
identity descriptors of the 150x150 chips (IdentityEncoder) -> epsilon-IdentityDP on
them -> attribute encoder + bottleneck + AAD generator on the crops. Every backend runs
the same weights (an untrained model of the chosen config with seeded weights: the
cost does not depend on training) and the same noise key. Backends:

* ``reference``: the plain-PyTorch reference model, eager (the baseline of the ratios);
* ``compile``: the reference model under ``torch.compile`` (default mode);
* ``cpu`` / ``cuda`` / ``triton``: the engine with that backend's fused kernels.

Timing: ``warmup`` calls, then ``repeats`` timed calls (synchronising the GPU before
reading the clock); reports median and p90 in ms and the speed-up of the median over
the eager reference measured in the same run.
"""
from __future__ import annotations

import json
import platform
import statistics
import time

import torch

from .identity_dp import IdentityDP
from .identity_encoder import IdentityEncoder


def _pipeline(backend: str, config: str, device: torch.device):
    from .engine.aei_net import EngineAEINet
    from .reference.aei_net import AEINet

    torch.manual_seed(0)
    model = AEINet(config).eval().to(device)
    if backend in ("reference", "compile"):
        encoder = IdentityEncoder("reference", device=device)
        dp = IdentityDP(300.0, center=model.bottleneck.dp_center, clip=float(model.bottleneck.dp_clip),
                        output_norm=float(model.bottleneck.dp_output_norm), backend="reference")
        net = torch.compile(model) if backend == "compile" else model
    else:
        encoder = IdentityEncoder(backend, device=device)
        dp = IdentityDP(300.0, center=model.bottleneck.dp_center, clip=float(model.bottleneck.dp_clip),
                        output_norm=float(model.bottleneck.dp_output_norm), backend=backend)
        net = EngineAEINet(model, backend).to(device)

    @torch.inference_mode()
    def run(chips: torch.Tensor, crops: torch.Tensor) -> torch.Tensor:
        desc = encoder(chips)
        released = dp(desc, key=bytes(32)).vectors
        return net(crops, released)

    return run


def run_bench(config: str = "fast-128", batch: int = 1, device: str = "cpu",
              backends: list[str] | None = None, repeats: int = 20, warmup: int = 3) -> dict:
    """Latency table (see the module docstring) as a dict; also printable with ``format_table``."""
    from . import _backends
    from .models.config import get_config

    dev = torch.device(device)
    size = get_config(config).crop_size
    if backends is None:
        backends = ["reference"] + [b for b in ("cpu", "cuda", "triton") if _backends.available(b, dev)
                                    and not (b == "triton" and dev.type == "cpu")]
    gen = torch.Generator().manual_seed(0)
    chips = torch.randint(0, 256, (batch, 150, 150, 3), generator=gen, dtype=torch.uint8).to(dev)
    crops = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rows = []
    for name in backends:
        if name not in ("reference", "compile"):
            _backends.resolve(name, dev)  # a clear error if unavailable
        run = _pipeline(name, config, dev)
        for _ in range(warmup):
            run(chips, crops)
        sync()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run(chips, crops)
            sync()
            times.append(time.perf_counter() - t0)
        times.sort()
        rows.append({"backend": name, "median_ms": 1e3 * statistics.median(times),
                     "p90_ms": 1e3 * times[min(len(times) - 1, int(0.9 * len(times)))]})
    base = next((r["median_ms"] for r in rows if r["backend"] == "reference"), None)
    for r in rows:
        r["speedup_vs_eager_reference"] = None if base is None else base / r["median_ms"]
    return {"config": config, "batch": batch, "device": str(dev), "repeats": repeats, "warmup": warmup,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor()
            or platform.machine(), "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            "results": rows}


def format_table(record: dict) -> str:
    lines = [f"identitydp bench: {record['config']}, batch {record['batch']}, {record['device']}"
             f"{' (' + record['gpu'] + ')' if record['gpu'] else ''}, torch {record['torch']}, "
             f"{record['threads']} threads, {record['repeats']} repeats after {record['warmup']} warm-up",
             f"{'backend':<10} {'median ms':>10} {'p90 ms':>10} {'x eager reference':>18}"]
    for r in record["results"]:
        sp = r["speedup_vs_eager_reference"]
        lines.append(f"{r['backend']:<10} {r['median_ms']:>10.2f} {r['p90_ms']:>10.2f} "
                     f"{'' if sp is None else f'{sp:.2f}x':>18}")
    return "\n".join(lines)


def to_json(record: dict) -> str:
    return json.dumps(record, indent=1)
