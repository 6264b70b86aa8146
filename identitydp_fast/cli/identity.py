"""``identitydp identity``: detect the faces in images, compute their identity descriptors
and release them with epsilon-IdentityDP: how far each moved."""
from __future__ import annotations

import argparse
import sys

from ..privacy.identity_dp import IdentityDP

#: a public, typical norm of dlib's descriptors (DESIGN.md section 3: 1.25-1.61)
DLIB_DESCRIPTOR_NORM = 1.4


def cmd_identity(args: argparse.Namespace) -> int:
    from ..pipeline.align import dlib_face_chips
    from ..pipeline.decode import read_image
    from ..pipeline.detect import detect_faces
    from ..pipeline.identity import IdentityEncoder
    from ..privacy import keys

    try:
        master = None if args.key is None else keys.check_key(args.key, "--key")
        if args.salt is not None and master is None:
            raise ValueError("--salt needs --key (without a key every image draws a fresh key)")
        salt = None
        if master is not None:
            salt = keys.fresh_salt() if args.salt is None else keys.check_salt(args.salt, "--salt")
        encoder = IdentityEncoder(backend=args.backend, device=args.device)
        dp = IdentityDP(args.epsilon, output_norm=DLIB_DESCRIPTOR_NORM,
                        backend=args.backend if args.backend != "reference" else "reference")
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"identitydp identity: error: {exc}", file=sys.stderr)
        return 2  # could not start: the convention of every subcommand
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
        # one key per image (run salt, content, name): no two images share noise
        key = None if master is None else keys.derive_key(master, salt, keys.file_sha256(path), path)
        released = dp(desc.cpu(), key=key)
        dist = (released.vectors - desc.cpu()).norm(dim=1)
        print(f"{path}: {len(faces)} face(s); {released.summary()}")
        for face, d in zip(faces, dist.tolist()):
            verdict = "still verifies as the same person" if d < 0.6 else "no longer verifies as the same person"
            print(f"  box {face.box} score {face.score:.2f}: diagnostic, computed from the "
                  f"UNRELEASED descriptor (do not publish it): dlib distance original -> released "
                  f"{d:.3f} ({verdict}; threshold 0.6)")
    if salt is not None:
        print(f"key salt {salt.hex()}: with the same --key, --salt {salt.hex()} reproduces "
              "these releases")
    return 1 if failures else 0


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the subcommand on the ``identitydp`` subparsers."""
    ident = sub.add_parser("identity", help="identity descriptors of the faces in images, released with epsilon-IdentityDP")
    ident.add_argument("images", nargs="+", help="image files (any format Pillow reads)")
    ident.add_argument("--epsilon", type=float, default=300.0)
    ident.add_argument("--key", default=None, help="64 hex characters: reproducible mode (one key "
                       "per image derived from it, the run's salt, the file's SHA-256 and path)")
    ident.add_argument("--salt", default=None, metavar="HEX",
                       help="32 hex characters, with --key: the salt of the run to reproduce")
    ident.add_argument("--backend", default="auto", choices=["auto", "reference", "cpu", "cuda", "triton"])
    ident.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ident.set_defaults(func=cmd_identity)
    return ident
