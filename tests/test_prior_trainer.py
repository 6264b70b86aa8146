"""The prior generator's trainer (training/prior_trainer.py): the prior template, a W+
regression step that lowers its loss on a fixed batch, and the checkpoint round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from identitydp_fast.pipeline.align import crop_template
from identitydp_fast.reference.mobile_stylegan import load_prior
from identitydp_fast.training.prior_trainer import PRIOR_EYES_Y, PriorTrainer, prior_template


def test_prior_template_is_the_crop_template_with_the_eyes_lower():
    t, c = prior_template(256), crop_template(256)
    torch.testing.assert_close(t[:, 0], c[:, 0])
    eyes_y = (t[:4, 1].mean() + 0.5) / 256
    assert abs(float(eyes_y) - PRIOR_EYES_Y) < 1e-9


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Two chunks of 3 prior faces each (chunk 0 is held out by the trainer)."""
    folder = tmp_path_factory.mktemp("prior_cache")
    prior = load_prior()
    g = torch.Generator().manual_seed(5)
    for c in range(2):
        with torch.no_grad():
            w = prior.truncate(prior.mapping(torch.randn(3, 512, generator=g)), 0.7)
            target = prior.render256(w)
        np.savez(folder / f"chunk{c:04d}.npz", w=w.numpy(), target=target.numpy().astype(np.float16))
    return folder


def test_regress_steps_and_checkpoint_round_trip(cache, tmp_path):
    ckpt = tmp_path / "ck.pt"
    trainer = PriorTrainer(cache, ckpt)
    assert len(trainer.w) == 3  # chunk 0 held out
    losses = [trainer.regress_step()["reg"] for _ in range(3)]
    assert all(np.isfinite(losses))
    trainer.save()
    again = PriorTrainer(cache, ckpt)
    assert again.resume() == 3
    for (n, a), (_, b) in zip(trainer.model.named_parameters(), again.model.named_parameters()):
        if not n.startswith("prior."):  # stored fp16, except the bottleneck (exact)
            want = a.detach() if n.startswith("bottleneck.") else a.detach().half().float()
            torch.testing.assert_close(want, b.detach(), rtol=0, atol=0)


def test_missing_cache_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="target chunks"):
        PriorTrainer(tmp_path, tmp_path / "ck.pt")
