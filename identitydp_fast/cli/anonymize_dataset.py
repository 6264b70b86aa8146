"""``identitydp anonymize-dataset INPUT --out OUT``: anonymise a whole data set on Ray.

INPUT: a folder (every image at any depth), ``s3://bucket/prefix``, or a list file of
paths/URIs (one per line); OUT: a folder or ``s3://bucket/prefix``. The guarantees are
``identitydp anonymize``'s (inputs never written, atomic outputs with the input's relative
path, name and format, resume, one bad file never stops the run, the same outputs for the
same --key and --salt); the run itself: identitydp_fast/io/dataset.py.

Exit status: 0 when every file is ok, no_face or skipped; 1 when any file failed or the
Ray job stopped early (the report covers the rows that came back); 2 when the command
could not start (bad option, OUT or --report not writable, OUT inside INPUT, model
missing, the cluster too small for --workers); 130 when interrupted.
"""
from __future__ import annotations

import argparse
import sys

from ..io.image_codec import MAX_PIXELS
from .anonymize import _metadata_policy, anonymizer_kwargs
from .options import add_anonymizer_options

_PROG = "identitydp anonymize-dataset"


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the subcommand on the ``identitydp`` subparsers."""
    p = sub.add_parser(
        "anonymize-dataset", help="anonymise a whole data set on Ray (folder, list file or s3:// prefix)",
        description="Replace every detected face in a data set with a face of another identity "
                    "(epsilon-IdentityDP on the identity vector), on a local or remote Ray "
                    "cluster. Outputs keep the input's relative path, name and format under "
                    "--out. Exit status 0: all done; 1: some files failed; 2: could not start.")
    p.add_argument("input", metavar="INPUT",
                   help="a folder, s3://bucket/prefix, or a list file of paths or URIs (one a line)")
    p.add_argument("--out", required=True, metavar="OUT", help="output folder or s3://bucket/prefix")
    p.add_argument("--address", default=None, metavar="auto|ray://HOST:PORT",
                   help="the Ray cluster: 'auto' (the one this node joined with `ray start`), "
                        "ray://HOST:PORT (Ray Client); default: $RAY_ADDRESS or a local Ray")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="actors, each with its own copy of the model (default: as many as the "
                        "cluster's CPUs, or GPUs with --gpus-per-worker, hold)")
    p.add_argument("--cpus-per-worker", type=float, default=1, metavar="C",
                   help="CPUs reserved per actor (its torch threads on CPU workers; default 1)")
    p.add_argument("--gpus-per-worker", type=float, default=0, metavar="G",
                   help="GPUs per actor (0: CPU workers, the default; 0.5: two actors share a GPU)")
    p.add_argument("--batch-size", type=int, default=16, metavar="B",
                   help="files per call of an actor (default 16)")
    add_anonymizer_options(p, "face identity", "per-file keys derived from it")
    p.add_argument("--salt", default=None, metavar="HEX",
                   help="32 hex characters, with --key: the salt of the run to reproduce (its "
                        "report's key_salt; same as `identitydp anonymize --salt`)")
    p.add_argument("--report", metavar="FILE.parquet",
                   help="write the report: one row per file, the totals, the privacy statement "
                        "and key_salt in the file's metadata")
    p.add_argument("--report-jsonl", action="store_true",
                   help="also write the rows as JSON lines beside --report (.jsonl; the last "
                        "line is the run's header)")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    meta = p.add_mutually_exclusive_group()
    meta.add_argument("--keep-metadata", action="store_true",
                      help="keep the input's EXIF minus orientation, thumbnail and maker note")
    meta.add_argument("--strip-metadata", action="store_true", help="write no EXIF at all")
    p.add_argument("--s3-endpoint", default=None, metavar="URL",
                   help="an S3-compatible store's endpoint (http://HOST:PORT: MinIO, Ceph...)")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                   help=f"refuse images with more pixels (default and maximum {MAX_PIXELS})")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_anonymize_dataset)
    return p


def _error(msg: str) -> int:
    print(f"{_PROG}: error: {' '.join(str(msg).split())}", file=sys.stderr)
    return 2


def cmd_anonymize_dataset(args: argparse.Namespace) -> int:
    try:
        from ..io import dataset
    except ImportError as exc:  # ray or pyarrow missing
        return _error(f"{exc}: install the extra: pip install 'identitydp-fast[ray]'")
    from ..io import files, storage

    if args.device == "cuda":
        return _error("--device cuda: use --gpus-per-worker G (each actor gets its own GPU share)")
    options = anonymizer_kwargs(args)
    options.pop("device")

    def say_failure(row: dict) -> None:
        print(f"identitydp: {row['input']}: error: {row['error']}", file=sys.stderr)

    try:
        res = dataset.anonymize_dataset(
            args.input, args.out, address=args.address, workers=args.workers,
            cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker,
            batch_size=args.batch_size, epsilon=args.epsilon, key=args.key, salt=args.salt,
            model=args.model, metadata=_metadata_policy(args), overwrite=args.overwrite,
            report=args.report, report_jsonl=args.report_jsonl, s3_endpoint=args.s3_endpoint,
            max_pixels=args.max_pixels, anonymizer_options=options, on_failure=say_failure,
            progress=not args.quiet)
    except (dataset.DatasetError, files.PlanError, storage.StorageError) as exc:
        return _error(str(exc))
    line = files.totals_line(res.totals, args.out)
    if res.ignored:
        line += f"; ignored {res.ignored} non-image file(s) under INPUT"
    if res.interrupted:
        line = f"interrupted after {res.totals['files']} file(s): " + line
    print(line)
    if res.error:
        print(f"{_PROG}: error: {res.error}", file=sys.stderr)
    if res.salt is not None:
        print(f"key salt {res.salt.hex()}: with the same --key, --salt {res.salt.hex()} reproduces "
              "this run")
    for path in filter(None, (res.report, res.jsonl)):
        print(f"wrote report {path}")
    if res.interrupted:
        return 130
    return 1 if res.error or res.totals["failed"] else 0
