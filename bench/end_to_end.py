"""End to end on this machine: a 1920x1080 photo with 4 faces and a 640x480 photo with 1
face through the default Anonymizer, after warm-up, as a stage table (decode, detect,
align, identity, release, generate, fit, paste, encode) with the total; plus the whole
``anonymize()`` call timed as one (what a service sees).

    .venv/bin/python bench/end_to_end.py [--repeats 10] [--backend auto] [--detector NAME]

The photos are composed from examples/astronaut.png (faces ~200 and ~300 px, JPEG q90 in
memory) so the benchmark needs no data set. Not a test: numbers depend on the machine and
its load (quote them with both).
"""
from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from identitydp_fast import Anonymizer
from identitydp_fast.io import image_codec

from face_stages import stage_times

ROOT = Path(__file__).resolve().parents[1]


def _photo(size: tuple[int, int], faces: int) -> bytes:
    """A JPEG of ``size`` with ``faces`` copies of the astronaut's head on a grey canvas."""
    w, h = size
    src = Image.open(ROOT / "examples" / "astronaut.png").convert("RGB")
    head = src.crop((96, 0, 416, 320))                       # her face, no mission patch
    canvas = Image.new("RGB", size, (118, 124, 130))
    side = min(h // 2, w // max(faces, 1)) - 20 if faces > 1 else min(h, w) - 40
    tile = head.resize((side, side), Image.LANCZOS)
    for i in range(faces):
        x = 10 + i * (w - side - 20) // max(faces - 1, 1) if faces > 1 else (w - side) // 2
        y = (h - side) // 2 + (40 if i % 2 else -40) * (faces > 1)
        canvas.paste(tile, (x, y))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def timed(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--detector", default=None)
    a = ap.parse_args()
    kw = {} if a.detector is None else {"detector": a.detector}
    anon = Anonymizer(backend=a.backend, **kw)
    anon.warmup()
    cases = {"1920x1080, 4 faces": _photo((1920, 1080), 4), "640x480, 1 face": _photo((640, 480), 1)}
    rows = {}
    for name, data in cases.items():
        decoded = image_codec.decode_bytes(data)
        rgb = decoded.rgb
        faces = anon.detect(rgb)
        with torch.inference_mode():
            st = stage_times(anon, rgb, faces, a.repeats) if faces else {"total": 0.0}
        st.pop("total")
        row = {"decode": timed(lambda: image_codec.decode_bytes(data), a.repeats),
               "detect": timed(lambda: anon.detect(rgb), a.repeats), **st}
        out, _ = anon.anonymize(rgb)
        row["encode"] = timed(lambda: image_codec.encode(decoded, np.asarray(out)), a.repeats)
        row["total"] = sum(row.values())
        row["anonymize() call"] = timed(lambda: anon.anonymize(rgb), a.repeats)
        row["faces found"] = len(faces)
        rows[name] = row
    print(f"backend {a.backend}, detector {anon.detector if hasattr(anon, 'detector') else 'default'}, "
          f"{torch.get_num_threads()} threads, median of {a.repeats} (ms)\n")
    print("| stage | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for stage in next(iter(rows.values())):
        cells = [f"{rows[c].get(stage, float('nan')):.1f}" if stage != "faces found"
                 else str(rows[c][stage]) for c in rows]
        print(f"| {stage} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
