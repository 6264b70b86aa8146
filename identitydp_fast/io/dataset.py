"""Anonymise a whole data set on Ray (Ray Data) with the guarantees of
``identitydp anonymize`` (what ``identitydp anonymize-dataset`` runs).

Pipeline::

    driver: plan (io/dataset_plan.py: list INPUT, map outputs, resume, safety checks)
        -> the file LIST (paths, not images) as a Ray Dataset of small Arrow blocks
        -> map_batches(AnonymizeBatch, ActorPoolStrategy(size=workers), CPU or GPU per actor)
           each actor: one Anonymizer (the model loaded once); per file: read the bytes,
           files.anonymize_bytes, write the output atomically, one report row
        -> driver: rows streamed into the report (io/dataset_report.py), totals

Guarantees:

* **Same outputs as the CLI.** Every file goes through ``files.anonymize_bytes``, the
  function ``identitydp anonymize`` runs (decode_input then anonymize_decoded): the same
  input bytes, rel (output path relative to OUT), master key, salt, metadata policy,
  model and anonymiser options give byte-identical outputs on the same backend and
  device (a GPU worker's floating point may differ from a CPU run's). Keys: with a master
  key, ``derive_key(master, salt, SHA-256(bytes), rel)``; the salt is random per run
  unless given, and recorded in the report's header as key_salt. Without a key every
  image draws a fresh CSPRNG key, never stored.
* **Inputs are never written; outputs are atomic** (io/storage.py: temporary file +
  rename locally, one PutObject on an object store), keep relative paths, names and
  formats; OUT may not be INPUT or inside it (dataset_plan.py).
* **Resume:** outputs that exist are skipped (decided on the driver) unless overwrite.
* **Faults.** A bad file (corrupt, unreadable, unsupported, an anonymiser or write
  error, even an unexpected exception) is that file's ``failed`` row; the job goes on.
  A worker killed mid-run (OOM killer, lost node, preemption) is restarted by Ray
  (``max_restarts=-1``) and its unfinished batch re-run (``max_task_retries``, bounded so
  that a file which kills its worker every time fails the job instead of looping):
  every output is complete or absent (a killed local write can leave a hidden
  ``.NAME.XXXX.part`` file, never a partial output). A re-run batch rewrites the files
  its killed attempt had finished: with a key the same bytes; without a key a new draw
  replaces the earlier output, which is a second release of those faces only if someone
  read the first output in between. An OUT or report that cannot be written fails
  before any work with one message (DatasetError).

On a cluster: a local INPUT/OUT path must be the same shared file system on every node
(NFS, Lustre...); object-store locations need the AWS credentials on every node; the
package (and a --model path) must be installed at the same place on every node. The
master key travels to the workers in the actors' constructor arguments (Ray's object
store): enable Ray's TLS on an untrusted network.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import os
import socket
import sys
import time
import warnings
from typing import Callable

from . import dataset_report, files, storage
from .dataset_plan import Plan, plan
from .files import PlanError
from .image_codec import MAX_PIXELS, check_metadata_policy

#: retries of one batch after its worker died (see the module docstring)
MAX_TASK_RETRIES = 3
#: blocks (Ray tasks) of the file list at most: bounds the scheduler's bookkeeping for
#: 10^7 files while a retry redoes at most a few batches
MAX_BLOCKS = 100_000


class DatasetError(ValueError):
    """The run cannot start as asked (a usage error: exit status 2); nothing was written."""


@dataclasses.dataclass
class DatasetResult:
    """What a run did. totals: files.totals' keys; salt: the run's key salt (None without
    a key); epsilon: the budget per face; report / jsonl: the files written (or None);
    ignored: non-image files under INPUT; workers: actors used; interrupted: stopped by
    Ctrl-C; error: why the Ray job stopped early (None when it completed)."""

    totals: dict
    salt: bytes | None
    epsilon: float | None
    report: str | None
    jsonl: str | None
    ignored: int
    workers: int
    interrupted: bool = False
    error: str | None = None


class AnonymizeBatch:
    """``map_batches`` callable: one Anonymizer per actor, one report row per file.

    Constructor (runs once per actor, again after a restart): source / out: the
    storage.Location of the inputs and outputs; anonymizer: keyword arguments of
    ``identitydp_fast.Anonymizer`` (model, epsilon, device, backend, detector, ...), or
    make_anonymizer: a picklable () -> object with ``anonymize(rgb, key=)`` like the
    Anonymizer's; master_key / salt: reproducible mode (both or neither); max_pixels,
    metadata: as for ``identitydp anonymize``; threads: torch CPU threads of this actor.

    ``__call__(batch)``: a pyarrow Table with columns ``src`` (input path on the source's
    store) and ``rel`` -> a dataset_report.SCHEMA table, one row per input row. Never
    raises for a file (module docstring).
    """

    def __init__(self, source: storage.Location, out: storage.Location, anonymizer: dict | None = None,
                 make_anonymizer: Callable[[], object] | None = None, master_key: bytes | None = None,
                 salt: bytes | None = None, max_pixels: int = MAX_PIXELS, metadata: str = "safe",
                 threads: int | None = None):
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        # Pillow warns about damaged metadata in files it can still read: the row says what matters
        warnings.filterwarnings("ignore", module=r"PIL\.")
        if make_anonymizer is None:
            from ..anonymizer import Anonymizer

            self._anon = Anonymizer(**(anonymizer or {}))
        else:
            self._anon = make_anonymizer()
        self.source, self.out = source, out
        self.master_key, self.salt = master_key, salt
        self.max_pixels, self.metadata = max_pixels, check_metadata_policy(metadata)
        self._hard_links_possible = source.local and out.local
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def _anonymize(self, rgb, key):
        return self._anon.anonymize(rgb, key=key)

    def __call__(self, batch):
        cols = batch.to_pydict() if hasattr(batch, "to_pydict") else {k: list(v) for k, v in batch.items()}
        return dataset_report.table([self.one(str(s), str(r)) for s, r in zip(cols["src"], cols["rel"])])

    def one(self, src: str, rel: str) -> dict:
        """The report row of one file (reads, anonymises and writes it)."""
        t0 = time.perf_counter()
        target = self.out.path(rel)
        shown = self.out.display(target)
        try:
            try:
                data = storage.read(self.source, src)
            except OSError as exc:  # missing, permissions, a folder, a store error...
                fields = {"status": "failed",
                          "error": f"cannot read the file: {exc.strerror or files._one_line(exc)}"}
            else:
                out_bytes, fields = files.anonymize_bytes(data, rel, self._anonymize, self.master_key,
                                                          self.salt, self.max_pixels, self.metadata)
                if out_bytes is not None:
                    try:
                        storage.write_atomic(self.out, target, out_bytes,
                                             never_over=src if self._hard_links_possible else None)
                    except (OSError, ValueError) as exc:
                        msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else files._one_line(exc)
                        fields.update(status="failed", faces=[], error=f"cannot write {shown}: {msg}")
        except Exception as exc:  # noqa: BLE001 - a bug on one file must not fail the job
            fields = {"status": "failed",
                      "error": f"internal error ({type(exc).__name__}: {files._one_line(exc)})"}
        return dataset_report.row(self.source.display(src), shown, rel,
                                  seconds=round(time.perf_counter() - t0, 4), worker=self.worker,
                                  worker_peak_rss_mb=_peak_rss_mb(), finished=time.time(), **fields)


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows has no resource module
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(kb / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


def _check_args(key, salt, batch_size, workers, cpus_per_worker, gpus_per_worker, max_pixels,
                metadata, report, report_jsonl) -> tuple[bytes | None, bytes | None]:
    from ..privacy.keys import check_key, check_salt, fresh_salt

    if not isinstance(batch_size, int) or batch_size < 1:
        raise DatasetError(f"--batch-size must be an integer >= 1, got {batch_size!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise DatasetError(f"--workers must be an integer >= 1, got {workers!r}")
    if not cpus_per_worker > 0:
        raise DatasetError(f"--cpus-per-worker must be > 0, got {cpus_per_worker!r}")
    if not gpus_per_worker >= 0:
        raise DatasetError(f"--gpus-per-worker must be >= 0 (0: CPU workers), got {gpus_per_worker!r}")
    if not isinstance(max_pixels, int) or not 1 <= max_pixels <= MAX_PIXELS:
        raise DatasetError(f"max_pixels must be in [1, {MAX_PIXELS}], got {max_pixels!r}")
    try:
        check_metadata_policy(metadata)
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    if report_jsonl and report is None:
        raise DatasetError("--report-jsonl needs --report PATH (the JSONL goes beside it)")
    if key is None:
        if salt is not None:
            raise DatasetError("--salt needs --key (without a key every image draws a fresh key)")
        return None, None
    try:
        return check_key(key, "--key"), (fresh_salt() if salt is None else check_salt(salt, "--salt"))
    except (TypeError, ValueError) as exc:
        raise DatasetError(str(exc)) from None


def _report_paths(report, report_jsonl: bool, p: Plan) -> tuple[str | None, str | None]:
    """(Parquet path, JSONL path), checked writable and not an input or output."""
    if report is None:
        return None, None
    if storage.is_object_uri(str(report)):
        raise DatasetError(f"--report {report}: give a local path (the driver writes the report)")
    path = os.path.abspath(report)
    jsonl = os.path.splitext(path)[0] + ".jsonl" if report_jsonl else None
    if jsonl == path:  # --report x.jsonl: keep the two files apart
        jsonl = path + ".jsonl"
    rels = {r for _, r in p.todo + p.skipped}
    for f in filter(None, (path, jsonl)):
        if os.path.isdir(f):
            raise DatasetError(f"--report {report}: {f} is a folder; give a file name")
        folder = os.path.dirname(f)
        if not os.path.isdir(folder):
            raise DatasetError(f"--report {report}: the folder {folder} does not exist")
        try:
            storage.probe_writable(storage.Location(folder, folder), "--report")
        except storage.StorageError as exc:
            raise DatasetError(str(exc)) from None
        real = os.path.realpath(f)
        for loc in (p.out, p.source):
            if loc.local and _is_under(real, loc.root):
                rel = os.path.relpath(real, os.path.realpath(loc.root)).replace(os.sep, "/")
                if rel in rels:
                    raise DatasetError(f"--report {report} is also the input or output {rel}")
    return path, jsonl


def _is_under(path: str, folder: str) -> bool:
    folder = os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _check_anonymizer(anonymizer: dict, make_anonymizer, gpus_per_worker: float):
    """Build the actors' anonymiser once on the driver (CPU) so a bad option or a missing
    model fails before any work, with the Anonymizer's own message; returns it."""
    try:
        if make_anonymizer is not None:
            return make_anonymizer()
        from ..anonymizer import Anonymizer

        kw = dict(anonymizer, device="cpu")
        if gpus_per_worker:
            kw["backend"] = "auto"  # the GPU backends are checked by the workers that have one
        return Anonymizer(**kw)
    except FileNotFoundError as exc:
        raise DatasetError(f"{exc} (on the command line: --model PATH)") from None
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        raise DatasetError(str(exc)) from None


def _connect(address: str | None) -> bool:
    """Connect to Ray (True when this call started it, so the run shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    if address is None and not os.environ.get("RAY_ADDRESS"):
        # a local Ray on this machine: no dashboard port, and no usage report sent home
        # unless the user asked for one (an anonymiser should not talk to the network)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(include_dashboard=False)
    else:
        ray.init(address=address)           # 'auto': the cluster this node belongs to; ray://: Ray Client
    return True


def _pool_size(workers: int | None, cpus: float, gpus: float, n_blocks: int) -> int:
    import ray

    res = ray.cluster_resources()
    cap = int(res.get("CPU", 0) // cpus + 1e-9)
    if gpus:
        cap = min(cap, int(res.get("GPU", 0) // gpus + 1e-9))
    if cap < 1:
        need = f"{gpus} GPU and {cpus} CPU" if gpus else f"{cpus} CPU"
        raise DatasetError(f"the Ray cluster ({_describe(res)}) cannot hold one worker of {need}; "
                           "lower --gpus-per-worker / --cpus-per-worker or add nodes")
    if workers is not None and workers > cap:
        raise DatasetError(f"--workers {workers} needs more than the Ray cluster has ({_describe(res)}: "
                           f"{cap} worker(s) of {cpus} CPU" + (f", {gpus} GPU" if gpus else "")
                           + " fit); lower --workers or add nodes")
    return max(1, min(workers or cap, n_blocks))


def _describe(res: dict) -> str:
    return f"{res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU"


def _fault_args(map_batches) -> dict:
    """max_restarts / max_task_retries for the actors (module docstring). Ray 2.60 takes
    them as ``**ray_remote_args`` (deprecated there, kept until 2.64); where that is gone,
    Ray Data's defaults (both unbounded) apply."""
    params = inspect.signature(map_batches).parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return {}
    return {"max_restarts": -1, "max_task_retries": MAX_TASK_RETRIES}


def _blocks(todo: list[tuple[str, str]], batch_size: int) -> list:
    """The file list as Arrow tables of whole batches: one Ray task each (a retry redoes
    one block), at most MAX_BLOCKS of them."""
    import pyarrow as pa

    rows = batch_size * max(1, math.ceil(len(todo) / (MAX_BLOCKS * batch_size)))
    # one table per block, not slices of one: a pickled slice can carry its parent's buffers
    return [pa.table({"src": [s for s, _ in chunk], "rel": [r for _, r in chunk]})
            for chunk in (todo[i:i + rows] for i in range(0, len(todo), rows))]


def anonymize_dataset(input: str, out: str, *, address: str | None = None, workers: int | None = None,
                      cpus_per_worker: float = 1, gpus_per_worker: float = 0, batch_size: int = 16,
                      epsilon: float | None = None, key=None, salt=None, model=None,
                      metadata: str = "safe", overwrite: bool = False, report=None,
                      report_jsonl: bool = False, s3_endpoint: str | None = None,
                      max_pixels: int = MAX_PIXELS, anonymizer_options: dict | None = None,
                      make_anonymizer: Callable[[], object] | None = None,
                      on_failure: Callable[[dict], None] | None = None,
                      progress: bool = True) -> DatasetResult:
    """Anonymise every image of INPUT into OUT on Ray (module docstring for the guarantees).

    input / out: a local folder or ``s3://bucket/prefix``; input may also be a list file
    of paths or URIs (io/dataset_plan.py). address: None (Ray already initialised in this
    process, $RAY_ADDRESS, or a new local Ray), 'auto' or 'ray://HOST:PORT'. workers:
    actors (default: as many as the cluster's CPUs / GPUs hold); cpus_per_worker /
    gpus_per_worker: each actor's resources (gpus > 0: device 'cuda', fractions share a
    GPU); batch_size: files per call of an actor. epsilon, model, anonymizer_options
    (backend, detector, min_score, upsample, ...): the Anonymizer's (its device is 'cuda'
    with gpus_per_worker, else 'cpu'). key / salt: as
    ``identitydp anonymize --key/--salt`` (32-byte key or 64 hex; 16-byte salt or 32 hex;
    salt default random). metadata: 'safe', 'keep' or 'none'. report: a local .parquet
    path (report_jsonl: also PATH-with-.jsonl). on_failure(row): called on the driver for
    each failed row as it arrives. progress: Ray Data's progress bars.

    Raises DatasetError (or files.PlanError / storage.StorageError, both ValueErrors)
    before any work when the run cannot start; otherwise returns a DatasetResult (a
    failed Ray job is ``error``, the report then covers the rows that came back).
    """
    master, run_salt = _check_args(key, salt, batch_size, workers, cpus_per_worker, gpus_per_worker,
                                   max_pixels, metadata, report, report_jsonl)
    p = plan(input, out, overwrite=overwrite, s3_endpoint=s3_endpoint)  # probes OUT
    report_path, jsonl_path = _report_paths(report, report_jsonl, p)
    anon_kw = dict(anonymizer_options or {}, model=None if model is None else _model_arg(model))
    if epsilon is not None:
        anon_kw["epsilon"] = epsilon
    # the device follows the actors' resources; Ray sets CUDA_VISIBLE_DEVICES, so cuda:0
    # is the actor's own GPU
    anon_kw["device"] = "cuda" if gpus_per_worker else "cpu"
    checked = _check_anonymizer(anon_kw, make_anonymizer, gpus_per_worker)
    eps = getattr(checked, "epsilon", epsilon)
    del checked

    writer = dataset_report.Writer(report_path, jsonl_path)
    planned = [dataset_report.row(p.source.display(s), p.out.display(p.out.path(r)), r, "skipped")
               for s, r in p.skipped]
    planned += [dataset_report.row(p.source.display(s), p.out.display(p.out.path(r)), r, "failed", err)
                for s, r, err in p.failed]
    interrupted, error, n_workers, started = False, None, 0, False
    try:
        writer.write(dataset_report.table(planned))
        if on_failure is not None:
            for r in planned[len(p.skipped):]:
                on_failure(r)
        if p.todo:
            started = _connect(address)
            import ray

            blocks = _blocks(p.todo, batch_size)
            n_workers = _pool_size(workers, cpus_per_worker, gpus_per_worker, len(blocks))
            ctx = ray.data.DataContext.get_current()
            bars, ctx.enable_progress_bars = ctx.enable_progress_bars, progress
            ds = ray.data.from_arrow(blocks)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # Ray's RayDeprecationWarning
                ds = ds.map_batches(
                    AnonymizeBatch, batch_size=batch_size, batch_format="pyarrow",
                    compute=ray.data.ActorPoolStrategy(size=n_workers),
                    num_cpus=cpus_per_worker, num_gpus=gpus_per_worker or None,
                    fn_constructor_kwargs={
                        "source": p.source, "out": p.out, "anonymizer": anon_kw,
                        "make_anonymizer": make_anonymizer, "master_key": master, "salt": run_salt,
                        "max_pixels": max_pixels, "metadata": metadata,
                        "threads": None if gpus_per_worker else max(1, int(cpus_per_worker))},
                    **_fault_args(ds.map_batches))
            try:
                for tbl in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                    writer.write(tbl)
                    if on_failure is not None and "failed" in tbl.column("status").to_pylist():
                        for r in tbl.to_pylist():
                            if r["status"] == "failed":
                                on_failure(r)
            except KeyboardInterrupt:
                interrupted = True
            except Exception as exc:  # noqa: BLE001 - the report still covers what came back
                error = f"the Ray job stopped: {type(exc).__name__}: {files._one_line(exc)}"
            finally:
                ctx.enable_progress_bars = bars  # the caller's Ray Data setting, as it was
    except BaseException:
        writer.close(None)
        raise
    finally:
        if started:
            import ray

            ray.shutdown()
    totals = writer.totals.as_dict()
    writer.close(dataset_report.header(
        input=input, out=out, epsilon=eps, master_key_supplied=master is not None, salt=run_salt,
        totals=totals, ignored=p.ignored,
        extra={"model": model or "packaged default", "metadata": metadata, "workers": n_workers,
               "cpus_per_worker": cpus_per_worker, "gpus_per_worker": gpus_per_worker,
               "batch_size": batch_size, "address": address, "interrupted": interrupted,
               "error": error}))
    return DatasetResult(totals, run_salt, eps, report_path, jsonl_path, p.ignored, n_workers,
                         interrupted, error)


def _model_arg(model):
    """A --model path made absolute (the workers' working folder differs); a packaged
    model's name stays a name."""
    if isinstance(model, (str, os.PathLike)) and os.path.exists(model):
        return os.path.abspath(model)
    return model


__all__ = ["anonymize_dataset", "AnonymizeBatch", "DatasetError", "DatasetResult", "PlanError"]
