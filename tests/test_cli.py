"""The ``identitydp`` command line (identitydp_fast/cli.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from identitydp_fast.cli import main

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"


def test_noise_prints_record(capsys):
    assert main(["noise", "--n", "3", "--epsilon", "5", "--json"]) == 0
    out = capsys.readouterr().out
    record = json.loads(out.strip().splitlines()[-1])
    assert record["epsilon"] == 5.0 and record["rows"] == 3 and record["key_supplied"] is False
    assert "released 3 identity vector(s)" in out


def test_noise_reproducible_with_key_and_safe_output(tmp_path, capsys):
    out = tmp_path / "v.npy"
    key = "ab" * 32
    assert main(["noise", "--n", "2", "--key", key, "--out", str(out)]) == 0
    first = np.load(out)
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        main(["noise", "--n", "2", "--key", key, "--out", str(out)])
    assert main(["noise", "--n", "2", "--key", key, "--out", str(out), "--overwrite"]) == 0
    assert np.array_equal(first, np.load(out))
    assert not list(tmp_path.glob("*.part"))


def test_noise_refuses_to_overwrite_its_input(tmp_path):
    src = tmp_path / "x.npy"
    np.save(src, np.random.rand(2, 8).astype(np.float32))
    with pytest.raises(SystemExit, match="overwrite the input"):
        main(["noise", "--input", str(src), "--out", str(src)])


@pytest.mark.parametrize("argv,match", [
    (["noise", "--epsilon", "-1"], "epsilon must be finite and > 0"),
    (["noise", "--key", "zz"], "hex"),
])
def test_noise_bad_arguments_exit_with_a_message(argv, match):
    with pytest.raises(SystemExit, match=match):
        main(argv)


def test_noise_bad_input_file(tmp_path):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not an array")
    with pytest.raises(SystemExit, match="cannot read"):
        main(["noise", "--input", str(bad)])


def test_identity_on_the_example(capsys, tmp_path):
    pytest.importorskip("dlib")
    try:
        from identitydp_fast.models.files import model_file
        model_file("resnet")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    missing = tmp_path / "missing.png"
    assert main(["identity", str(ASTRONAUT), str(missing), "--epsilon", "1000", "--backend", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "1 face(s)" in out and "dlib distance original -> released" in out  # CenterFace: not the patch
    assert f"{missing}: error" in out


def test_bench_command_writes_a_table(capsys, tmp_path):
    try:
        from identitydp_fast.models.files import model_file
        model_file("resnet")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    out = tmp_path / "bench.json"
    assert main(["bench", "--batch", "1", "--repeats", "2", "--warmup", "1",
                 "--backends", "reference,cpu", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert [r["backend"] for r in record["results"]] == ["reference", "cpu"]
    assert record["results"][0]["speedup_vs_eager_reference"] == 1.0
    assert "x eager reference" in capsys.readouterr().out


def test_bench_backend_specs():
    from identitydp_fast.cli.bench import parse_spec
    assert parse_spec("triton-bf16+graph") == ("triton", torch.bfloat16, True)
    assert parse_spec("cuda") == ("cuda", torch.float32, False)
    assert parse_spec("compile-max") == ("compile-max", torch.float32, False)
    with pytest.raises(ValueError, match="CUDA graphs need a GPU backend"):
        parse_spec("cpu+graph")
    with pytest.raises(ValueError, match="unknown backend spec 'triton-fp64'"):
        parse_spec("triton-fp64")


def test_bench_rejects_unknown_backend(capsys):
    assert main(["bench", "--backends", "tpu", "--repeats", "1", "--warmup", "0"]) == 2
    assert "identitydp bench: error: unknown backend spec 'tpu'" in capsys.readouterr().err
