"""Train the AEI-Net on the aligned-crop cache (identitydp_fast.training.Trainer).

Works from a fresh machine with only ../shared present: when --cache holds no complete
cache, it is built first from the shared data folder (--data, default ../shared/data or
$IDP_DATA) with build_crop_cache (--limit faces per set; the identity split keeps LFW
people with 5+ images out of training).

Examples:
    python tools/train.py --cache /tmp/idp_cache2 --out runs/fast128 --minutes 3
    python tools/train.py --cache /tmp/idp_cache2 --out runs/fast128 --resume --steps 4000 \
        --export identitydp_fast/models/fast-128.safetensors
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from identitydp_fast.training.data import build_crop_cache, default_data_root  # noqa: E402


def _cache_ready(cache: Path) -> bool:
    return cache.is_dir() and any(cache.glob("*.json")) and any(cache.glob("*_train_crops.npy"))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True, help="crop cache folder (built if missing)")
    ap.add_argument("--out", required=True, help="output folder: checkpoint.pt, sample PNGs")
    ap.add_argument("--data", default=None, help="shared data folder (default ../shared/data)")
    ap.add_argument("--limit", type=int, default=None,
                    help="faces per set when the cache has to be built (default: all)")
    ap.add_argument("--config", default="fast-128")
    ap.add_argument("--steps", type=int, default=None, help="stop at this total step count")
    ap.add_argument("--minutes", type=float, default=None, help="time budget of this run")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr-g", type=float, default=1e-4)
    ap.add_argument("--lr-d", type=float, default=4e-4)
    ap.add_argument("--d-steps", type=int, default=1)
    ap.add_argument("--p-rec", type=float, default=0.3)
    ap.add_argument("--p-dp", type=float, default=0.3)
    ap.add_argument("--eps-min", type=float, default=10.0,
                    help="smallest epsilon of the DP-noised steps (log-uniform)")
    ap.add_argument("--eps-max", type=float, default=1000.0)
    ap.add_argument("--w-id", type=float, default=None, help="identity loss weight (default 5)")
    ap.add_argument("--degrade-sigma", type=float, default=None,
                    help="blur sigma (px) of the attribute input's inner face (default 5 at 128)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--resume", nargs="?", const="", default=None,
                    help="resume from a checkpoint (default <out>/checkpoint.pt)")
    ap.add_argument("--sample-every", type=int, default=200)
    ap.add_argument("--checkpoint-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--init", default=None,
                    help="warm start from exported weights (G and EMA, with their DP parameters; "
                         "fresh D and optimisers): e.g. identitydp_fast/weights/fast-128.safetensors")
    ap.add_argument("--export", default=None,
                    help="write the EMA model here (fp16 safetensors), at every checkpoint and at the end")
    a = ap.parse_args(argv)
    if a.steps is None and a.minutes is None:
        ap.error("give --steps and/or --minutes")
    if a.threads:
        torch.set_num_threads(a.threads)

    cache, out = Path(a.cache), Path(a.out)
    if not _cache_ready(cache):
        data = Path(a.data) if a.data else default_data_root()
        print(f"crop cache {cache} missing or incomplete: building it from {data} "
              f"(limit {a.limit} per set)", flush=True)
        build_crop_cache(data, cache, limit=a.limit)

    from identitydp_fast.training.trainer import Trainer
    tr = Trainer(cache, out, config=a.config, batch_size=a.batch, lr_g=a.lr_g, lr_d=a.lr_d,
                 d_steps=a.d_steps, seed=a.seed, p_rec=a.p_rec, p_dp=a.p_dp,
                 eps_range=(a.eps_min, a.eps_max), degrade_sigma=a.degrade_sigma,
                 weights=None if a.w_id is None else {"id": a.w_id},
                 log_every=a.log_every, device=a.device)
    print(f"training {tr.config.name} on {tr.n_train} crops {tr.data_sizes}; DP centre from "
          f"training descriptors, clip C = {tr.dp_summary['clip']} (0.99 quantile of the "
          f"residual L1 norm {tr.dp_summary['residual_l1_quantiles']['0.99']:.3f})", flush=True)
    ckpt = out / "checkpoint.pt"
    if a.init is not None and a.resume is not None:
        ap.error("give --init or --resume, not both")
    if a.init is not None:
        prev = tr.init_from_weights(a.init)
        print(f"warm start from {a.init} ({prev.get('steps')} steps before); DP parameters "
              f"kept from that file: clip C = {float(tr.g.bottleneck.dp_clip)}", flush=True)
    if a.resume is not None:
        path = Path(a.resume) if a.resume else ckpt
        if path.is_file():
            print(f"resumed {path} at step {tr.resume(path)}", flush=True)
        else:
            print(f"no checkpoint at {path}: starting fresh", flush=True)
    start_step, t0 = tr.step, time.perf_counter()
    tr.train(steps=a.steps, seconds=None if a.minutes is None else a.minutes * 60,
             sample_every=a.sample_every, checkpoint_every=a.checkpoint_every,
             checkpoint_path=ckpt,
             on_checkpoint=(lambda t: t.export(a.export)) if a.export else None)
    wall = time.perf_counter() - t0
    tr.save_checkpoint(ckpt)
    grid = tr.sample_grid(out / f"samples_{tr.step:06d}.png")
    n = tr.step - start_step
    win = max(1, min(50, len(tr.history) // 5 or 1))
    first, last = tr.averages(first=win), tr.averages(last=win)
    print(f"done: {n} steps in {wall:.0f} s ({n / max(wall, 1e-9):.2f} steps/s, "
          f"{n * a.batch / max(wall, 1e-9):.1f} images/s); total steps {tr.step}", flush=True)
    for k in first:
        print(f"  {k:5s} first {win}: {first[k]:.4f}   last {win}: {last[k]:.4f}")
    print(f"checkpoint {ckpt}\nsample grid {grid}")
    result = {"steps": n, "seconds": wall, "first": first, "last": last, "grid": str(grid),
              "checkpoint": str(ckpt)}
    if a.export:
        path = tr.export(a.export)
        print(f"exported EMA model to {path}")
        result["export"] = str(path)
    return result


if __name__ == "__main__":
    main()
