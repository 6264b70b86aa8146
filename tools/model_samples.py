"""Side-by-side pictures of a trained model on an image: original | the model at each
epsilon (epsilon-IdentityDP on the identity vector). Every face found by
the detector is replaced (crop -> degraded attribute input + released identity ->
generator -> feathered paste-back), with a fresh key per picture unless --key is given.

    python tools/model_samples.py --model weights.safetensors --image examples/astronaut.png \
        --epsilons 1,30,300,1000 --out docs/images/astronaut_epsilons.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def anonymize(image: np.ndarray, model, encoder, epsilon: float, key: bytes | None) -> np.ndarray:
    """Replace every detected face of ``image`` (H, W, 3) uint8; returns a new image."""
    from identitydp_fast.geometry.align import crop_face_ellipse, crop_transform, dlib_face_chips
    from identitydp_fast.geometry.detect import detect_faces
    from identitydp_fast.reference.warp_affine import feathered_ellipse, paste_back, warp_affine
    from identitydp_fast.training.degrade import degrade_inner_face

    size = model.config.crop_size
    (cx, cy), (rx, ry) = crop_face_ellipse(size)
    mask = feathered_ellipse(size, size, (cx, cy), (rx, ry), 0.15, dtype=torch.float64)
    out = image
    for face in detect_faces(image):
        m = crop_transform(face.landmarks, size)
        crop = warp_affine(torch.from_numpy(np.ascontiguousarray(image))[None], m, size, size)
        desc = encoder(dlib_face_chips(image, face.landmarks[None])).float()
        released, _ = model.bottleneck.privatise(desc, epsilon, key=key)
        with torch.no_grad():
            new = model(degrade_inner_face(crop.float() / 127.5 - 1.0), released.float())
        new = ((new[0].permute(1, 2, 0) + 1.0) * 127.5).clamp(0, 255)
        out = paste_back(out, new.double(), m[0], mask)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--epsilons", default="1,30,300,1000")
    ap.add_argument("--key", default=None, help="64 hex characters (reproducible pictures)")
    ap.add_argument("--width", type=int, default=256, help="width of each panel")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    from identitydp_fast.geometry.image_io import read_image
    from identitydp_fast.identity_encoder import IdentityEncoder
    from identitydp_fast.models.weights import load_model

    model = load_model(args.model)
    encoder = IdentityEncoder()
    image = read_image(args.image)
    key = bytes.fromhex(args.key) if args.key else None
    panels = [("original", image)]
    for eps in [float(e) for e in args.epsilons.split(",")]:
        panels.append((f"epsilon {eps:g}", anonymize(image, model, encoder, eps, key)))
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
