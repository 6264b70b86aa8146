"""Which files a dataset run (io/dataset.py) reads and where each result goes, decided on
the driver before any image is read.

INPUT is one of:

* a folder (local) or an object-store prefix (``s3://bucket/prefix``): every image under
  it, at any depth (the selection of ``identitydp anonymize --recursive``,
  io/storage.py); an output keeps the input's path relative to INPUT;
* a list file (local or an object), one path or URI per line; blank lines and lines
  starting with '#' are skipped; relative paths are relative to the list's own folder
  (prefix); all lines on one store (all local, or all ``s3://``). Outputs keep each file's
  path relative to the deepest folder holding every listed file (one folder: just the
  names, as ``identitydp anonymize FILE... --out DIR`` writes them). Listed files are
  always attempted (no extension filter, as explicit files in the CLI); a missing one is
  that file's failed row.

Guarantees (PlanError, before anything is read or written, otherwise):

* inputs are never written: OUT is not INPUT nor inside it (a later run would read the
  outputs as inputs), and no output path is an input path (local paths compared after
  resolving links); each local write re-checks that its target is not its input (hard
  links, io/files.write_atomic);
* no two inputs share an output (a list naming one file twice is refused);
* OUT can be written: probed (a temporary file or object, removed at once) after the
  checks above and before anything is listed there or read;
* resume: an output that exists is a finished one (atomic writes), so it is ``skipped``
  here unless ``overwrite``; the workers then write every planned file. Deciding it here,
  not in the worker, keeps a retried batch (a worker killed mid-run, re-run by Ray)
  reporting the file as done, not as skipped by its own earlier attempt.
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
from urllib.parse import urlparse

from . import files, storage
from .files import PlanError


@dataclasses.dataclass
class Plan:
    """source: where the inputs are read (a list: the folder holding every listed file);
    out: where outputs go; todo: (input path on source's store, rel) to anonymise;
    skipped: the same for outputs that already exist; failed: (input path, rel, error)
    found while planning; ignored: non-image files under a folder or prefix."""

    source: storage.Location
    out: storage.Location
    todo: list[tuple[str, str]]
    skipped: list[tuple[str, str]]
    failed: list[tuple[str, str, str]]
    ignored: int


def plan(input: str, out: str, *, overwrite: bool = False, s3_endpoint: str | None = None) -> Plan:
    """The Plan of a run (module docstring); raises PlanError or storage.StorageError."""
    src = storage.parse(input, s3_endpoint)
    dst = storage.parse(out, s3_endpoint)
    what = storage.kind(src)
    if what == "missing":
        raise PlanError(f"INPUT {input}: no such folder, prefix or list file")
    if storage.kind(dst) == "file":
        raise PlanError(f"--out {out} exists and is not a folder")
    failed: list[tuple[str, str, str]] = []
    if what == "dir":
        _refuse_nested(src, dst, input, out)
        rels, ignored, unreadable = storage.list_images(src)
        entries = [(src.path(r), r) for r in rels]
        failed = [(src.path(r), r, f"cannot read it: {why}") for r, why in unreadable]
    else:
        if posixpath.splitext(src.root)[1].lower() in files.image_extensions():
            raise PlanError(f"INPUT {input} is an image: give its folder, a list file of paths, "
                            "or use `identitydp anonymize` for single files")
        src, entries = _read_list(src, input, s3_endpoint)
        ignored = 0  # outputs beside listed inputs: the per-file check below
    _refuse_overwriting_inputs(src, dst, entries, out)
    storage.probe_writable(dst, "--out")   # one clear message now, not one per file later
    done = set() if overwrite else storage.existing(dst)
    todo = [(p, r) for p, r in entries if r not in done]
    skipped = [(p, r) for p, r in entries if r in done]
    return Plan(src, dst, todo, skipped, failed, ignored)


def _is_within(child: storage.Location, parent: storage.Location) -> bool:
    if child.local != parent.local:
        return False
    c, p = ((os.path.realpath(child.root), os.path.realpath(parent.root)) if child.local
            else (child.root, parent.root))
    sep = os.sep if child.local else "/"
    return c == p or c.startswith(p.rstrip(sep) + sep)


def _refuse_nested(src: storage.Location, dst: storage.Location, input: str, out: str) -> None:
    if _is_within(dst, src):
        same = (os.path.realpath(dst.root) == os.path.realpath(src.root) if dst.local
                else dst.root == src.root)
        raise PlanError(f"--out {out} " + ("is the input " if same else "lies inside the input ")
                        + f"{input}: outputs would replace inputs or be read as inputs by a later "
                          "run; choose a location outside it")


def _refuse_overwriting_inputs(src, dst, entries, out: str) -> None:
    if src.local != dst.local:
        return  # different stores: an output cannot be an input
    norm = os.path.realpath if src.local else (lambda p: p)
    inputs = {norm(p) for p, _ in entries}
    for p, rel in entries:
        if norm(dst.path(rel)) in inputs:
            raise PlanError(f"output {dst.display(dst.path(rel))} would overwrite an input; "
                            f"choose an --out {out} that holds no input")


def _read_list(lst: storage.Location, input: str, s3_endpoint: str | None):
    """(the Location that holds every listed file, [(path, rel)])."""
    try:
        text = storage.read(lst, lst.root).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"INPUT {input}: cannot read it as a list file of paths: {exc}") from None
    base = os.path.dirname(lst.root) if lst.local else posixpath.dirname(lst.root)
    paths, kinds, seen = [], set(), {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if storage.is_object_uri(line):
            u = urlparse(line)
            path, kind = posixpath.normpath(f"{u.netloc}/{u.path.lstrip('/')}"), "object"
        elif "://" in line:
            raise PlanError(f"INPUT {input} line {lineno}: unsupported URI {line!r}")
        elif lst.local:
            path, kind = os.path.normpath(os.path.join(base, line)), "local"
        else:
            path, kind = posixpath.normpath(f"{base}/{line}"), "object"  # relative to the prefix
        kinds.add(kind)
        if len(kinds) > 1:
            raise PlanError(f"INPUT {input} line {lineno}: mixes local paths and s3:// URIs; "
                            "list files of one store per run")
        if path in seen:
            raise PlanError(f"INPUT {input} lists {line!r} twice (lines {seen[path]} and {lineno}): "
                            "two outputs would share one path")
        seen[path] = lineno
        paths.append(path)
    if not paths:
        raise PlanError(f"INPUT {input}: the list file names no file")
    local = kinds == {"local"}
    mod = os.path if local else posixpath
    common = mod.commonpath([mod.dirname(p) for p in paths])
    source = (storage.Location(common, common) if local
              else storage.Location(f"s3://{common}", common, lst.fs if not lst.local
                                    else storage.s3_filesystem(s3_endpoint)))
    entries = []
    for p in paths:
        rel = mod.relpath(p, common) if common else p
        entries.append((p, rel.replace(os.sep, "/") if local else rel))
    return source, entries
