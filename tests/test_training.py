"""Training loop, losses and the augmentation (training/augment.py) on a tiny synthetic crop cache (no shared data)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from identitydp_fast.models.weights import load_model
from identitydp_fast.training.augment import jpeg_like, real_pipeline
from identitydp_fast.training.losses import centred_cosine_loss, d_hinge_loss, g_hinge_loss

S = 128
N = 12


def _write_synthetic_cache(root, n=N, size=S, seed=0):
    """A cache in build_crop_cache's format (lfw set, train split) with smooth random
    'faces' and descriptors that share one strong direction like dlib's."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    crops = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        f = rng.uniform(1, 4, 3)
        ph = rng.uniform(0, 6, 3)
        img = [127 + 100 * np.sin(f[c] * 6 * xx + ph[c]) * np.cos(f[c] * 4 * yy) for c in range(3)]
        crops[i] = np.clip(np.stack(img, -1) + rng.normal(0, 10, (size, size, 3)), 0, 255)
    base = rng.normal(0, 1, 128)
    base /= np.linalg.norm(base)
    d = base[None] + 0.4 * rng.normal(0, 1, (n, 128)) / np.sqrt(128)
    d = 1.4 * d / np.linalg.norm(d, axis=1, keepdims=True)
    np.save(root / "lfw_train_crops.npy", crops)
    np.save(root / "lfw_train_descriptors.npy", d.astype(np.float32))
    entries = [{"path": f"P{i % 4}/P{i % 4}_{i:04d}.jpg", "label": f"P{i % 4}",
                "landmarks": [[85.3, 50.2], [72.7, 51.2], [41.7, 50.3], [54.3, 51.2],
                              [63.5, 74.6]]} for i in range(n)]
    meta = {"format": 1, "set": "lfw", "size": size, "limit": None, "min_images": 5,
            "backend": "synthetic", "skipped_no_face": 0, "skipped_degenerate": 0,
            "splits": {"train": {"count": n, "entries": entries}}}
    (root / "lfw.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from identitydp_fast.training.trainer import Trainer
    torch.set_num_threads(2)
    cache = _write_synthetic_cache(tmp_path_factory.mktemp("cache"))
    out = tmp_path_factory.mktemp("run")
    tr = Trainer(cache, out, batch_size=2, seed=3, p_rec=0.5, p_dp=0.5, log_every=0,
                 verbose=False)
    records = [tr.train_step() for _ in range(3)]
    return tr, records, cache, out


def test_three_steps_finite(trained):
    tr, records, _, _ = trained
    assert tr.step == 3 and len(tr.history) == 3
    for r in records:
        assert set(r) == {"d", "adv", "att", "id", "rec", "perc", "g"}
        assert all(np.isfinite(v) for v in r.values()), r
    # the DP parameters come from the training descriptors
    b = tr.g.bottleneck
    assert float(b.dp_clip) == tr.dp_summary["clip"] > 0
    u = torch.nn.functional.normalize(tr.descriptors.double(), dim=1).mean(0)
    assert torch.allclose(b.dp_center.double(), u, atol=1e-6)
    assert torch.allclose(tr.id_loss.center, b.dp_center)


def test_checkpoint_round_trip(trained, tmp_path):
    from identitydp_fast.training.trainer import Trainer
    tr, _, cache, out = trained
    path = tr.save_checkpoint(tmp_path / "ckpt.pt")
    other = Trainer(cache, tmp_path / "other", batch_size=2, seed=99, p_rec=0.5, p_dp=0.5,
                    log_every=0, verbose=False)
    assert other.resume(path) == 3
    for name in ("g", "ema", "d"):
        a, b = getattr(tr, name).state_dict(), getattr(other, name).state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    assert other.history == tr.history
    # the next step draws the same batch and gives the same losses
    r1, r2 = tr.train_step(), other.train_step()
    assert other.step == tr.step == 4
    for k in r1:
        assert r2[k] == pytest.approx(r1[k], rel=1e-4, abs=1e-5), k


def test_export_and_sample_grid(trained, tmp_path):
    from PIL import Image
    tr, _, _, _ = trained
    path = tr.export(tmp_path / "m.safetensors")
    model = load_model(path)
    s = model.training_summary
    assert s["steps"] == tr.step and s["data"]["train_images"] == N
    assert s["dp"]["clip"] == tr.dp_summary["clip"] and "residual_l1_quantiles" in s["dp"]
    assert set(s["loss_last"]) >= {"d", "g", "id"}
    assert float(model.bottleneck.dp_clip) == tr.dp_summary["clip"]
    x = torch.zeros(1, 3, S, S)
    assert torch.isfinite(model(x, tr.descriptors[:1])).all()
    grid = tr.sample_grid(tmp_path / "grid.png", n=3)
    with Image.open(grid) as im:
        assert im.size == (5 * S, 3 * S)


def test_warm_start_keeps_published_dp_parameters(trained, tmp_path):
    """init_from_weights: G and EMA take the file's weights and its DP centre / clip, even
    when this run's data would give other statistics."""
    from identitydp_fast.training.trainer import Trainer
    tr, _, _, _ = trained
    path = tr.export(tmp_path / "m.safetensors", dtype=torch.float32)
    (tmp_path / "c2").mkdir()
    other_cache = _write_synthetic_cache(tmp_path / "c2", seed=7)
    other = Trainer(other_cache, tmp_path / "run2", batch_size=2, seed=1, log_every=0,
                    verbose=False)
    assert not torch.equal(other.g.bottleneck.dp_center, tr.ema.bottleneck.dp_center)
    other.init_from_weights(path)
    for k, v in tr.ema.state_dict().items():
        assert torch.equal(other.g.state_dict()[k], v), k
        assert torch.equal(other.ema.state_dict()[k], v), k
    assert torch.equal(other.id_loss.center, tr.ema.bottleneck.dp_center.float())
    assert other.dp_summary == tr.dp_summary
    assert np.isfinite(other.train_step()["g"])
    assert other.summary()["init"]["from"] == str(path)


def test_gpu_pack_round_trip(tmp_path):
    """tools/gpu_data.py: pack under a byte budget, unpack into a cache CropDataset reads."""
    import importlib.util
    from pathlib import Path

    from identitydp_fast.training.data import CropDataset
    spec = importlib.util.spec_from_file_location(
        "gpu_data", Path(__file__).resolve().parents[1] / "tools" / "gpu_data.py")
    gpu_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_data)
    (tmp_path / "cache").mkdir()
    cache = _write_synthetic_cache(tmp_path / "cache")
    full = gpu_data.pack(cache, tmp_path / "p.npz", max_mib=10)
    assert full["packed"] == N and full["mib"] < 10
    small = gpu_data.pack(cache, tmp_path / "s.npz", max_mib=0.1)
    assert 0 < small["packed"] < N and (tmp_path / "s.npz").stat().st_size <= 0.1 * 2**20
    counts = gpu_data.unpack(tmp_path / "p.npz", tmp_path / "out")
    assert counts == {"lfw": N}
    a, b = CropDataset(cache, "train"), CropDataset(tmp_path / "out", "train")
    assert len(b) == N
    order = {p: i for i, p in enumerate(a.paths)}
    for j in range(N):
        i = order[b.paths[j]]
        ca, da, _ = a[i]
        cb, db, _ = b[j]
        assert torch.equal(da, db)
        # JPEG q90 4:4:4: close to the original crop, not bit-identical
        assert (ca.float() - cb.float()).abs().mean() < 6
    with pytest.raises(ValueError, match="not a"):
        np.savez(tmp_path / "bad.npz", meta=np.frombuffer(b'{"format": "x"}', np.uint8))
        gpu_data.unpack(tmp_path / "bad.npz", tmp_path / "o2")


def test_real_pipeline_differentiable_and_reproducible():
    x = (torch.rand(3, 3, S, S) * 2 - 1).requires_grad_()
    y1 = real_pipeline(x, torch.Generator().manual_seed(1), p_jpeg=1.0)
    y2 = real_pipeline(x, torch.Generator().manual_seed(1), p_jpeg=1.0)
    assert torch.equal(y1, y2) and y1.shape == x.shape
    assert y1.min() >= -1 and y1.max() <= 1
    y1.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # JPEG-like quantisation at high quality is close to the input
    z = x.detach().clamp(-0.9, 0.9)
    assert (jpeg_like(z, 95) - z).abs().mean() < 0.03


def test_identity_loss_zero_and_differentiable(trained):
    tr, _, _, _ = trained
    e = tr.descriptors[:4]
    mu = tr.g.bottleneck.dp_center
    loss = centred_cosine_loss(e, e, mu)
    assert torch.allclose(loss, torch.zeros(4), atol=1e-6)
    assert (centred_cosine_loss(e, e.roll(1, 0), mu) > 1e-3).all()
    # through the image path: the output's own descriptor gives ~0, and gradients flow
    y = (torch.rand(2, 3, S, S) * 2 - 1).requires_grad_()
    own = tr.id_loss.embed(y).detach()
    assert tr.id_loss(y, own).item() < 1e-5
    tr.id_loss(y, e[:2]).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_hinge_losses():
    zeros = [torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 2, 2)]
    assert float(d_hinge_loss(zeros, zeros)) == pytest.approx(4.0)
    assert float(g_hinge_loss([z + 1 for z in zeros])) == pytest.approx(-2.0)
