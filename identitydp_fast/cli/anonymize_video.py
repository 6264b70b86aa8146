"""``identitydp anonymize-video IN OUT``: anonymise every face of a video, keep its audio.

One epsilon-IdentityDP release per face track, rendered in every frame of the track
(identitydp_fast/io/video.py states the guarantee and the file handling). Prints a summary;
``--report FILE.json`` writes the per-track record.

Exit status: 0 done; 1 the video could not be read or written (one error line; OUT is
untouched); 2 the command could not start (bad option, refused OUT, model missing, video
extra not installed), as for ``identitydp anonymize``; 130 interrupted (OUT untouched).
"""
from __future__ import annotations

import argparse
import os
import sys

from .options import add_anonymizer_options

_PROG = "identitydp anonymize-video"


def _error(msg: str, code: int) -> int:
    print(f"{_PROG}: error: {' '.join(str(msg).split())}", file=sys.stderr)
    return code


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the subcommand on the ``identitydp`` subparsers."""
    p = sub.add_parser(
        "anonymize-video", help="replace the faces in a video (one DP release per face track, audio kept)",
        description="Replace every detected face in every frame with a face of another identity. "
                    "Faces are tracked across frames: each track's identity is released once "
                    "(epsilon per track, no extra epsilon per frame). Frame rate, frame size and "
                    "audio are kept; OUT's extension picks the container (.mp4 .m4v .mov .mkv "
                    ".avi .webm).")
    p.add_argument("input", metavar="IN", help="input video")
    p.add_argument("output", metavar="OUT", help="output video (never the input)")
    add_anonymizer_options(p, "face track", "one key per track derived from it")
    p.add_argument("--salt", default=None, metavar="HEX",
                   help="32 hex characters, with --key: the salt of the run to reproduce (its "
                        "report's key_salt); default: a fresh random salt")
    p.add_argument("--report", metavar="FILE.json", help="write the JSON report (tracks, releases, epsilon)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..io import video

    try:
        import imageio  # noqa: F401
        import imageio_ffmpeg  # noqa: F401
    except ImportError as exc:
        return _error(f"{exc.name} is not installed: pip install \"identitydp-fast[video]\"", 2)
    if args.report and os.path.abspath(args.report) in (os.path.abspath(args.input),
                                                        os.path.abspath(args.output)):
        return _error("--report must not be the input or the output video", 2)
    from ..privacy.accounting import check_epsilon
    from ..privacy.keys import check_key, check_salt

    try:  # option values first: a bad option exits 2 whatever the files are
        if args.epsilon is not None:
            check_epsilon(args.epsilon)
        if args.key is not None:
            check_key(args.key, "--key")
        if args.salt is not None:
            if args.key is None:
                raise ValueError("--salt needs --key (without a key every track draws a fresh key)")
            check_salt(args.salt, "--salt")
    except (ValueError, TypeError) as exc:
        return _error(exc, 2)
    try:  # a refused OUT is a bad argument (2) and costs nothing: before the model loads
        video._check_paths(args.input, args.output, args.overwrite)
    except video.OutputExistsError:
        return _error(f"{args.output}: exists; pass --overwrite to replace it", 2)
    except video.VideoError as exc:
        return _error(exc, 2)
    try:
        video.probe_video(args.input)
    except video.VideoError as exc:
        return _error(exc, 1)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return _error("--device cuda but no CUDA GPU is visible to torch", 2)
    from ..anonymizer import Anonymizer

    kw = {} if args.epsilon is None else {"epsilon": args.epsilon}
    try:
        anon = Anonymizer(model=args.model, device=args.device, backend=args.backend,
                          min_score=args.min_score, upsample=args.upsample,
                          detector=args.detector, **kw)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, OSError) as exc:
        return _error(exc, 2)
    done = [0]

    def progress(n: int) -> None:
        done[0] = n
        if sys.stderr.isatty() and n % 10 == 0:
            print(f"\r{_PROG}: {n} frames", end="", file=sys.stderr, flush=True)

    try:
        report = video.anonymize_video(args.input, args.output, anon, key=args.key,
                                       overwrite=args.overwrite, progress=progress,
                                       salt=args.salt)
    except KeyboardInterrupt:
        return _error(f"interrupted after {done[0]} frames; {args.output} not written", 130)
    except (video.VideoError, ValueError, TypeError) as exc:
        return _error(exc, 1)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"{args.input} -> {args.output}: {report.frames} frames {report.size[0]}x{report.size[1]} "
          f"at {report.fps} fps, {report.frames_with_faces} with faces, "
          f"audio: {'; '.join(report.audio) or 'none'} ({report.seconds:.1f} s)")
    print(report.privacy_summary())
    if report.key_salt is not None:
        print(f"key salt {report.key_salt}: with the same --key, --salt {report.key_salt} "
              "reproduces this run")
    for t in report.tracks:
        print(f"  track {t.track_id}: frames {t.birth_frame}-{t.last_frame}, detected in {t.frames}, "
              f"1 release, epsilon {t.epsilon:g}"
              + (f", {t.filled} missed frame(s) filled from the track's prediction" if t.filled else "")
              + (f", {t.gaps} frame(s) without detection (not replaced)" if t.gaps else ""))
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.report:
        try:
            video.write_report(report, args.report)
        except OSError as exc:
            return _error(f"cannot write the report {args.report}: {exc}", 1)
        print(f"wrote {args.report}")
    return 0
