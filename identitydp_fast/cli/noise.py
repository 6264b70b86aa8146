"""``identitydp noise``: release noisy identity vectors (from a .npy file, or a synthetic
batch shaped like dlib descriptors) with epsilon-IdentityDP and print what was done."""
from __future__ import annotations

import argparse
import json
import os
import tempfile

import numpy as np
import torch

from ..privacy.identity_dp import IdentityDP


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
    if args.centered:
        # the centre is a function of these very rows, not public: the mechanism's bound
        # assumes a centre fixed before the data, so the printed guarantee does not hold here
        print("warning: --centered took the centre from this batch's own mean, which is not public: "
              "the guarantee above does NOT hold for these rows (a demonstration of the mechanism "
              "only; pass a public centre through the Python API)")
    print(f"diagnostic, computed from the UNRELEASED input (do not publish it): cosine(input, "
          f"released): mean {cos.mean():.4f}, min {cos.min():.4f}, max {cos.max():.4f}")
    if args.out:
        _save_atomic(args.out, result.vectors.cpu().numpy(), args.overwrite)
        print(f"wrote {args.out}")
    if args.json:
        record = {k: getattr(result, k) for k in ("epsilon", "effective_epsilon", "delta", "sensitivity",
                                                  "scale", "granularity", "key_supplied", "key_id",
                                                  "stream", "backend")}
        record["rows"], record["dim"] = x.shape
        record["guarantee_holds"] = not args.centered   # a batch-mean centre is not public
        print(json.dumps(record))
    return 0


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the subcommand on the ``identitydp`` subparsers."""
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
    return noise
