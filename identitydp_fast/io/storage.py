"""Where a dataset run's files live: a local folder or an object-store prefix
(``s3://bucket/prefix``, AWS S3 or any S3-compatible store through ``pyarrow.fs``), behind
the few operations io/dataset.py needs: list, read, write atomically, probe.

Guarantees:

* **Atomic outputs.** Local: :func:`identitydp_fast.io.files.write_atomic` (a temporary
  ``.NAME.XXXX.part`` in the target's folder, fsync, ``os.replace``): the path holds
  nothing, the old file or the complete new one. Object store: the output is encoded in
  memory first and handed to pyarrow in one write; with ``allow_delayed_open`` pyarrow
  sends an object below its part size (10 MiB) as ONE PutObject on close, and a larger
  one as a multipart upload completed on close. S3 (and the S3-compatible stores) make
  an object visible only when its PutObject or CompleteMultipartUpload succeeds, so a
  reader never sees a partial object, and a writer killed mid-upload leaves no object
  (at most an unfinished multipart upload: invisible, billed until the bucket's
  AbortIncompleteMultipartUpload lifecycle rule removes it). A temporary key + copy +
  delete would be four requests per file instead of one and would leave visible
  temporary objects behind a killed worker, for no gain in atomicity.
* **Same selection as** ``identitydp anonymize --recursive``: files with an image
  extension Pillow reads, no hidden name ('.' first) at any depth, sorted. Local folders
  use io/files.py's own scan (symlinks to folders not followed; entries that cannot be
  stat'ed are reported, not fatal).
* Reading never writes; nothing here deletes a user's file (the write probe deletes only
  the probe object it just created; on an object store pyarrow then keeps an emptied
  prefix as a zero-byte "folder" marker ``prefix/``, as the S3 console's folders are).
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from . import files

#: URI schemes served by an object store (pyarrow.fs.S3FileSystem)
OBJECT_SCHEMES = ("s3",)


class StorageError(ValueError):
    """A location that cannot be used as asked (bad URI, missing bucket, not writable);
    the message names the location and the fix."""


@dataclasses.dataclass(frozen=True)
class Location:
    """A folder or an object-store prefix.

    uri: as the user wrote it (messages); root: local: the absolute folder path; object
    store: 'bucket/prefix' without a trailing '/'; fs: the pyarrow FileSystem of an object
    store (picklable: it travels to the Ray workers), None for the local file system.
    """

    uri: str
    root: str
    fs: object | None = None

    @property
    def local(self) -> bool:
        return self.fs is None

    def path(self, rel: str) -> str:
        """The path of ``rel`` ('/' separators) under the root."""
        return os.path.join(self.root, *rel.split("/")) if self.local else f"{self.root}/{rel}"

    def display(self, path: str) -> str:
        """A path of this location as the user writes it (s3://bucket/key or a local path)."""
        return path if self.local else f"s3://{path}"


def is_object_uri(uri: str) -> bool:
    return urlparse(str(uri)).scheme.lower() in OBJECT_SCHEMES


def s3_filesystem(endpoint: str | None = None):
    """A pyarrow S3FileSystem: credentials from the usual AWS variables/files on each
    node; ``endpoint`` ('http://host:port' or 'host:port', https by default) for an
    S3-compatible store (MinIO, Ceph, moto); region from $AWS_REGION /
    $AWS_DEFAULT_REGION (default us-east-1)."""
    from pyarrow import fs

    kw = {"allow_delayed_open": True}  # one PutObject per small file: see the module docstring
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if endpoint:
        u = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        if u.scheme not in ("http", "https") or not u.netloc:
            raise StorageError(f"--s3-endpoint {endpoint!r}: expected http(s)://HOST:PORT")
        kw.update(endpoint_override=u.netloc, scheme=u.scheme, region=region or "us-east-1")
    elif region:
        kw["region"] = region
    return fs.S3FileSystem(**kw)


def parse(uri: str | os.PathLike, s3_endpoint: str | None = None) -> Location:
    """A Location from a local path or ``s3://bucket[/prefix]`` (nothing is checked on
    the store here)."""
    text = os.fspath(uri)
    u = urlparse(text)
    if u.scheme and len(u.scheme) > 1:        # 'C:' is a drive, not a scheme
        if u.scheme.lower() not in OBJECT_SCHEMES:
            raise StorageError(f"{text}: unsupported URI scheme {u.scheme!r} (local paths and "
                               "s3://bucket/prefix are supported)")
        if not u.netloc:
            raise StorageError(f"{text}: no bucket name (expected s3://bucket/prefix)")
        root = posixpath.normpath(f"{u.netloc}/{u.path.lstrip('/')}").rstrip("/")
        return Location(text, root, s3_filesystem(s3_endpoint))
    return Location(text, os.path.abspath(text))


def kind(loc: Location, path: str | None = None) -> str:
    """'dir', 'file' or 'missing' for ``path`` (default: the root)."""
    path = loc.root if path is None else path
    if loc.local:
        return "dir" if os.path.isdir(path) else "file" if os.path.exists(path) else "missing"
    from pyarrow import fs

    try:
        t = loc.fs.get_file_info(path).type
    except OSError as exc:
        raise StorageError(f"{loc.display(path)}: {_one_line(exc)}") from None
    return {fs.FileType.Directory: "dir", fs.FileType.File: "file"}.get(t, "missing")


def read(loc: Location, path: str) -> bytes:
    """The bytes at ``path`` (OSError when it cannot be read)."""
    if loc.local:
        return files.read_input(path)
    with loc.fs.open_input_stream(path) as fh:
        return fh.readall()


def write_atomic(loc: Location, path: str, data: bytes, never_over: str | None = None) -> None:
    """Write ``data`` at ``path``, atomically (module docstring); local: refuses
    (ValueError) when ``path`` is the file ``never_over`` (a hard link to an input)."""
    if loc.local:
        files.write_atomic(Path(path), data, never_over=None if never_over is None else Path(never_over))
        return
    # data is complete before the stream opens and goes in one write: the object is
    # published by close() only (a raise before it publishes nothing)
    stream = loc.fs.open_output_stream(path)
    stream.write(data)
    stream.close()


def list_images(loc: Location) -> tuple[list[str], int, list[tuple[str, str]]]:
    """(sorted rel paths of the images under the root, number of other files, [(rel,
    reason)] of entries that could not be read) (module docstring)."""
    exts = files.image_extensions()
    if loc.local:
        unreadable: list = []
        images, others = files._folder_files(Path(loc.root), True, exts, unreadable)
        rel = lambda p: Path(p).relative_to(loc.root).as_posix()  # noqa: E731
        return [rel(p) for p in images], len(others), [(rel(p), why) for p, why in unreadable]
    images, others = [], 0
    for rel in _object_keys(loc):
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        if posixpath.splitext(rel)[1].lower() in exts:
            images.append(rel)
        else:
            others += 1
    return sorted(images), others, []


def existing(loc: Location) -> set[str]:
    """Rel paths of every file under the root (outputs already written: resume), hidden
    ones included; empty when the root does not exist."""
    if loc.local:
        if not os.path.isdir(loc.root):
            return set()
        found = set()
        for folder, _dirs, names in os.walk(loc.root):
            rel_dir = Path(folder).relative_to(loc.root).as_posix()
            found.update(n if rel_dir == "." else f"{rel_dir}/{n}" for n in names)
        return found
    return set(_object_keys(loc))


def _object_keys(loc: Location) -> list[str]:
    from pyarrow import fs

    try:
        infos = loc.fs.get_file_info(fs.FileSelector(loc.root, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise StorageError(f"{loc.uri}: cannot list: {_one_line(exc)}") from None
    n = len(loc.root) + 1
    return [i.path[n:] for i in infos if i.type == fs.FileType.File]


def probe_writable(loc: Location, what: str) -> None:
    """Raise StorageError (one line naming ``what``) unless a new file can be written under
    the root: local, in its nearest existing folder (a temporary file, which also catches
    read-only file systems); object store, a probe object written and deleted."""
    if loc.local:
        p = Path(loc.root)
        while not p.exists() and p != p.parent:
            p = p.parent
        if not p.is_dir():
            raise StorageError(f"{what} {loc.uri}: {p} is not a folder")
        try:
            with tempfile.TemporaryFile(dir=p):
                pass
        except OSError as exc:
            raise StorageError(f"{what} {loc.uri}: cannot write in {p}: {exc.strerror or exc}") from None
        return
    probe = f"{loc.root}/.identitydp-write-probe-{secrets.token_hex(8)}"
    try:
        write_atomic(loc, probe, b"")
    except OSError as exc:
        raise StorageError(f"{what} {loc.uri}: cannot write there: {_one_line(exc)}") from None
    try:
        loc.fs.delete_file(probe)
    except OSError:
        pass  # written but not deletable: the run can still write; the empty probe stays hidden


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
