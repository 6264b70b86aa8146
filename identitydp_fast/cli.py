"""The ``identitydp`` command line.

Subcommands (this release):
  identitydp noise     release noisy identity vectors (from a .npy file, or a synthetic
                       batch shaped like dlib descriptors) and print what was done
  identitydp identity  detect the faces in images, compute their identity descriptors and
                       release them with epsilon-IdentityDP: how far each moved
  identitydp bench     end-to-end latency of the anonymisation network per backend
  identitydp backends  list the backends usable on this machine
  identitydp anonymize replace the faces in image files and folders (identitydp_fast/cli_anonymize.py)
  identitydp anonymize-video  replace the faces in a video, one release per face track (cli_video.py)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch

from . import IdentityDP, __version__, backends


def _synthetic_batch(n: int, d: int, seed: int) -> torch.Tensor:
    """Vectors that share one strong direction, like dlib's descriptors (DESIGN.md sec. 4)."""
    gen = torch.Generator().manual_seed(seed)
    shared = torch.randn(d, generator=gen)
    shared = shared / shared.norm()
    x = 2.5 * shared + torch.randn(n, d, generator=gen) * 0.12
    return x / x.norm(dim=1, keepdim=True) * 1.4


def _load_vectors(path: str) -> torch.Tensor:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"identitydp: error: cannot read {path!r} as a .npy array: {exc}")
    if arr.ndim != 2 or arr.dtype.kind != "f":
        raise SystemExit(f"identitydp: error: {path!r} must hold a 2-D float array (N, d), "
                         f"got shape {arr.shape} dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def _save_atomic(path: str, arr: np.ndarray, overwrite: bool) -> None:
    if os.path.exists(path) and not overwrite:
        raise SystemExit(f"identitydp: error: {path!r} exists; pass --overwrite to replace it")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npy.part")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, arr)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def cmd_noise(args: argparse.Namespace) -> int:
    if args.input:
        x = _load_vectors(args.input)
        source = args.input
    else:
        x = _synthetic_batch(args.n, args.dim, args.seed)
        source = f"synthetic batch (seed {args.seed})"
    if args.out and args.input and os.path.abspath(args.out) == os.path.abspath(args.input):
        raise SystemExit("identitydp: error: --out would overwrite the input file")
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("identitydp: error: --device cuda but no CUDA GPU is visible to torch")
    x = x.to(device)
    center = None
    if args.centered:
        u = torch.nn.functional.normalize(x.float(), dim=1)
        center = u.mean(dim=0)  # demo only: a real centre comes from public training data
    try:
        dp = IdentityDP(args.epsilon, center=center, clip=args.clip, output_norm=args.output_norm,
                        backend=args.backend)
        result = dp(x, key=args.key, stream=args.stream)
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"identitydp: error: {exc}")
    cos = torch.nn.functional.cosine_similarity(result.vectors.float(), x.float(), dim=1).cpu()
    print(f"input: {source}, {x.shape[0]} x {x.shape[1]}")
    print(result.summary())
    print(f"cosine(input, released): mean {cos.mean():.4f}, min {cos.min():.4f}, max {cos.max():.4f}")
    if args.out:
        _save_atomic(args.out, result.vectors.cpu().numpy(), args.overwrite)
        print(f"wrote {args.out}")
    if args.json:
        record = {k: getattr(result, k) for k in ("epsilon", "effective_epsilon", "delta", "sensitivity",
                                                  "scale", "granularity", "key_supplied", "key_id",
                                                  "stream", "backend")}
        record["rows"], record["dim"] = x.shape
        print(json.dumps(record))
    return 0


#: a public, typical norm of dlib's descriptors (DESIGN.md section 3: 1.25-1.61)
DLIB_DESCRIPTOR_NORM = 1.4


def cmd_identity(args: argparse.Namespace) -> int:
    from .pipeline.align import dlib_face_chips
    from .pipeline.detect import detect_faces
    from .pipeline.decode import read_image
    from .pipeline.identity import IdentityEncoder

    try:
        encoder = IdentityEncoder(backend=args.backend, device=args.device)
        dp = IdentityDP(args.epsilon, output_norm=DLIB_DESCRIPTOR_NORM,
                        backend=args.backend if args.backend != "reference" else "reference")
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        raise SystemExit(f"identitydp: error: {exc}")
    failures = 0
    for path in args.images:
        try:
            img = read_image(path)
        except (OSError, ValueError, TypeError) as exc:
            print(f"{path}: error: {exc}")
            failures += 1
            continue
        faces = detect_faces(img)
        if not faces:
            print(f"{path}: no face found")
            continue
        chips = dlib_face_chips(img, [f.landmarks for f in faces], 150, 0.25)
        desc = encoder(chips)
        released = dp(desc.cpu(), key=args.key)
        dist = (released.vectors - desc.cpu()).norm(dim=1)
        print(f"{path}: {len(faces)} face(s); {released.summary()}")
        for face, d in zip(faces, dist.tolist()):
            verdict = "still verifies as the same person" if d < 0.6 else "no longer verifies as the same person"
            print(f"  box {face.box} score {face.score:.2f}: dlib distance original -> released "
                  f"{d:.3f} ({verdict}; threshold 0.6)")
    return 1 if failures else 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .benchmark import format_table, run_bench, to_json

    backends = [b.strip() for b in args.backends.split(",")] if args.backends else None
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("identitydp: error: --device cuda but no CUDA GPU is visible to torch")
    try:
        record = run_bench(args.config, args.batch, args.device, backends, args.repeats, args.warmup)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        raise SystemExit(f"identitydp: error: {exc}")
    print(format_table(record))
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(to_json(record))
        print(f"wrote {args.json}")
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    for name in backends():
        print(name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="identitydp", description="epsilon-IdentityDP face anonymisation engine")
    parser.add_argument("--version", action="version", version=f"identitydp-fast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    noise = sub.add_parser("noise", help="release noisy identity vectors and report the guarantee")
    noise.add_argument("--input", help=".npy file with an (N, d) float array (default: a synthetic batch)")
    noise.add_argument("--n", type=int, default=8, help="rows of the synthetic batch")
    noise.add_argument("--dim", type=int, default=128, help="dimension of the synthetic batch")
    noise.add_argument("--seed", type=int, default=0, help="seed of the synthetic batch (not of the noise)")
    noise.add_argument("--epsilon", type=float, default=10.0)
    noise.add_argument("--clip", type=float, default=None, help="L1 clip radius C of the residual")
    noise.add_argument("--centered", action="store_true",
                       help="demo: centre on the batch mean (use a public centre in production)")
    noise.add_argument("--output-norm", type=float, default=1.0)
    noise.add_argument("--key", default=None, help="64 hex characters: reproducible mode")
    noise.add_argument("--stream", type=int, default=0)
    noise.add_argument("--backend", default="auto", choices=["auto", "reference", "cpu", "cuda", "triton"])
    noise.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    noise.add_argument("--out", help="write the released vectors here (.npy)")
    noise.add_argument("--overwrite", action="store_true")
    noise.add_argument("--json", action="store_true", help="also print the record as JSON")
    noise.set_defaults(func=cmd_noise)
    ident = sub.add_parser("identity", help="identity descriptors of the faces in images, released with epsilon-IdentityDP")
    ident.add_argument("images", nargs="+", help="image files (any format Pillow reads)")
    ident.add_argument("--epsilon", type=float, default=300.0)
    ident.add_argument("--key", default=None, help="64 hex characters: reproducible mode")
    ident.add_argument("--backend", default="auto", choices=["auto", "reference", "cpu", "cuda", "triton"])
    ident.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ident.set_defaults(func=cmd_identity)
    bench = sub.add_parser("bench", help="end-to-end latency per backend (median, p90, ratio to eager)")
    bench.add_argument("--config", default="fast-128", help="model config (fast-128, paper-256)")
    bench.add_argument("--batch", type=int, default=1)
    bench.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    bench.add_argument("--backends", default=None,
                       help="comma list of reference, compile, cpu, cuda, triton (default: reference + available engines)")
    bench.add_argument("--repeats", type=int, default=20)
    bench.add_argument("--warmup", type=int, default=3)
    bench.add_argument("--json", help="also write the table as JSON here")
    bench.set_defaults(func=cmd_bench)
    from .cli_anonymize import add_parser as add_anonymize

    add_anonymize(sub)
    from .cli_video import add_parser as add_anonymize_video

    add_anonymize_video(sub)
    from .evaluation.command import add_parser as add_evaluate

    add_evaluate(sub)
    bk = sub.add_parser("backends", help="list the backends usable on this machine")
    bk.set_defaults(func=cmd_backends)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
