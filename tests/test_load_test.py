"""bench/load_test.py at toy size: threads share one Anonymizer, every result is checked,
the JSON and markdown are written (the real run: bench/gpu_check.sh, or by hand)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("dlib")

REPO = Path(__file__).resolve().parents[1]


def _load_test_module():
    spec = importlib.util.spec_from_file_location("load_test", REPO / "bench" / "load_test.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path):
    return tiny_model_path


def test_load_test_runs_and_checks(tiny_model, tmp_path, capsys):
    lt = _load_test_module()
    rc = lt.main(["--threads", "2", "--requests", "2", "--calls-for-leak", "4", "--megapixels", "0.3",
                  "--lfw", "0", "--model", str(tiny_model), "--out", str(tmp_path)])
    assert rc == 0, capsys.readouterr().out
    rec = json.loads(next(tmp_path.glob("load-*.json")).read_text())
    assert rec["load"]["calls"] == 4 and rec["load"]["failed_checks"] == 0
    lat = rec["load"]["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert rec["leak"]["calls"] == 4 and rec["leak"]["rss_kib_start"] > 0
    assert "| 2 | 4 |" in next(tmp_path.glob("load-*.md")).read_text()


def test_checks_catch_a_wrong_result():
    """The per-call check flags changed background pixels, an unchanged face, a wrong face list."""
    import numpy as np

    from identitydp_fast.pipeline.decode import read_image
    from identitydp_fast.pipeline.detect import detect_faces

    lt = _load_test_module()
    img = read_image(REPO / "examples" / "astronaut.png")
    faces = detect_faces(img)
    exp = lt.Expected("astronaut", img, faces)
    assert exp.problems(img.copy(), faces) == [f"astronaut: face {b} unchanged" for b in exp.boxes]
    out = img.copy()
    for (l, t, r, b) in exp.boxes:
        out[t:b + 1, l:r + 1] ^= 0xFF
    assert exp.problems(out, faces) == []
    out[0, 0] ^= 1                                              # a background pixel
    assert exp.problems(out, faces) == ["astronaut: 1 pixel(s) outside the faces changed"]
    assert "faces []" in exp.problems(img, [])[0]
    assert "output (2, 2, 3)" in exp.problems(np.zeros((2, 2, 3), np.uint8), faces)[0]
