"""Evaluation metrics (synthetic data with known answers) and a tiny harness run on
held-out LFW people (skipped without ../shared/data)."""
import json
import math

import numpy as np
import pytest

from identitydp_fast.io.shared_data import default_data_root

from identitydp_fast.evaluation import metrics as M


def test_rank1_perfect_and_excluded_self():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 128)) * 10
    gallery = np.repeat(centres, 3, axis=0) + rng.normal(size=(12, 128)) * 0.01
    glabels = np.repeat(np.arange(4), 3)
    probes = gallery[[0, 3, 6, 9]]               # each probe IS a gallery entry ...
    assert M.rank1_identification(probes, np.arange(4), gallery, glabels,
                                  exclude=[0, 3, 6, 9]) == 1.0   # ... excluded: still found
    # with its own entry excluded and no other image of that person: the probe must miss
    assert M.rank1_identification(probes[:1], [0], gallery[[0, 3]], [0, 1], exclude=[0]) == 0.0


def test_rank1_chance():
    rng = np.random.default_rng(1)
    n = 50
    gallery = rng.normal(size=(n, 128))
    labels = np.arange(n)
    probes = rng.normal(size=(2000, 128))          # unrelated to the gallery
    plabels = rng.integers(0, n, 2000)
    r = M.rank1_identification(probes, plabels, gallery, labels)
    assert M.chance_rank1(labels) == pytest.approx(1 / n)
    assert abs(r - 1 / n) < 0.015


def test_rank1_checks_shapes():
    with pytest.raises(ValueError):
        M.rank1_identification(np.zeros((2, 4)), [0], np.zeros((3, 4)), [0, 1, 2])
    with pytest.raises(ValueError):
        M.rank1_identification(np.zeros((1, 4)), [0], np.zeros((1, 4)), [0], exclude=[0])


def test_verification_and_diversity():
    a = np.zeros((4, 128))
    b = np.zeros((4, 128))
    b[:, 0] = [0.0, 0.59, 0.61, 2.0]
    assert M.verification_rate(a, b) == 0.5
    assert M.diversity(a, a) == 0.0
    assert M.diversity(a, b) == pytest.approx(np.mean([0.0, 0.59, 0.61, 2.0]))


def test_iou_cases():
    assert M.box_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert M.box_iou((0, 0, 9, 9), (10, 10, 19, 19)) == 0.0
    assert M.box_iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)
    assert M.box_iou((0, 0, 9, 9), (0, 0, 4, 9)) == pytest.approx(0.5)
    assert M.detected((0, 0, 9, 9), [(50, 50, 60, 60), (1, 0, 9, 9)])
    assert not M.detected((0, 0, 9, 9), [(0, 0, 4, 9)])          # IoU exactly 0.5: not > 0.5
    assert not M.detected((0, 0, 9, 9), [])
    assert M.best_match((0, 0, 9, 9), []) == (-1, 0.0)


def test_landmark_shift():
    lm = np.array([[70.0, 50], [60, 50], [30, 50], [40, 50], [50, 70]])
    assert M.interocular(lm) == pytest.approx(30.0)   # eye centres at x = 65 and 35
    assert M.landmark_shift(lm, lm) == 0.0
    assert M.landmark_shift(lm, lm + [3.0, 0.0]) == pytest.approx(0.1)
    assert M.landmark_shift(lm, lm * 2 - lm.mean(0)) > 0


def test_psnr():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert M.psnr(a, a) == math.inf
    b = a.astype(np.int16)
    b[:, :15] = np.clip(b[:, :15] + 10, 0, 255)      # change only the left half
    b = b.astype(np.uint8)
    w = np.zeros((20, 30))
    w[:, 15:] = 1                                       # "outside the face": the right half
    assert M.psnr(a, b, weight=w) == math.inf
    assert M.psnr(a, b) < 40
    c = np.full((4, 4), 100.0)
    assert M.psnr(c, c + 1) == pytest.approx(20 * math.log10(255))
    assert math.isnan(M.psnr(a, b, weight=np.zeros((20, 30))))
    assert M.psnr_mean([math.inf, 40.0]) == 70.0


def _data_root():
    return default_data_root()


def test_tiny_harness(tmp_path):
    root = _data_root()
    if not (root / "lfw_landmarks.csv").is_file() or not (root / "lfw").is_dir():
        pytest.skip(f"shared LFW data not found at {root} (set IDP_DATA): the harness run "
                    "needs ../shared/data/lfw and lfw_landmarks.csv")
    from identitydp_fast.evaluation import evaluate
    res = evaluate(None, ["identity", "blur"], root, n_people=3, n_probe_per_person=1,
                   seed=0, out_dir=tmp_path, log=lambda *a: None)
    ident, blur = res["methods"]["identity"]["clean"], res["methods"]["blur"]["clean"]
    assert res["meta"]["n_probes"] == 3
    assert ident["rank1"] == 1.0 and ident["verify"] == 1.0 and ident["detect"] == 1.0
    assert ident["landmark_shift"] == 0.0 and ident["psnr_out"] == 100.0
    assert ident["rank1"] > blur["rank1"]
    assert blur["verify"] < ident["verify"]
    for f in ("results.md", "results.json", "privacy_utility.png", "samples.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    table = (tmp_path / "results.md").read_text()
    assert "| identity |" in table and "| blur |" in table


def test_evaluate_command(tmp_path, capsys):
    """``identitydp evaluate`` end to end on 2 people with a random (untrained) model: the
    generator rows exist and are computed; a model that cannot load stops with exit 2."""
    root = _data_root()
    if not (root / "lfw_landmarks.csv").is_file() or not (root / "lfw").is_dir():
        pytest.skip(f"shared LFW data not found at {root} (set IDP_DATA)")
    import torch

    from identitydp_fast.cli import main
    from identitydp_fast.models.weights import save_model
    from identitydp_fast.reference.aei_net import AEINet
    torch.manual_seed(0)
    model = AEINet("fast-128").eval()
    desc = 2.5 * torch.nn.functional.normalize(torch.randn(1, 128)) + 0.12 * torch.randn(64, 128)
    model.bottleneck.set_identity_statistics(desc, clip=5.0)
    weights = tmp_path / "m.safetensors"
    save_model(model, weights)
    out = tmp_path / "ev"
    rc = main(["evaluate", "--data", str(root), "--out", str(out), "--people", "2", "--raw-epsilons", "1",
               "--probes", "1", "--gallery-per-person", "3", "--epsilons", "1",
               "--methods", "identity", "--model", str(weights)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert list(res["methods"]) == ["identity", "dp-eps1", "swap", "dp-eps1-raw"]
    dp = res["methods"]["dp-eps1"]["clean"]
    assert 0.0 <= dp["rank1"] <= 1.0 and dp["psnr_out"] == 100.0
    assert "| dp-eps1 |" in capsys.readouterr().out
    rc = main(["evaluate", "--data", str(root), "--out", str(tmp_path / "e2"),
               "--model", str(tmp_path / "missing.safetensors")])
    assert rc == 2
    assert "could not be loaded" in capsys.readouterr().err
