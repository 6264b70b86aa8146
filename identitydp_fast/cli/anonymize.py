"""``identitydp anonymize INPUT... --out DIR``: anonymise the faces in image files and folders.

Outputs keep each input's file name and format under DIR (folders: their relative
paths). Inputs are never written; outputs are atomic; existing outputs are skipped
unless --overwrite; images without a face are written with their pixels unchanged;
a file that fails gets one error line on stderr and a 'failed' row in the report while
the others complete. File handling: identitydp_fast/io/files.py; decoding and
writing formats, modes and metadata: identitydp_fast/io/image_codec.py.

Exit status: 0 when every file is ok, no_face or skipped; 1 when any file failed;
2 when the command could not start (bad option, refused output folder, model missing);
130 when interrupted (the report then covers the files done so far).
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings

from ..io import files
from ..io.image_codec import MAX_PIXELS
from .options import add_anonymizer_options

_PROG = "identitydp anonymize"


class _Usage(Exception):
    pass


def _usage_error(msg: str) -> int:
    print(f"{_PROG}: error: {' '.join(str(msg).split())}", file=sys.stderr)
    return 2


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the subcommand on the ``identitydp`` subparsers."""
    p = sub.add_parser(
        "anonymize", help="replace the faces in image files and folders (outputs under --out)",
        description="Replace every detected face with a face of another identity "
                    "(epsilon-IdentityDP on the identity vector). Outputs keep the input's name "
                    "and format under --out; inputs are never written. Exit status 0: all "
                    "done; 1: some files failed; 2: could not start.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and folders")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    add_anonymizer_options(p, "face identity", "per-file keys derived from it")
    p.add_argument("--salt", default=None, metavar="HEX",
                   help="32 hex characters, with --key: the salt of the run to reproduce (its "
                        "report's key_salt); default: a fresh random salt, so two runs with one "
                        "--key never share noise")
    p.add_argument("--batch-size", type=int, default=4, metavar="N",
                   help="files decoded ahead of the one being anonymised (bounds memory; default 4)")
    p.add_argument("--recursive", "-r", action="store_true", help="descend into sub-folders")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    p.add_argument("--report", metavar="FILE.json", help="write a JSON report (per file and totals)")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                   help=f"refuse images with more pixels, checked before decoding (decompression "
                        f"bombs; default and maximum {MAX_PIXELS})")
    meta = p.add_mutually_exclusive_group()
    meta.add_argument("--keep-metadata", action="store_true",
                      help="keep the input's EXIF (GPS, dates, camera, Artist...) minus orientation, "
                           "thumbnail and maker note (default: only resolution and colour-space tags)")
    meta.add_argument("--strip-metadata", action="store_true", help="write no EXIF at all")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_anonymize)
    return p


def _check_args(args) -> tuple[bytes | None, bytes | None]:
    """(master key, run salt), both None without --key."""
    from ..privacy.keys import check_key, check_salt, fresh_salt

    if args.batch_size < 1:
        raise _Usage(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 1 <= args.max_pixels <= MAX_PIXELS:
        raise _Usage(f"--max-pixels must be in [1, {MAX_PIXELS}] (the anonymiser's own limit), "
                     f"got {args.max_pixels}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise _Usage("--device cuda but no CUDA GPU is visible to torch")
    if args.key is None:
        if args.salt is not None:
            raise _Usage("--salt needs --key (without a key every image draws a fresh key)")
        return None, None
    try:
        master = check_key(args.key, "--key")
        salt = fresh_salt() if args.salt is None else check_salt(args.salt, "--salt")
    except (TypeError, ValueError) as exc:
        raise _Usage(str(exc)) from None
    return master, salt


def _metadata_policy(args) -> str:
    """--keep-metadata / --strip-metadata / the safe allow-list (io/image_codec.py)."""
    return "keep" if args.keep_metadata else "none" if args.strip_metadata else "safe"


def _check_writable(out_dir: str, report: str | None) -> None:
    """Refuse, before any image is processed, an --out or --report that cannot be written:
    the nearest existing folder of --out and the folder of --report must take a new file
    (probed with a temporary file, which also catches read-only file systems)."""
    import tempfile
    from pathlib import Path

    def probe(folder: Path, what: str) -> None:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise _Usage(f"{what}: cannot write in {folder}: {exc.strerror or exc}") from None

    p = Path(out_dir).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise _Usage(f"--out {out_dir}: {p} is not a folder")
    probe(p, f"--out {out_dir}")
    if report:
        r = Path(report)
        if r.is_dir():
            raise _Usage(f"--report {report} is a folder; give a file name")
        parent = r.resolve().parent
        if not parent.is_dir():
            raise _Usage(f"--report {report}: the folder {parent} does not exist")
        probe(parent, f"--report {report}")


def anonymizer_kwargs(args) -> dict:
    """The Anonymizer's keyword arguments from the shared options (options.py), less the
    model and epsilon; anonymize-dataset builds its workers' Anonymizer from the same
    dict, so both commands run one configuration."""
    kw = {"device": args.device, "backend": args.backend, "min_score": args.min_score,
          "upsample": args.upsample}
    if getattr(args, "detector", None) is not None:
        kw["detector"] = args.detector
    return kw


def _make_anonymizer(args):
    from ..anonymizer import Anonymizer

    kw = {"model": args.model, **anonymizer_kwargs(args)}
    if args.epsilon is not None:
        kw["epsilon"] = args.epsilon
    try:
        return Anonymizer(**kw)
    except FileNotFoundError as exc:
        raise _Usage(f"{exc} (on the command line: --model PATH)" if args.model is None else str(exc)) from None
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        raise _Usage(str(exc)) from None


def cmd_anonymize(args: argparse.Namespace) -> int:
    from pathlib import Path

    try:
        master, salt = _check_args(args)
        jobs, ignored = files.plan(args.inputs, args.out, args.recursive)
        _check_writable(args.out, args.report)
        if args.report:
            rep = Path(args.report).resolve()
            clash = [j for j in jobs if rep in (j.input.resolve(), j.output.resolve())]
            if clash:
                raise _Usage(f"--report {args.report} is also the input or output {clash[0].input}")
        anon = _make_anonymizer(args)
    except (_Usage, files.PlanError) as exc:
        return _usage_error(str(exc))
    for note in files.scan_notes(args.inputs, args.recursive, jobs, ignored):
        print(f"note: {note}")
    epsilon = args.epsilon if args.epsilon is not None else getattr(anon, "epsilon", None)
    # Pillow warns about damaged metadata in files it can still read; the per-file result
    # (and its one error line when it fails) is what the user acts on
    warnings.filterwarnings("ignore", module=r"PIL\.")

    def anonymize(rgb, key):
        return anon.anonymize(rgb, key=key)

    from tqdm import tqdm

    records: list[files.FileRecord] = []
    bar = tqdm(total=len(jobs), unit="img", desc="anonymising", file=sys.stderr,
               disable=args.quiet or not sys.stderr.isatty(), dynamic_ncols=True)
    interrupted = False
    try:
        for rec in files.run(jobs, anonymize, overwrite=args.overwrite, master_key=master,
                                   salt=salt, max_pixels=args.max_pixels, metadata=_metadata_policy(args),
                                   decode_ahead=args.batch_size):
            records.append(rec)
            if rec.status == "failed":
                bar.write(f"identitydp: {rec.input}: error: {rec.error}", file=sys.stderr)
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    line = files.summary_line(records, args.out)
    if ignored:
        line += f"; ignored {len(ignored)} non-image file(s) in the input folders"
    if interrupted:
        line = f"interrupted after {len(records)} of {len(jobs)} file(s): " + line
    print(line)
    if salt is not None:
        print(f"key salt {salt.hex()}: with the same --key, --salt {salt.hex()} reproduces "
              "this run")
    no_face = sum(r.status == "no_face" for r in records)
    if no_face and args.upsample < 4:
        if args.detector in ("hog", "mmod"):  # dlib finds faces down to ~80 / 2^upsample px
            smallest = f"about {80 >> args.upsample} px"
        else:  # the CNNs: recall falls below ~32 px at 1x (bench/DETECTORS.md)
            smallest = "about 32 px (16-32 px faces: ~65% found at 1x)"
        print(f"hint: {no_face} image(s) had no face found; faces smaller than {smallest} need "
              f"--upsample {args.upsample + 1} or more (each step ~4x slower)")
    if args.report:
        report = files.report(records, epsilon=epsilon, key_supplied=master is not None,
                                    out_dir=args.out, ignored=ignored, salt=salt,
                                    extra={"model": args.model or "packaged default",
                                           "metadata": _metadata_policy(args),
                                           "backend": args.backend, "device": args.device,
                                           "interrupted": interrupted})
        try:
            files.write_atomic(Path(args.report),
                                     (json.dumps(report, indent=2) + "\n").encode("utf-8"))
        except OSError as exc:
            print(f"{_PROG}: error: cannot write the report {args.report}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
        print(f"wrote report {args.report}")
    if interrupted:
        return 130
    return 1 if any(r.status == "failed" for r in records) else 0
