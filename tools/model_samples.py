"""Side-by-side pictures of a model on an image: original | the image anonymised at each
epsilon (``identitydp_fast.Anonymizer``: every face the detector finds with a score of at
least --min-score is replaced), with a fresh key per picture unless --key is given.

    python tools/model_samples.py --image examples/astronaut.png \
        --epsilons 1,30,300,1000 --out docs/images/astronaut_epsilons.png [--model W]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="weights (default: the packaged model)")
    ap.add_argument("--image", required=True)
    ap.add_argument("--epsilons", default="1,30,300,1000")
    ap.add_argument("--key", default=None, help="64 hex characters (reproducible pictures)")
    ap.add_argument("--width", type=int, default=256, help="width of each panel")
    ap.add_argument("--min-score", type=float, default=0.0, help="detector score threshold")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    from identitydp_fast import Anonymizer
    from identitydp_fast.pipeline.decode import read_image

    anon = Anonymizer(args.model, min_score=args.min_score)
    image = read_image(args.image)
    key = bytes.fromhex(args.key) if args.key else None
    panels = [("original", image)]
    for eps in [float(e) for e in args.epsilons.split(",")]:
        panels.append((f"epsilon {eps:g}", anon.anonymize(image, key=key, epsilon=eps)[0]))
    h, w = image.shape[:2]
    pw, ph = args.width, round(args.width * h / w)
    grid = Image.new("RGB", (pw * len(panels), ph + 18), "white")
    draw = ImageDraw.Draw(grid)
    for i, (name, img) in enumerate(panels):
        grid.paste(Image.fromarray(np.asarray(img)).resize((pw, ph), Image.LANCZOS), (i * pw, 18))
        draw.text((i * pw + 4, 3), name, fill="black")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
