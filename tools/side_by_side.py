"""Side-by-side picture of originals and their anonymised versions (original | anonymised).

    python tools/side_by_side.py examples demo_out --out demo_out/side_by_side.png

Every image in ORIGINALS that has an output with the same stem in ANONYMISED (any image
extension) becomes one row; both halves are scaled to --height pixels. Exits with an
error naming the folder when no pair is found. Written atomically (temp + os.replace).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def pairs(originals: Path, anonymised: Path, skip: Path | None = None) -> list[tuple[Path, Path]]:
    """(original, anonymised) for every original with a same-stem output, sorted by name."""
    outputs = {}
    for p in sorted(anonymised.iterdir()):
        if p.suffix.lower() in IMAGE_EXTS and (skip is None or p.resolve() != skip.resolve()):
            outputs.setdefault(p.stem, p)
    return [(p, outputs[p.stem]) for p in sorted(originals.iterdir())
            if p.suffix.lower() in IMAGE_EXTS and p.stem in outputs]


def side_by_side(rows: list[tuple[Path, Path]], height: int = 384, gap: int = 8):
    """One RGB Pillow image: a row per pair, original left, anonymised right."""
    from PIL import Image

    from identitydp_fast.pipeline.decode import read_image

    scaled = []
    for a, b in rows:
        ia, ib = (Image.fromarray(read_image(p)) for p in (a, b))
        if ia.size != ib.size:
            raise SystemExit(f"side_by_side: {b} is {ib.size[0]}x{ib.size[1]}, its original {a} "
                             f"is {ia.size[0]}x{ia.size[1]}")
        w = max(1, round(ia.width * height / ia.height))
        scaled.append([im.resize((w, height), Image.LANCZOS) for im in (ia, ib)])
    width = max(2 * r[0].width + gap for r in scaled)
    canvas = Image.new("RGB", (width, len(scaled) * (height + gap) - gap), "white")
    for i, (ia, ib) in enumerate(scaled):
        y = i * (height + gap)
        canvas.paste(ia, (0, y))
        canvas.paste(ib, (ia.width + gap, y))
    return canvas


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("originals", type=Path, help="folder of original images")
    ap.add_argument("anonymised", type=Path, help="folder of anonymised images (same stems)")
    ap.add_argument("--out", type=Path, required=True, help="output image (.png)")
    ap.add_argument("--height", type=int, default=384, help="row height in pixels")
    args = ap.parse_args(argv)
    for folder in (args.originals, args.anonymised):
        if not folder.is_dir():
            raise SystemExit(f"side_by_side: {folder} is not a folder")
    if args.height < 16:
        raise SystemExit(f"side_by_side: --height must be >= 16, got {args.height}")
    rows = pairs(args.originals, args.anonymised, skip=args.out)
    if not rows:
        raise SystemExit(f"side_by_side: no image in {args.anonymised} has the name of one in "
                         f"{args.originals}; run `identitydp anonymize {args.originals} --out "
                         f"{args.anonymised}` first")
    image = side_by_side(rows, args.height)
    folder = args.out.resolve().parent
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part.png")
    os.close(fd)
    mask = os.umask(0)   # read the umask (single-threaded script): mkstemp's 0600 would
    os.umask(mask)       # otherwise make the picture unreadable to others
    os.chmod(tmp, 0o666 & ~mask)
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, args.out)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {args.out} ({len(rows)} pair(s): original | anonymised)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
