"""``identitydp anonymize-dataset`` (identitydp_fast/io/dataset.py, dataset_plan.py,
dataset_report.py, storage.py) on a local Ray (2 CPUs, loopback) and a moto S3 server
(loopback): the same outputs as ``identitydp anonymize`` for the same --key and --salt,
from a folder, an object-store prefix and a list file; resume and --overwrite; a corrupt
file is a failed row; a worker killed mid-run is restarted and every output is complete;
an unwritable OUT fails before any work with one message.

Outputs depend on torch's CPU thread count (parallel reductions round differently), so
the reference CLI run uses one thread, as each one-CPU worker does.
"""
from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("ray") is None or importlib.util.find_spec("pyarrow") is None:
    pytest.skip("ray[data] and pyarrow are not installed (pip install 'identitydp-fast[ray]')",
                allow_module_level=True)
Image = pytest.importorskip("PIL.Image")
pytest.importorskip("dlib")

from identitydp_fast.cli import main  # noqa: E402

# Ray Data's own DataContext warns about its deprecated settings whenever it is copied
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"
KEY, SALT = "5a" * 32, "c3" * 16
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
# a local Ray that binds to 127.0.0.1 only (Ray's single-machine mode) and reports nothing
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def ray_local():
    saved = {k: os.environ.get(k) for k in {**FAKE_AWS, **RAY_ENV}}
    os.environ.update({**FAKE_AWS, **RAY_ENV})  # before ray is imported: it reads them then
    import ray

    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": FAKE_AWS},
             logging_level="warning")
    # Ray Data binds its log handler to sys.stderr on first use: do that now, not under a
    # test's capsys (whose stream is closed after that test)
    ray.data.range(1).take_all()
    yield ray
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def s3(ray_local):
    """(boto3 client, endpoint URL) of a moto S3 server on loopback with bucket 'photos'."""
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    client.create_bucket(Bucket="photos")
    yield client, url
    server.stop()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A face PNG, a face JPEG in a sub-folder, a no-face PNG two levels down, a corrupt
    JPEG, and a non-image file (ignored)."""
    src = tmp_path_factory.mktemp("photos")
    (src / "sub" / "deeper").mkdir(parents=True)
    face = Image.open(ASTRONAUT).convert("RGB").resize((200, 200), Image.LANCZOS)
    face.save(src / "face.png")
    face.save(src / "sub" / "face.jpg", quality=92)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(src / "sub" / "deeper" / "noface.png")
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (src / "notes.txt").write_text("not an image")
    return src


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def expected(photos, tiny_model_path, tmp_path_factory) -> dict:
    """rel -> bytes written by ``identitydp anonymize -r --key --salt`` (one torch thread)."""
    import torch

    out = tmp_path_factory.mktemp("cli") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(["anonymize", str(photos), "-r", "--out", str(out), "--key", KEY, "--salt", SALT,
                     "--model", tiny_model_path, "--quiet"])
    finally:
        torch.set_num_threads(threads)
    assert code == 1  # corrupt.jpg
    snap = _snapshot(out)
    assert sorted(snap) == ["face.png", "sub/deeper/noface.png", "sub/face.jpg"]
    return snap


def _pixels(data: bytes) -> np.ndarray:
    import io

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im).copy()


def _run(photos_or_uri, out, model, **kw):
    from identitydp_fast.io.dataset import anonymize_dataset

    kw.setdefault("workers", 1)
    return anonymize_dataset(str(photos_or_uri), str(out), key=KEY, salt=SALT, model=model,
                             batch_size=2, progress=False, **kw)


def test_folder_gives_the_cli_outputs_and_a_report(ray_local, photos, expected, tiny_model_path,
                                                   tmp_path, capsys):
    from identitydp_fast.io import dataset_report

    before = _snapshot(photos)
    out, report = tmp_path / "out", tmp_path / "report.parquet"
    code = main(["anonymize-dataset", str(photos), "--out", str(out), "--key", KEY, "--salt", SALT,
                 "--model", tiny_model_path, "--workers", "2", "--batch-size", "2",
                 "--report", str(report), "--report-jsonl", "--quiet"])
    printed = capsys.readouterr()
    assert code == 1, printed.err                      # the corrupt file failed, the rest completed
    assert _snapshot(photos) == before                 # inputs untouched
    got = _snapshot(out)
    assert got == expected                             # byte-identical, JPEG and PNG alike
    assert np.array_equal(_pixels(got["sub/face.jpg"]), _pixels(expected["sub/face.jpg"]))
    assert f"identitydp: {photos / 'corrupt.jpg'}: error: corrupt image data" in printed.err
    assert ("anonymised 2 image(s) (2 face(s)), 1 without a face (passed through), 0 skipped "
            "(output exists; --overwrite redoes them), 1 failed") in printed.out
    assert "ignored 1 non-image file(s)" in printed.out and f"key salt {SALT}" in printed.out

    header, table = dataset_report.read(report)
    rows = {r["rel"]: r for r in table.to_pylist()}
    assert {k: r["status"] for k, r in rows.items()} == {
        "face.png": "ok", "sub/face.jpg": "ok", "sub/deeper/noface.png": "no_face", "corrupt.jpg": "failed"}
    assert rows["corrupt.jpg"]["error"].startswith("corrupt image data") and not rows["corrupt.jpg"]["faces"]
    face = rows["face.png"]["faces"][0]
    assert face["epsilon"] > 0 and face["effective_epsilon"] >= face["epsilon"] and face["key_id"]
    assert face["key_supplied"] is True and face["delta"] is not None
    assert rows["face.png"]["sha256"] == __import__("hashlib").sha256(before["face.png"]).hexdigest()
    assert header["key_salt"] == SALT and header["key_supplied"] is True
    assert header["privacy"].startswith("epsilon-IdentityDP with epsilon=")
    assert header["totals"] == {**header["totals"], "ok": 2, "no_face": 1, "failed": 1, "skipped": 0,
                                "files": 4, "faces": 2}
    lines = (tmp_path / "report.jsonl").read_text().splitlines()
    assert len(lines) == 5 and '"format": "identitydp-fast/dataset-report"' in lines[-1]


def test_s3_prefix_in_and_out_gives_the_same_outputs(ray_local, s3, photos, expected, tiny_model_path):
    client, url = s3
    for p in sorted(photos.rglob("*")):
        if p.is_file():
            client.put_object(Bucket="photos", Key=f"in/{p.relative_to(photos).as_posix()}", Body=p.read_bytes())
    res = _run("s3://photos/in", "s3://photos/out", tiny_model_path, s3_endpoint=url)
    assert res.totals["ok"] == 2 and res.totals["failed"] == 1 and res.ignored == 1
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="photos", Prefix="out/")["Contents"]]
    # pyarrow keeps an emptied prefix as a "folder" marker (out/) after the write probe
    assert set(keys) - {"out/"} == {f"out/{rel}" for rel in expected}   # no probe object left
    got = {rel: client.get_object(Bucket="photos", Key=f"out/{rel}")["Body"].read() for rel in expected}
    assert got == expected
    inputs = client.list_objects_v2(Bucket="photos", Prefix="in/")["Contents"]
    assert len(inputs) == 5                # inputs untouched


def test_resume_skips_and_overwrite_redoes_from_a_list_file(ray_local, photos, expected,
                                                            tiny_model_path, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for rel, data in expected.items():     # a finished earlier run
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    stamp = {rel: (out / rel).stat().st_mtime_ns for rel in expected}
    listing = tmp_path / "files.txt"       # relative lines: relative to the list's folder
    listing.write_text("# the three images\n\n"
                       + "\n".join(os.path.relpath(photos / r, tmp_path) for r in sorted(expected)))
    res = _run(listing, out, tiny_model_path)
    assert res.totals["skipped"] == 3 and res.totals["files"] == 3 and res.workers == 0  # no Ray job
    assert {rel: (out / rel).stat().st_mtime_ns for rel in expected} == stamp

    res = _run(photos, out, tiny_model_path, overwrite=True)
    assert res.totals["ok"] == 2 and res.totals["no_face"] == 1 and res.totals["skipped"] == 0
    assert all((out / rel).stat().st_mtime_ns != stamp[rel] for rel in expected)   # redone
    assert _snapshot(out) == expected


def test_a_worker_killed_mid_run_is_restarted_and_every_output_is_complete(
        ray_local, photos, expected, tiny_model_path, tmp_path):
    marker = tmp_path / "killed-once"

    def make_anonymizer():
        """The real Anonymizer, but this worker process SIGKILLs itself at its third face
        call the first time round (after earlier outputs were written)."""
        from identitydp_fast.anonymizer import Anonymizer

        inner, calls = Anonymizer(model=tiny_model_path), []

        class DiesOnce:
            epsilon = inner.epsilon

            def anonymize(self, rgb, key=None):
                calls.append(1)
                if len(calls) == 3:
                    try:
                        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    except FileExistsError:
                        pass
                    else:
                        os.kill(os.getpid(), signal.SIGKILL)
                return inner.anonymize(rgb, key=key)

        return DiesOnce()

    out = tmp_path / "out"
    res = _run(photos, out, tiny_model_path, make_anonymizer=make_anonymizer,
               report=tmp_path / "r.parquet")
    assert marker.exists(), "the worker was never killed"
    assert res.error is None and res.totals["ok"] == 2 and res.totals["failed"] == 1
    assert _snapshot(out) == expected      # complete, identical, no temporary file left
    from identitydp_fast.io import dataset_report

    _, table = dataset_report.read(tmp_path / "r.parquet")
    assert sorted(table.column("rel").to_pylist()) == sorted([*expected, "corrupt.jpg"])  # once each
    assert len(set(table.column("worker").to_pylist())) == 2   # rows from before and after the restart


def test_unwritable_out_fails_before_any_work_with_one_message(ray_local, s3, photos, tiny_model_path,
                                                               tmp_path, capsys, monkeypatch):
    from identitydp_fast.io import dataset

    def no_ray(*a, **k):
        raise AssertionError("a Ray job was started")

    monkeypatch.setattr(dataset, "_connect", no_ray)
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        out = ro / "out"
    elif Path("/proc/self").is_dir():
        out = Path("/proc/identitydp-test-out")   # root writes through mode bits; /proc refuses
    else:
        pytest.skip("running as root without a read-only /proc")
    _, url = s3
    cases = [(str(out), "--out"), ("s3://no-such-bucket/out", "--out"),
             (str(photos / "sub" / "anon"), "lies inside the input")]
    for target, says in cases:
        code = main(["anonymize-dataset", str(photos), "--out", target, "--model", tiny_model_path,
                     "--s3-endpoint", url, "--quiet"])
        printed = capsys.readouterr()
        assert code == 2 and printed.out == "", printed
        lines = printed.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("identitydp anonymize-dataset: error: "), lines
        assert says in lines[0], lines[0]
    assert not (photos / "sub" / "anon").exists()
