"""``identitydp bench``: end-to-end latency of the anonymisation network per backend.

One "call" is what an anonymisation of N aligned faces costs after alignment:
identity descriptors of the 150x150 chips (IdentityEncoder) -> epsilon-IdentityDP on
them -> attribute encoder + bottleneck + AAD generator on the crops (prior-256: attribute
encoder + identity mapper + the face prior's 256 render). Every backend runs
the same weights (an untrained model of the chosen config with seeded weights: the
cost does not depend on training); every call draws a fresh noise key. Backends:

* ``reference``: the plain-PyTorch reference model, eager (the baseline of the ratios);
* ``compile``: the reference model under ``torch.compile`` (default mode);
* ``compile-max``: the same with ``mode="max-autotune"`` (GPU: minutes of autotuning);
* ``cpu`` / ``cuda`` / ``triton``: the engine with that backend's fused kernels, in
  float32; ``triton-fp16`` / ``triton-bf16``: the engine (encoder and generator) in half
  precision; a ``+graph`` suffix (GPU: ``cuda+graph``, ``triton-bf16+graph``) replays the
  encoder and the generator as CUDA graphs (``engine/cuda_graph.py``; the DP noise runs
  eagerly between them, fresh per call).

Timing: ``warmup`` calls, then ``repeats`` timed calls (synchronising the GPU before
reading the clock); reports median and p90 in ms and the speed-up of the median over
the eager reference measured in the same run, and the achieved TFLOP/s (``call_flops``
over the median; compare with the card's measured bf16 matmul ceiling, bench/gpu_check.sh).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch

from ..pipeline.identity import IdentityEncoder
from ..privacy.identity_dp import IdentityDP


_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def parse_spec(spec: str) -> tuple[str, torch.dtype, bool]:
    """'triton-bf16+graph' -> ('triton', torch.bfloat16, True); see the module docstring."""
    base, graph = (spec[:-len("+graph")], True) if spec.endswith("+graph") else (spec, False)
    name, _, dt = base.partition("-")
    if name == "compile" and dt in ("", "max"):
        return ("compile-max" if dt else "compile"), torch.float32, False
    if name not in ("reference", "cpu", "cuda", "triton") or (dt and dt not in _DTYPES):
        raise ValueError(f"unknown backend spec {spec!r}: use reference, compile, compile-max, "
                         f"or cpu|cuda|triton with an optional -fp16/-bf16 and +graph")
    if graph and name in ("reference", "cpu"):
        raise ValueError(f"{spec!r}: CUDA graphs need a GPU backend (cuda, triton)")
    return name, _DTYPES[dt or "fp32"], graph


PRIOR_CONFIG = "prior-256"   # the style-mixing model on the face prior: reference/prior_mix.py


def _model(config: str, device: torch.device):
    """The benchmarked network: seeded weights (the cost does not depend on training); for
    prior-256 the packaged frozen face prior with seeded linear maps."""
    torch.manual_seed(0)
    if config == PRIOR_CONFIG:
        from ..reference.mobile_stylegan import load_prior
        from ..reference.prior_mix import PriorMixGenerator

        model = PriorMixGenerator(prior=load_prior())
        with torch.no_grad():
            for m in (model.attribute_encoder.map, model.identity_mapper.map):
                m.weight.normal_(0, 0.01)
                m.y_mean.copy_(model.prior.w_avg)
        return model.eval().to(device)
    from ..reference.aei_net import AEINet
    return AEINet(config).eval().to(device)


def _pipeline(spec: str, config: str, device: torch.device, example):
    from ..engine.aei_net import EngineAEINet

    name, dtype, graph = parse_spec(spec)
    model = _model(config, device)
    if config == PRIOR_CONFIG and (dtype != torch.float32 or graph):
        raise ValueError(f"{config}'s engine runs float32 without CUDA graphs: use reference, "
                         "compile, cpu, cuda or triton")
    if name.startswith("compile") or name == "reference":
        encoder = IdentityEncoder("reference", device=device)
        dp_backend = "reference"
        net = model
        if name == "compile":
            net = torch.compile(model)
        elif name == "compile-max":
            net = torch.compile(model, mode="max-autotune")
    else:
        encoder = IdentityEncoder(name, device=device, dtype=dtype)
        dp_backend = name
        if config == PRIOR_CONFIG:
            from ..engine.prior_mix import EnginePriorMix
            engine = EnginePriorMix(model, name).to(device).eval()
        else:
            engine = EngineAEINet(model, name, dtype).to(device)
        net = engine
        if graph:
            from ..engine.cuda_graph import CUDAGraphed
            chips, crops = example
            with torch.inference_mode():
                released = torch.nn.functional.normalize(
                    encoder(chips), dim=1) * float(model.bottleneck.dp_output_norm)
            net = CUDAGraphed(engine.generate, crops, released)
            encoder_module = encoder.module
            encoder = CUDAGraphed(lambda x: encoder_module(x),
                                  chips.permute(0, 3, 1, 2).to(torch.float32))
            encoder_graphed = encoder
            encoder = lambda c: encoder_graphed(c.permute(0, 3, 1, 2).to(torch.float32))  # noqa: E731
    dp = IdentityDP(300.0, center=model.bottleneck.dp_center, clip=float(model.bottleneck.dp_clip),
                    output_norm=float(model.bottleneck.dp_output_norm), backend=dp_backend)

    @torch.inference_mode()
    def run(chips: torch.Tensor, crops: torch.Tensor) -> torch.Tensor:
        desc = encoder(chips)
        released = dp(desc).vectors  # a fresh CSPRNG key per call, as in production
        return net(crops, released)

    return run


def call_flops(config: str, chips: torch.Tensor, crops: torch.Tensor) -> float:
    """Floating-point operations of one call (convolutions and matmuls of the identity
    network and the generator, counted by torch's FlopCounterMode on the reference
    model): the numerator of the achieved TFLOP/s column."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..reference.dlib_resnet import DlibResNet

    model = _model(config, crops.device)
    net = DlibResNet.from_file().eval().to(crops.device)
    counter = FlopCounterMode(display=False)
    # with autograd on: FlopCounterMode's module tracker fails under no_grad / inference
    with counter, torch.enable_grad():
        desc = net(chips.permute(0, 3, 1, 2).to(torch.float32))
        model(crops, desc)
    return float(counter.get_total_flops())


def run_bench(config: str = "fast-128", batch: int = 1, device: str = "cpu",
              backends: list[str] | None = None, repeats: int = 20, warmup: int = 3) -> dict:
    """Latency table (see the module docstring) as a dict; also printable with ``format_table``."""
    from .. import _backends
    from ..models.config import get_config

    dev = torch.device(device)
    size = 256 if config == PRIOR_CONFIG else get_config(config).crop_size
    if backends is None:
        backends = ["reference"] + [b for b in ("cpu", "cuda", "triton") if _backends.available(b, dev)
                                    and not (b == "triton" and dev.type == "cpu")]
    gen = torch.Generator().manual_seed(0)
    chips = torch.randint(0, 256, (batch, 150, 150, 3), generator=gen, dtype=torch.uint8).to(dev)
    crops = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rows = []
    for name in backends:
        base, _, _ = parse_spec(name)
        if base not in ("reference", "compile", "compile-max"):
            _backends.resolve(base, dev)  # a clear error if unavailable
        run = _pipeline(name, config, dev, (chips, crops))
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
    flops = call_flops(config, chips, crops)
    for r in rows:
        r["speedup_vs_eager_reference"] = None if base is None else base / r["median_ms"]
        r["tflops"] = flops / (r["median_ms"] * 1e-3) / 1e12
    return {"config": config, "batch": batch, "device": str(dev), "repeats": repeats, "warmup": warmup,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor()
            or platform.machine(), "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            "gflop_per_call": flops / 1e9, "results": rows}


def format_table(record: dict) -> str:
    lines = [f"identitydp bench: {record['config']}, batch {record['batch']}, {record['device']}"
             f"{' (' + record['gpu'] + ')' if record['gpu'] else ''}, torch {record['torch']}, "
             f"{record['threads']} threads, {record['repeats']} repeats after {record['warmup']} warm-up",
             f"{'backend':<18} {'median ms':>10} {'p90 ms':>10} {'x eager reference':>18} "
             f"{'TFLOP/s':>8}"]
    for r in record["results"]:
        sp = r["speedup_vs_eager_reference"]
        lines.append(f"{r['backend']:<18} {r['median_ms']:>10.2f} {r['p90_ms']:>10.2f} "
                     f"{'' if sp is None else f'{sp:.2f}x':>18} {r['tflops']:>8.3f}")
    return "\n".join(lines)


def to_json(record: dict) -> str:
    return json.dumps(record, indent=1)


def _error(msg: str) -> int:
    """One error line; exit status 2 (could not start), the convention of every subcommand."""
    print(f"identitydp bench: error: {msg}", file=sys.stderr)
    return 2


def cmd_bench(args: argparse.Namespace) -> int:
    backends = [b.strip() for b in args.backends.split(",")] if args.backends else None
    for name, value, low in (("--batch", args.batch, 1), ("--repeats", args.repeats, 1),
                             ("--warmup", args.warmup, 0)):
        if value < low:
            return _error(f"{name} must be >= {low}, got {value}")
    if args.config != PRIOR_CONFIG:
        from ..models.config import config_names
        if args.config not in config_names():
            return _error(f"unknown --config {args.config!r}; choose one of "
                          f"{[*config_names(), PRIOR_CONFIG]}")
    if args.device == "cuda" and not torch.cuda.is_available():
        return _error("--device cuda but no CUDA GPU is visible to torch")
    try:
        record = run_bench(args.config, args.batch, args.device, backends, args.repeats, args.warmup)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        return _error(str(exc))
    print(format_table(record))
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(to_json(record))
        print(f"wrote {args.json}")
    return 0


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the subcommand on the ``identitydp`` subparsers."""
    bench = sub.add_parser("bench", help="end-to-end latency per backend (median, p90, ratio to eager)")
    bench.add_argument("--config", default="fast-128",
                       help="model config (fast-128, paper-256, prior-256)")
    bench.add_argument("--batch", type=int, default=1)
    bench.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    bench.add_argument("--backends", default=None,
                       help="comma list of reference, compile, cpu, cuda, triton (default: reference + available engines)")
    bench.add_argument("--repeats", type=int, default=20)
    bench.add_argument("--warmup", type=int, default=3)
    bench.add_argument("--json", help="also write the table as JSON here")
    bench.set_defaults(func=cmd_bench)
    return bench
