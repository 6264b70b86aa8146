"""Where the prior-256 generator's time goes: a per-op table (torch.profiler, CPU) for the
eager reference and the engine, batch 1 (or --batch), after warm-up.

    .venv/bin/python bench/prior_profile.py [--batch 1] [--threads 2] [--repeats 5]

Rows are torch/aten ops and the engine's custom ops (identitydp::prior_*), with their
share of the call; the engine's GEMMs show as aten::mm / aten::bmm / aten::baddbmm.
"""
from __future__ import annotations

import argparse

import torch


def profile(fn, repeats: int) -> list[tuple[str, float, int]]:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            fn()
    rows = [(e.key, e.self_cpu_time_total / repeats / 1e3, e.count // repeats)
            for e in prof.key_averages()]
    return sorted(rows, key=lambda r: -r[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from identitydp_fast.engine.prior_mix import EnginePriorMix
    from identitydp_fast.pipeline.generate import load_model

    model, _ = load_model("prior-256", torch.device("cpu"))
    engine = EnginePriorMix(model, "cpu").eval()
    x = torch.rand(args.batch, 3, 256, 256) * 2 - 1
    identity = torch.nn.functional.normalize(torch.randn(args.batch, 128), dim=1)
    for name, net in (("reference", model), ("engine (cpu)", engine)):
        with torch.inference_mode():
            for _ in range(2):
                net(x, identity)
            rows = profile(lambda: net(x, identity), args.repeats)
        total = sum(r[1] for r in rows)
        print(f"\n### {name}: {total:.1f} ms per call (self CPU time, batch {args.batch}, "
              f"{args.threads} threads)\n")
        print("| op | ms | share | calls |\n|---|---|---|---|")
        for key, ms, calls in rows[:args.top]:
            print(f"| {key} | {ms:.2f} | {100 * ms / total:.1f}% | {calls} |")
        rest = sum(r[1] for r in rows[args.top:])
        print(f"| (other {len(rows) - args.top} ops) | {rest:.2f} | {100 * rest / total:.1f}% | |")


if __name__ == "__main__":
    main()
