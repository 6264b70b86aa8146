"""Measure the identity judge (SFace + YuNet, identitydp_fast/evaluation/judge.py) on LFW.

Draws N same-person and N different-person pairs from LFW (one folder per person, the
deep-funneled 250x250 JPEGs), detects with YuNet (default settings, largest/most central
face), embeds with SFace and reports YuNet's detection rate and the true-accept /
false-accept rates at the judge's threshold (cosine >= 0.30). A pair with an undetected
face counts as not accepted (it lowers the true-accept rate, never the false-accept rate's
denominator); the rates over pairs with both faces found are printed too.

    .venv/bin/python tools/judge_lfw_check.py                # 300 + 300 pairs, seed 0
    .venv/bin/python tools/judge_lfw_check.py --pairs 100 --swap-channels   # BGR into SFace

``--swap-channels`` feeds SFace BGR instead of RGB crops: the check that RGB is its order.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _load_judge_module():
    """judge.py on its own (it is self-contained): no need to import the whole package."""
    spec = importlib.util.spec_from_file_location("idp_judge", ROOT / "identitydp_fast" / "evaluation" / "judge.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def draw_pairs(lfw: Path, n: int, seed: int):
    rng = np.random.default_rng(seed)
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    files = {p.name: sorted(f.name for f in p.glob("*.jpg")) for p in people}
    multi = [k for k, v in files.items() if len(v) >= 2]
    names = [k for k, v in files.items() if v]
    same, diff, seen = [], [], set()
    while len(same) < n:
        who = multi[rng.integers(len(multi))]
        a, b = sorted(rng.choice(len(files[who]), 2, replace=False))
        key = (who, a, b)
        if key not in seen:
            seen.add(key)
            same.append((f"{who}/{files[who][a]}", f"{who}/{files[who][b]}"))
    while len(diff) < n:
        i, j = rng.choice(len(names), 2, replace=False)
        pa, pb = names[i], names[j]
        a = f"{pa}/{files[pa][rng.integers(len(files[pa]))]}"
        b = f"{pb}/{files[pb][rng.integers(len(files[pb]))]}"
        if (a, b) not in seen:
            seen.add((a, b))
            diff.append((a, b))
    return same, diff


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    data = Path(os.environ["IDP_DATA"]) if os.environ.get("IDP_DATA") else ROOT.parent / "shared" / "data"
    ap.add_argument("--lfw", default=str(data / "lfw"), help="LFW folder (default $IDP_DATA/lfw or ../shared/data/lfw)")
    ap.add_argument("--pairs", type=int, default=300, help="same-person and different-person pairs each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--swap-channels", action="store_true", help="feed SFace BGR crops (check only)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)

    lfw = Path(args.lfw)
    if not lfw.is_dir():
        print(f"LFW not found at {lfw}", file=sys.stderr)
        return 2
    J = _load_judge_module()
    judge = J.IdentityJudge(threads=args.threads)
    thr = J.THRESHOLD
    t0 = time.time()
    same, diff = draw_pairs(lfw, args.pairs, args.seed)
    paths = sorted({p for pair in same + diff for p in pair})

    crops, found = {}, {}
    for rel in paths:
        img = np.asarray(Image.open(lfw / rel).convert("RGB"))
        face = judge.detect_face(img)
        found[rel] = face is not None
        if face is not None:
            crops[rel] = judge.recognizer.align(img, face[2])
    keys = sorted(crops)
    stack = np.stack([crops[k] for k in keys])
    if args.swap_channels:
        stack = stack[..., ::-1]
    emb = np.concatenate([judge.recognizer.embed_crops(stack[i:i + 32]) for i in range(0, len(stack), 32)])
    emb = dict(zip(keys, emb))

    def scores(pairs):
        return np.array([float(emb[a] @ emb[b]) if a in emb and b in emb else np.nan for a, b in pairs])

    s_same, s_diff = scores(same), scores(diff)
    ok_s, ok_d = ~np.isnan(s_same), ~np.isnan(s_diff)
    det = sum(found.values())
    res = {
        "pairs_same": len(same), "pairs_diff": len(diff), "images": len(paths),
        "detection_rate": det / len(paths), "detected": det,
        "threshold": thr,
        "true_accept_rate": float(np.sum(s_same[ok_s] >= thr) / len(same)),
        "false_accept_rate": float(np.sum(s_diff[ok_d] >= thr) / len(diff)),
        "true_accept_rate_detected": float(np.mean(s_same[ok_s] >= thr)) if ok_s.any() else None,
        "false_accept_rate_detected": float(np.mean(s_diff[ok_d] >= thr)) if ok_d.any() else None,
        "true_accepts": int(np.sum(s_same[ok_s] >= thr)), "false_accepts": int(np.sum(s_diff[ok_d] >= thr)),
        "mean_cos_same": float(np.mean(s_same[ok_s])), "mean_cos_diff": float(np.mean(s_diff[ok_d])),
        "seed": args.seed, "sface_channels": "BGR" if args.swap_channels else "RGB",
        "seconds": round(time.time() - t0, 1),
    }
    # best achievable accuracy over thresholds: a context figure for the fixed 0.30
    allv = np.concatenate([s_same[ok_s], s_diff[ok_d]])
    lab = np.concatenate([np.ones(ok_s.sum()), np.zeros(ok_d.sum())])
    accs = [(np.mean((allv >= t) == lab), t) for t in np.unique(allv)]
    res["best_accuracy"], res["best_threshold"] = (float(accs and max(accs)[0]), float(accs and max(accs)[1]))
    ss, dd = s_same[ok_s], s_diff[ok_d]
    res["auc"] = float(np.mean(ss[:, None] > dd[None, :]) + 0.5 * np.mean(ss[:, None] == dd[None, :]))
    res["d_prime"] = float((ss.mean() - dd.mean()) / np.sqrt(0.5 * (ss.var() + dd.var())))
    print(f"LFW {lfw}: {len(same)} same + {len(diff)} different pairs, {len(paths)} images, seed {args.seed}, "
          f"SFace fed {res['sface_channels']}")
    print(f"  YuNet detection rate   {100 * res['detection_rate']:.1f}% ({det}/{len(paths)})")
    print(f"  true accepts  @ {thr:.2f}   {100 * res['true_accept_rate']:.1f}% ({res['true_accepts']}/{len(same)})")
    print(f"  false accepts @ {thr:.2f}   {100 * res['false_accept_rate']:.1f}% ({res['false_accepts']}/{len(diff)})")
    print(f"  mean cosine same {res['mean_cos_same']:.3f}, different {res['mean_cos_diff']:.3f}; "
          f"best accuracy {100 * res['best_accuracy']:.1f}% at {res['best_threshold']:.3f}")
    print(f"  ROC AUC {res['auc']:.4f}, d' {res['d_prime']:.2f}; {res['seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
