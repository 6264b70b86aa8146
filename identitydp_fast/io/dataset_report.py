"""The report of a dataset run (io/dataset.py): one row per file in Parquet (and JSONL on
request), the run's header (privacy statement, epsilon, key salt, totals) in the Parquet
file's key-value metadata and as the JSONL file's last line.

Rows have a fixed Arrow schema (``SCHEMA``): every Ray block, the driver's skipped rows
and the file on disk agree, whatever the mix of statuses in a block (an inferred schema
would make a block without faces disagree with one with faces). ``faces`` holds one struct
per anonymised face with the FaceResult fields (pipeline/release.py); NaN is null.

Writes are atomic (a temporary file in the report's folder, renamed at the end): a report
path holds nothing, an older report or a complete one. The rows are streamed to disk as
they arrive, so the driver's memory does not grow with the data set.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from . import files

FORMAT = "identitydp-fast/dataset-report"
FORMAT_VERSION = 1
#: the Parquet key-value metadata key that holds the header JSON
META_KEY = b"identitydp.report"


def _schema():
    import pyarrow as pa

    face = pa.struct([("box", pa.list_(pa.int64())), ("landmarks", pa.list_(pa.list_(pa.float64()))),
                      ("score", pa.float64()), ("epsilon", pa.float64()),
                      ("effective_epsilon", pa.float64()), ("delta", pa.float64()),
                      ("key_supplied", pa.bool_()), ("key_id", pa.string())])
    return pa.schema([("input", pa.string()), ("output", pa.string()), ("rel", pa.string()),
                      ("status", pa.string()), ("faces", pa.list_(face)), ("error", pa.string()),
                      ("seconds", pa.float64()), ("notes", pa.list_(pa.string())),
                      ("sha256", pa.string()), ("worker", pa.string()),
                      ("worker_peak_rss_mb", pa.float64()), ("finished", pa.float64())])


#: the columns: FileRecord's (io/files.py) plus rel; worker ('host:pid') and its peak RSS
#: after the file; finished: when the worker was done with it (Unix seconds; null for rows
#: decided on the driver), for progress, stragglers and steady-state throughput
SCHEMA_FIELDS = ("input", "output", "rel", "status", "faces", "error", "seconds", "notes",
                 "sha256", "worker", "worker_peak_rss_mb", "finished")


def table(rows: list[dict]):
    """A pyarrow Table of report rows in the fixed schema (keys outside it are dropped)."""
    import pyarrow as pa

    schema = _schema()
    face_fields = [f.name for f in schema.field("faces").type.value_type]
    clean = [{k: row.get(k) for k in SCHEMA_FIELDS} for row in rows]
    for row in clean:
        row["faces"] = [{k: f.get(k) for k in face_fields} for f in (row["faces"] or [])]
        row["notes"] = list(row["notes"] or [])
    return pa.Table.from_pylist(clean, schema=schema)


def row(input: str, output: str, rel: str, status: str, error: str | None = None, **fields) -> dict:
    """One report row (SCHEMA_FIELDS)."""
    out = {"input": input, "output": output, "rel": rel, "status": status, "error": error,
           "faces": [], "notes": [], "seconds": 0.0, "sha256": "", "worker": "",
           "worker_peak_rss_mb": None, "finished": None}
    out.update(fields)
    return out


class Totals:
    """Counts per status, faces and seconds, added up block by block (files.totals' keys)."""

    def __init__(self):
        self.counts = {s: 0 for s in files.STATUSES}
        self.faces = 0
        self.seconds = 0.0

    def add(self, tbl) -> None:
        import pyarrow.compute as pc

        for status, n in zip(*_value_counts(tbl.column("status"))):
            self.counts[status] = self.counts.get(status, 0) + n
        self.faces += int(pc.sum(pc.list_value_length(tbl.column("faces"))).as_py() or 0)
        self.seconds += float(pc.sum(tbl.column("seconds")).as_py() or 0.0)

    def as_dict(self) -> dict:
        return {**self.counts, "files": sum(self.counts.values()), "faces": self.faces,
                "seconds": round(self.seconds, 3)}


def _value_counts(col):
    import pyarrow.compute as pc

    vc = pc.value_counts(col)
    return vc.field("values").to_pylist(), vc.field("counts").to_pylist()


class Writer:
    """Streams report rows to ``path`` (Parquet) and, with ``jsonl``, to ``jsonl`` (one
    JSON object per line); ``close(header)`` adds the header and publishes both files
    atomically. Without a path it only keeps the totals."""

    def __init__(self, path: str | os.PathLike | None, jsonl: str | os.PathLike | None = None):
        self.totals = Totals()
        self._parts: list[tuple[Path, str]] = []   # (final path, temporary path)
        self._pq = self._jsonl = None
        if path is not None:
            import pyarrow.parquet as pq

            self._pq = pq.ParquetWriter(self._temp(Path(path)), _schema())
        if jsonl is not None:
            self._jsonl = open(self._temp(Path(jsonl)), "w", encoding="utf-8")

    def _temp(self, final: Path) -> str:
        fd, tmp = tempfile.mkstemp(dir=final.resolve().parent, prefix=f".{final.name}.", suffix=".part")
        os.close(fd)
        self._parts.append((final, tmp))
        return tmp

    def write(self, tbl) -> None:
        if tbl.num_rows == 0:
            return
        tbl = tbl.select(list(SCHEMA_FIELDS)).cast(_schema())
        self.totals.add(tbl)
        if self._pq is not None:
            self._pq.write_table(tbl)
        if self._jsonl is not None:
            for r in tbl.to_pylist():
                self._jsonl.write(json.dumps(files._json_value(r)) + "\n")

    def close(self, header: dict | None) -> None:
        """Finish and publish (header None: abandon, removing the temporary files)."""
        try:
            if header is not None:
                text = json.dumps(files._json_value(header), indent=None)
                if self._pq is not None:
                    self._pq.add_key_value_metadata({META_KEY: text.encode("utf-8")})
                if self._jsonl is not None:
                    self._jsonl.write(text + "\n")
        finally:
            if self._pq is not None:
                self._pq.close()
            if self._jsonl is not None:
                self._jsonl.close()
        for final, tmp in self._parts:
            if header is None:
                os.unlink(tmp)
            else:
                os.chmod(tmp, files._file_mode())
                os.replace(tmp, final)


def read(path: str | os.PathLike) -> tuple[dict, "object"]:
    """(header dict, pyarrow Table of rows) of a Parquet report."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    meta = f.metadata.metadata or {}
    header = json.loads(meta[META_KEY]) if META_KEY in meta else {}
    return header, f.read()


def header(*, input: str, out: str, epsilon, master_key_supplied: bool, salt: bytes | None,
           totals: dict, ignored: int, extra: dict | None = None) -> dict:
    """The run's header: what the report covers and what epsilon guarantees."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "input": input, "out": out,
            "epsilon": epsilon, "key_supplied": master_key_supplied,
            "key_salt": None if salt is None else salt.hex(),
            "privacy": files.privacy_statement(epsilon, master_key_supplied),
            **(extra or {}), "totals": totals, "ignored_non_image_files": ignored}

