"""The attribute input (identitydp_fast/pipeline/attributes.py): the aligned crop with its
inner face blurred through a feathered ellipse, and the sigma a model was trained with."""
from __future__ import annotations

import pytest
import torch

from identitydp_fast.pipeline.attributes import (_mask_cpu, default_sigma, degrade_inner_face,
                                                 inner_face_mask, trained_sigma)
from identitydp_fast.reference.aei_net import AEINet

S = 128


def test_degrade_inner_face():
    torch.manual_seed(0)
    x = torch.rand(2, 3, S, S) * 2 - 1
    y = degrade_inner_face(x, 5.0)
    m = inner_face_mask(S)[0, 0]
    outside, core = m == 0, m == 1
    assert outside.float().mean() > 0.5 and core.any()
    assert torch.equal(y[:, :, outside], x[:, :, outside])
    # inside, the noise is blurred away: much lower local variance
    assert y[:, :, core].std() < 0.3 * x[:, :, core].std()
    # the eyes and the mouth region lie in the blurred core
    assert bool(core[51, 48]) and bool(core[51, 79]) and bool(core[86, 64])
    xg = x.clone().requires_grad_()
    degrade_inner_face(xg, 5.0).sum().backward()
    assert torch.isfinite(xg.grad).all()


def test_masks_cached_under_inference_mode_stay_usable_for_training():
    """The Anonymizer degrades crops under inference mode first; the cached mask must
    still serve a later training step with autograd."""
    _mask_cpu.cache_clear()
    with torch.inference_mode():
        degrade_inner_face(torch.zeros(1, 3, 96, 96))
    x = torch.zeros(1, 3, 96, 96, requires_grad=True)
    degrade_inner_face(x).sum().backward()
    assert x.grad is not None


def test_trained_sigma():
    model = AEINet("fast-128")
    assert trained_sigma(model) == default_sigma(128) == 5.0
    model.training_summary = {"hparams": {"degrade_sigma": 3}}
    assert trained_sigma(model) == 3.0
    model.training_summary = {"hparams": {"degrade_sigma": float("nan")}}
    with pytest.raises(ValueError, match="degrade_sigma"):
        trained_sigma(model, "w.safetensors")
