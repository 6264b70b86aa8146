"""Build the training crop cache from ../shared/data and print the identity statistics.

    python tools/prepare_data.py --out /tmp/idp_cache [--data ../shared/data]
        [--size 128] [--sets lfw,utkface] [--limit N] [--backend cpu] [--json stats.json]

Aligns every face with a detected face (crop_transform + warp_affine, the code inference
uses), caches uint8 crops, crop-space landmarks and dlib descriptors (see
identitydp_fast/training/data.py), then reports, from the TRAINING descriptors only
(held-out LFW people excluded), the DP centre mu (its norm), the quantiles of the
residual L1 norm ||u - mu||_1 and the suggested clip radius C (the 0.99 quantile rounded
up to 0.5; Delta_1 = 2C). Re-running on a complete cache does no work.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from identitydp_fast.training.data import (SETS, CropDataset, build_crop_cache,  # noqa: E402
                                           default_data_root, identity_statistics,
                                           suggested_clip)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None,
                    help="shared data folder (default: $IDP_DATA or ../shared/data)")
    ap.add_argument("--out", type=Path, required=True, help="cache folder (outside the repo)")
    ap.add_argument("--size", type=int, default=128, help="model crop side S (default 128)")
    ap.add_argument("--limit", type=int, default=None, help="at most N faces per set")
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated: lfw,utkface")
    ap.add_argument("--backend", default="cpu", help="warp/encoder backend (default cpu)")
    ap.add_argument("--overwrite", action="store_true", help="rebuild even if complete")
    ap.add_argument("--json", type=Path, default=None, help="write the statistics (with mu)")
    args = ap.parse_args(argv)
    data = args.data or default_data_root()
    sets = tuple(s.strip() for s in args.sets.split(",") if s.strip())
    try:
        rep = build_crop_cache(data, args.out, size=args.size, sets=sets, limit=args.limit,
                               backend=args.backend, overwrite=args.overwrite)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n, t = rep["images"], rep["seconds"]
    print(f"built {rep['built'] or 'nothing'}, already complete {rep['skipped'] or 'none'}; "
          f"{n} images in {t:.1f} s" + (f" ({n / t:.1f} images/s)" if n else ""))
    for name, counts in rep["sets"].items():
        print(f"  {name}: " + ", ".join(f"{s} {c}" for s, c in counts.items()))
    t0 = time.perf_counter()
    train = CropDataset(args.out, "train", sets=sets)
    stats = identity_statistics(train.descriptors)
    q = stats["residual_l1_quantiles"]
    clip = suggested_clip(stats)
    print(f"identity statistics from {stats['count']} training descriptors "
          f"({len(train.names)} labelled LFW people; held-out people excluded):")
    print(f"  ||mu||_2 = {stats['mean_unit_norm']:.4f}  (mu = mean unit descriptor)")
    print(f"  mean descriptor norm = {stats['norm_mean']:.4f}")
    print("  ||u - mu||_1 quantiles: " + ", ".join(f"{k}: {v:.3f}" for k, v in q.items()))
    print(f"  suggested clip C = {clip:g} (0.99 quantile {q['0.99']:.3f} rounded up to 0.5; "
          f"Delta_1 = 2C = {2 * clip:g} vs 2 sqrt(128) = 22.63 unclipped)")
    print(f"  (statistics in {time.perf_counter() - t0:.2f} s)")
    if args.json:
        out = dict(stats, mean_unit=[float(v) for v in stats["mean_unit"]],
                   suggested_clip=clip, cache=str(args.out), sets=list(sets),
                   limit=args.limit, size=args.size)
        args.json.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
