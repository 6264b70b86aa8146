"""Per-stage cost of one face on this machine, for each model: the stages the Anonymizer runs
after detection (align -> identity -> release -> attributes + generate -> fit (prior-256:
colour match and realign) -> paste), each timed on its own, median of the repeats.

    .venv/bin/python bench/face_stages.py --models fast-128,prior-256 --repeats 20
    .venv/bin/python bench/face_stages.py --image photo.jpg --backend reference

Not a test: numbers depend on the machine and its load (say which when you quote them).
Detection is left out (it depends on the photo's size, not the model); the generate stage
is what ``identitydp bench --config <model>`` times with the identity network and the noise.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from identitydp_fast import Anonymizer
from identitydp_fast.pipeline import align, blend, identity, release
from identitydp_fast.pipeline.decode import read_image

ROOT = Path(__file__).resolve().parents[1]


def stage_times(anon: Anonymizer, rgb: np.ndarray, faces, repeats: int) -> dict[str, float]:
    """Median ms per stage over ``repeats`` runs of one anonymisation of ``faces``."""
    times: dict[str, list[float]] = {}

    def timed(name, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        times.setdefault(name, []).append(1e3 * (time.perf_counter() - t0))
        return out

    lm = np.stack([f.landmarks for f in faces])
    for _ in range(repeats + 2):
        crops, mats = timed("align", align.model_crops, rgb, lm, anon.crop_size, anon._geometry_backend,
                            anon.eyes_y)
        desc = timed("identity", identity.describe_faces, anon._encoder, rgb, lm)
        vectors, _ = timed("release", release.release_faces, anon.model.bottleneck, desc, anon.epsilon,
                           None, anon.backend, True, None)
        pixels = timed("generate", anon._generate, crops, vectors)
        if anon._fits_rendered:
            pixels = timed("fit", blend.fit_rendered, pixels, crops, mats, anon.paste_mask, anon._template)
        timed("paste", blend.paste_faces, rgb, pixels, mats, anon.paste_mask, anon._geometry_backend)
    out = {name: statistics.median(ts[2:]) for name, ts in times.items()}   # 2 warm-up runs
    out["total"] = sum(out.values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="fast-128,prior-256")
    ap.add_argument("--image", default=str(ROOT / "examples" / "astronaut.png"))
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args()
    rgb = read_image(a.image)
    rows = {}
    for name in a.models.split(","):
        anon = Anonymizer(name, backend=a.backend)
        faces = [max(anon.detect(rgb), key=lambda f: f.score)]
        with torch.inference_mode():
            rows[name] = stage_times(anon, rgb, faces, a.repeats)
    stages = ["align", "identity", "release", "generate", "fit", "paste", "total"]
    print(f"one face of {Path(a.image).name}, backend {a.backend}, {torch.get_num_threads()} threads, "
          f"median of {a.repeats} (ms)")
    print(f"{'stage':<10}" + "".join(f"{m:>12}" for m in rows))
    for s in stages:
        print(f"{s:<10}" + "".join(f"{rows[m].get(s, float('nan')):>12.1f}" for m in rows))


if __name__ == "__main__":
    main()
