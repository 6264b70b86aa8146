"""Batch anonymisation of image files: which files, where each result goes, and writing
the results without ever losing a user's file (what ``identitydp anonymize`` runs).

Guarantees:

* **Inputs are never written.** ``plan`` refuses (PlanError, before anything is read or
  written) when an output path would be an input path, when the output folder is an
  input folder, when ``recursive`` is set and the output folder lies inside an input
  folder (a later run would read the outputs as inputs), and when two inputs would share
  one output. Each write re-checks that the target is not the input (hard links).
* **Atomic outputs.** A result is encoded in memory, written to a temporary file in the
  output's own folder (``.NAME.XXXX.part``), flushed to disk and renamed over the target
  with ``os.replace``: an output path holds either nothing, the old file or the complete
  new one, whatever happens (crash, full disk, Ctrl-C).
* **Re-runs resume.** An existing output is skipped (status ``skipped``) unless
  ``overwrite``; because outputs are atomic, an existing output is a finished one.
* **One bad file never stops the batch.** Every failure (missing, unreadable, corrupt or
  unsupported file, anonymiser error, write error) becomes that file's ``failed``
  record with a one-line message; the other files still complete.

Mapping: a file argument goes to ``DIR/<its name>``; a folder argument's images go to
``DIR/<path relative to that folder>`` (its direct files, or its whole tree with
``recursive``). In folders, only files with an image extension Pillow reads are taken;
hidden files and folders (name starting with '.') are left out; symbolic links to
folders are not followed. Explicit file arguments are always attempted.

Per-file work: ``anonymize_bytes`` (decode_input, then anonymize_decoded: bytes in, the
output's bytes and the report fields out, nothing read or written) is what ``run`` does
for each file and what the dataset runner (io/dataset.py) does on its Ray workers, so
both give the same output for the same bytes, rel, key and salt.

Keys: with a master key, each file gets its own 256-bit key
``privacy.keys.derive_key(master, salt, SHA-256 of the input's bytes, rel)``, where salt
is the run's (random unless given; the report records it) and rel the output path
relative to DIR ('/' separators). So different files, different contents under one name
and different runs draw independent noise, and the same key, salt, bytes and path
reproduce the same output. Without a master key every image gets a fresh key from the
OS CSPRNG inside the anonymiser, never stored.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ..privacy import keys as _keys
from .image_codec import MAX_PIXELS, DecodedImage, ImageFileError, decode_bytes, encode

STATUSES = ("ok", "no_face", "skipped", "failed")


class PlanError(ValueError):
    """The command cannot run as asked (a usage error); nothing was read or written."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One input file and its output.

    input: the file to read; output: where its result goes; rel: output path relative to
    the output folder with '/' separators (names the file in keys and reports); error: a
    problem found while planning (missing input), reported as this file's failure.
    """

    input: Path
    output: Path
    rel: str
    error: str | None = None


@dataclasses.dataclass
class FileRecord:
    """What happened to one file (a row of the JSON report).

    status: 'ok' (faces anonymised), 'no_face' (written with its pixels unchanged),
    'skipped' (the output existed; nothing read), 'failed' (see error; no output written).
    faces: one dict per anonymised face (the anonymiser's FaceResult fields).
    notes: conversions the output shows (see identitydp_fast.io.image_codec).
    sha256: hex digest of the input's bytes ('' when it was not read).
    """

    input: str
    output: str
    status: str
    faces: list = dataclasses.field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    notes: list = dataclasses.field(default_factory=list)
    sha256: str = ""


def image_extensions() -> frozenset[str]:
    """Lower-case extensions ('.jpg', ...) of every format Pillow can read."""
    from PIL import Image

    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items()
                     if fmt in Image.OPEN)


def _entry_is_file(entry: os.DirEntry, unreadable: list) -> bool:
    """entry.is_file(), with entries that cannot even be stat'ed (a symlink loop: ELOOP,
    permissions) collected as (path, reason) instead of ending the whole scan."""
    try:
        return entry.is_file()
    except OSError as err:
        unreadable.append((Path(entry.path), err.strerror or str(err)))
        return False


def _folder_files(folder: Path, recursive: bool, exts: frozenset[str],
                  unreadable: list | None = None) -> tuple[list[Path], list[Path]]:
    """(image files, other files) under folder, sorted; hidden entries left out; entries that
    cannot be read go to ``unreadable`` as (path, reason)."""
    images, others = [], []
    unreadable = [] if unreadable is None else unreadable
    if recursive:
        walker = os.walk(folder, followlinks=False)
    else:
        walker = [(str(folder), [], [e.name for e in os.scandir(folder)
                                     if not e.name.startswith(".") and _entry_is_file(e, unreadable)])]
    for root, dirs, files in walker:
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            p = Path(root) / name
            if not p.is_file():
                continue  # broken link, socket...
            (images if p.suffix.lower() in exts else others).append(p)
    return images, others


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def plan(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
         recursive: bool = False) -> tuple[list[Job], list[Path]]:
    """(jobs, ignored non-image files in the input folders) for the inputs; raises
    PlanError when the command would write over an input or re-read its own outputs
    (see the module docstring). Nothing is created here."""
    if not inputs:
        raise PlanError("no input files or folders given")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PlanError(f"--out {out} exists and is not a folder")
    out_real = out.resolve()
    exts = image_extensions()
    jobs: list[Job] = []
    ignored: list[Path] = []
    for arg in inputs:
        src = Path(arg)
        if src.is_dir():
            real = src.resolve()
            if real == out_real:
                raise PlanError(f"--out {out} is the input folder {src}: outputs would replace the "
                                "inputs; choose another output folder")
            if recursive and _is_within(out_real, real):
                raise PlanError(f"--out {out} lies inside the input folder {src}; with --recursive a "
                                "later run would read the outputs as inputs: choose a folder outside it")
            unreadable: list = []
            images, others = _folder_files(src, recursive, exts, unreadable)
            ignored.extend(others)
            for p, reason in unreadable:  # reported as one failed line each; the batch goes on
                rel = p.relative_to(src).as_posix()
                jobs.append(Job(p, out / rel, rel, f"cannot read it: {reason}"))
            for p in images:
                rel = p.relative_to(src).as_posix()
                jobs.append(Job(p, out / rel, rel))
        elif src.exists() or src.is_symlink():
            jobs.append(Job(src, out / src.name, src.name,
                            None if src.is_file() else "not a regular file"))
        else:
            jobs.append(Job(src, out / src.name, src.name, "no such file or folder"))
    inputs_real = {j.input.resolve(): j.input for j in jobs if j.error is None}
    seen: dict[Path, Job] = {}
    for job in jobs:
        target = job.output.resolve()
        if target in inputs_real:
            raise PlanError(f"output {job.output} would overwrite the input {inputs_real[target]}; "
                            "choose an output folder that holds no input")
        if job.output.exists() and job.error is None and os.path.samefile(job.output, job.input):
            raise PlanError(f"output {job.output} is the same file as the input {job.input} "
                            "(a link); choose another output folder")
        if target in seen:
            raise PlanError(f"inputs {seen[target].input} and {job.input} would both be written to "
                            f"{job.output}; anonymise them into different folders")
        seen[target] = job
    return jobs, ignored


#: leading bytes of the image formats Pillow reads here, for telling the user that a file
#: with an unknown extension is an image all the same
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
          (b"GIF89a", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def sniff_image(path: Path) -> str | None:
    """The image format ``path``'s first bytes announce (PNG, JPEG, GIF, BMP, TIFF, WEBP), or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def scan_notes(inputs: Sequence[str | os.PathLike], recursive: bool, jobs: Sequence[Job],
               ignored: Sequence[Path]) -> list[str]:
    """One line per thing a folder scan left out and why: an input folder with no image,
    sub-folders skipped without --recursive, and files that are images by their content but
    carry an extension that is not an image's (the other ignored files are counted in the
    summary line)."""
    notes = []
    for arg in inputs:
        src = Path(arg)
        if not src.is_dir():
            continue
        here = Path(os.path.abspath(src))          # abspath, not resolve: links may loop
        found = sum(1 for j in jobs if _is_within(Path(os.path.abspath(j.input)), here))
        subdirs = [] if recursive else sorted(e.name for e in os.scandir(src) if not e.name.startswith(".")
                                              and e.is_dir(follow_symlinks=False))
        if not found:
            notes.append(f"{src}: no image files found in this folder"
                         + (f" (it has {len(subdirs)} sub-folder(s): --recursive includes them)"
                            if subdirs else ""))
        elif subdirs:
            notes.append(f"{src}: skipped {len(subdirs)} sub-folder(s) ({', '.join(subdirs[:3])}"
                         f"{', ...' if len(subdirs) > 3 else ''}): --recursive includes them")
    for p in ignored:
        kind = sniff_image(p)
        if kind is not None:
            notes.append(f"{p}: a {kind} image by its content, but its extension "
                         f"{p.suffix or '(none)'!r} is not an image extension: not processed "
                         f"(rename it to include it)")
    return notes


_umask_lock = threading.Lock()
_umask: list[int] = []


def _file_mode() -> int:
    """0o666 minus the process umask: what open() would give a new file (mkstemp gives 0600)."""
    with _umask_lock:
        if not _umask:
            current = os.umask(0o022)  # reading the umask means setting it; restore at once
            os.umask(current)
            _umask.append(current)
    return 0o666 & ~_umask[0]


def write_atomic(path: Path, data: bytes, never_over: Path | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and
    os.replace; refuses (ValueError) when ``path`` is the file ``never_over``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if never_over is not None and path.exists() and os.path.samefile(path, never_over):
        raise ValueError(f"refusing to write over the input {never_over}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _json_value(v):
    """numpy / tuples / non-finite floats -> JSON-safe values (NaN -> None)."""
    if isinstance(v, np.ndarray):
        return [_json_value(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    return str(v)


def face_dict(result) -> dict:
    """A FaceResult (dataclass or plain object) as a JSON-safe dict of its fields."""
    if dataclasses.is_dataclass(result):
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    else:
        fields = {k: v for k, v in vars(result).items() if not k.startswith("_")}
    return {k: _json_value(v) for k, v in fields.items()}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


AnonymizeFn = Callable[[np.ndarray, "bytes | None"], tuple]


def run(jobs: Iterable[Job], anonymize: AnonymizeFn, *, overwrite: bool = False,
        master_key: bytes | None = None, salt: bytes | None = None,
        max_pixels: int = MAX_PIXELS, metadata: str = "safe",
        decode_ahead: int = 4) -> Iterator[FileRecord]:
    """Anonymise every job, yielding one FileRecord per job in order.

    master_key and salt: reproducible mode (both or neither; see the module docstring).
    metadata: the outputs' EXIF policy, "safe", "keep" or "none" (io/image_codec.py).

    anonymize(rgb (H, W, 3) uint8, key bytes | None) -> (rgb out, [FaceResult, ...]).
    decode_ahead: files decoded in a background thread ahead of the one being
    anonymised (Pillow releases the GIL while decoding); it bounds memory to about that
    many decoded images. A KeyboardInterrupt stops the run between files' writes; what
    was written is complete.
    """
    if not isinstance(decode_ahead, int) or isinstance(decode_ahead, bool) or decode_ahead < 1:
        raise ValueError(f"decode_ahead must be an integer >= 1, got {decode_ahead!r}")
    if (master_key is None) != (salt is None):
        raise ValueError("master_key and salt go together (reproducible mode) or not at all")
    if master_key is not None:
        master_key, salt = _keys.check_key(master_key, "master key"), _keys.check_salt(salt)

    def decode(job: Job):
        t0 = time.perf_counter()
        try:
            data = read_input(job.input)
        except OSError as exc:  # unreadable: permissions, vanished, a folder...
            return Decoded(None, b"", f"cannot read the file: {exc.strerror or _one_line(exc)}"), \
                time.perf_counter() - t0
        return decode_input(data, max_pixels, metadata), time.perf_counter() - t0

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="identitydp-decode")
    pending: collections.deque = collections.deque()
    it = iter(jobs)

    def fill():
        while len(pending) < decode_ahead:
            job = next(it, None)
            if job is None:
                return
            if job.error is not None or (job.output.exists() and not overwrite):
                pending.append((job, None))  # nothing to decode
            else:
                pending.append((job, pool.submit(decode, job)))

    try:
        fill()
        while pending:
            job, fut = pending.popleft()
            fill()
            yield _process(job, fut, anonymize, master_key, salt)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def read_input(path) -> bytes:
    """The bytes of an input file (OSError when it cannot be read; a folder is refused)."""
    with open(path, "rb") as fh:
        return fh.read()


@dataclasses.dataclass(frozen=True)
class Decoded:
    """An input's bytes decoded for anonymisation (first half of anonymize_bytes).

    image: the decoded photo, or None when it cannot be anonymised (see error);
    digest: SHA-256 of the bytes that were decoded (b'' when decoding failed: the report
    then shows no digest, as for a file never read); error: one line, or None.
    """

    image: DecodedImage | None
    digest: bytes
    error: str | None = None


def decode_input(data: bytes, max_pixels: int = MAX_PIXELS, metadata: str = "safe") -> Decoded:
    """Decode one input's bytes; never raises for a bad file (ImageFileError -> error)."""
    digest = hashlib.sha256(data).digest()  # the bytes that are decoded are the bytes keyed
    try:
        return Decoded(decode_bytes(data, max_pixels, metadata), digest)
    except ImageFileError as exc:
        return Decoded(None, b"", str(exc))


def anonymize_decoded(decoded: Decoded, rel: str, anonymize: AnonymizeFn,
                      master_key: bytes | None = None,
                      salt: bytes | None = None) -> tuple[bytes | None, dict]:
    """(output file's bytes or None, report fields) for one decoded input (second half
    of anonymize_bytes). The fields are FileRecord's status ('ok', 'no_face' or
    'failed'), faces, error, notes and sha256; bytes are None exactly when status is
    'failed'. Never raises for a bad file or an anonymiser error (one line in error)."""
    fields: dict = {"status": "failed", "faces": [], "error": decoded.error, "notes": [],
                    "sha256": ""}
    if decoded.image is None:
        return None, fields
    image = decoded.image
    fields["notes"], fields["sha256"] = list(image.notes), decoded.digest.hex()
    key = (None if master_key is None
           else _keys.derive_key(master_key, salt, decoded.digest, rel))
    try:
        out_rgb, results = anonymize(image.rgb, key)
        results = list(results)
    except Exception as exc:  # noqa: BLE001 - one file's failure must not end the batch
        fields["error"] = f"anonymisation failed ({type(exc).__name__}: {_one_line(exc)})"
        return None, fields
    if not results:
        out_rgb = image.rgb  # no face: the pixels pass through unchanged
    try:
        data = encode(image, np.asarray(out_rgb))
    except (ImageFileError, ValueError) as exc:
        fields["error"] = str(exc)
        return None, fields
    fields.update(status="ok" if results else "no_face", faces=[face_dict(r) for r in results])
    return data, fields


def anonymize_bytes(data: bytes, rel: str, anonymize: AnonymizeFn,
                    master_key: bytes | None = None, salt: bytes | None = None,
                    max_pixels: int = MAX_PIXELS,
                    metadata: str = "safe") -> tuple[bytes | None, dict]:
    """The per-file work of every batch runner: one input's bytes -> (the output file's
    bytes or None, report fields; see anonymize_decoded).

    ``identitydp anonymize`` (``run``: decode in a read-ahead thread, then the rest) and
    the dataset runner (io/dataset.py) both run exactly decode_input then
    anonymize_decoded, so the same bytes, rel, key, salt and anonymiser give the same
    output bytes in both. rel: the output path relative to the output root ('/'
    separators): with master_key and salt the file's key is
    ``privacy.keys.derive_key(master_key, salt, SHA-256(data), rel)``, else the
    anonymiser draws a fresh key. No-face images keep their pixels (re-encoded in their
    own format and metadata policy). Nothing is read or written here.
    """
    return anonymize_decoded(decode_input(data, max_pixels, metadata), rel, anonymize,
                             master_key, salt)


def _process(job: Job, fut, anonymize: AnonymizeFn, master_key: bytes | None,
             salt: bytes | None) -> FileRecord:
    rec = FileRecord(str(job.input), str(job.output), "failed")
    t0 = time.perf_counter()
    if job.error is not None:
        rec.error = job.error
        return rec
    if fut is None:
        rec.status = "skipped"
        return rec
    decoded, t_decode = fut.result()
    try:
        data, fields = anonymize_decoded(decoded, job.rel, anonymize, master_key, salt)
        if data is not None:
            try:
                write_atomic(job.output, data, never_over=job.input)
            except (OSError, ValueError) as exc:
                msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else _one_line(exc)
                fields.update(status="failed", faces=[], error=f"cannot write {job.output}: {msg}")
        for name, value in fields.items():
            setattr(rec, name, value)
        return rec
    finally:
        rec.seconds = round(t_decode + time.perf_counter() - t0, 4)


def totals(records: Sequence[FileRecord]) -> dict:
    """Counts per status, faces anonymised and total seconds."""
    out = {s: sum(r.status == s for r in records) for s in STATUSES}
    out["files"] = len(records)
    out["faces"] = sum(len(r.faces) for r in records)
    out["seconds"] = round(sum(r.seconds for r in records), 3)
    return out


def summary_line(records: Sequence[FileRecord], out_dir) -> str:
    """One line: what was done, how many failed, where the outputs are."""
    return totals_line(totals(records), out_dir)


def totals_line(t: dict, out_dir) -> str:
    """summary_line from ``totals``' dict (runs that keep counts, not records)."""
    parts = [f"anonymised {t['ok']} image(s) ({t['faces']} face(s))",
             f"{t['no_face']} without a face (passed through)",
             f"{t['skipped']} skipped (output exists; --overwrite redoes them)",
             f"{t['failed']} failed"]
    return ", ".join(parts) + f"; outputs in {out_dir}"


def privacy_statement(epsilon, key_supplied: bool) -> str:
    """What the epsilon of this run covers, and what the key means."""
    keys = ("per-file keys were derived from the supplied --key, this run's salt, each "
            "input's SHA-256 and its relative path (HMAC-SHA256): anyone holding the key and "
            "the salt can recompute the noise, so the guarantee holds only while the key is "
            "secret; a run with another salt draws independent noise"
            if key_supplied else
            "each image drew a fresh key from the operating system's CSPRNG, never stored: "
            "the noise cannot be reproduced")
    return (f"epsilon-IdentityDP with epsilon={epsilon} covers each detected face's identity "
            "vector only: not the generator's attribute path (which can carry identity), not "
            "faces the detector missed (they are left unchanged), not the image's other "
            f"content or kept metadata; {keys}.")


def report(records: Sequence[FileRecord], *, epsilon, key_supplied: bool, out_dir,
           ignored: Sequence[Path] = (), extra: dict | None = None,
           salt: bytes | None = None) -> dict:
    """The JSON report: files, totals, privacy statement, ignored non-image files, and in
    reproducible mode the run's salt (pass it back with --salt to reproduce the run)."""
    return _json_value({
        "format": "identitydp-fast/anonymize-report",
        "format_version": 2,
        "out_dir": str(out_dir),
        "epsilon": epsilon,
        "key_supplied": key_supplied,
        "key_salt": None if salt is None else salt.hex(),
        "privacy": privacy_statement(epsilon, key_supplied),
        **(extra or {}),
        "totals": totals(records),
        "ignored_non_image_files": [str(p) for p in ignored],
        "files": [dataclasses.asdict(r) for r in records],
    })
