"""The prior-based generator (reference/prior_aad.py): AAD starts as the identity map, the
prior stays frozen, W+ takes the identity layers from the mapper, shapes and errors."""
from __future__ import annotations

import pytest
import torch

from identitydp_fast.models import mobile_stylegan as spec
from identitydp_fast.reference.mobile_stylegan import load_prior
from identitydp_fast.reference.prior_aad import AADInjection, PriorAADConfig, PriorAADGenerator


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return PriorAADGenerator(PriorAADConfig(), load_prior())


@pytest.mark.parametrize("c_h,c_f,size", [(5, 3, 7), (64, 32, 16)])
def test_aad_injection_is_the_identity_until_trained(c_h, c_f, size):
    aad = AADInjection(c_h, c_f, size).double()
    h = torch.randn(3, c_h, size, size, dtype=torch.float64) * 3 + 1
    f = torch.randn(3, c_f, size, size, dtype=torch.float64)
    torch.testing.assert_close(aad(h, f), h, rtol=0, atol=1e-12)
    with torch.no_grad():
        aad.gamma_beta.bias.normal_()
    assert (aad(h, f) - h).abs().max() > 1e-3


def test_identity_layers_come_from_the_mapper(generator):
    g = generator
    style = torch.randn(2, spec.STYLE_DIM)
    a, b = torch.randn(2, 128), torch.randn(2, 128)
    wa, wb = g.styles(style, a), g.styles(style, b)
    ids = list(g.cfg.id_style_indices())
    assert ids == list(range(spec.style_index(2, "up"), spec.style_index(3, "conv2") + 1))
    others = [i for i in range(spec.N_STYLES) if i not in ids]
    torch.testing.assert_close(wa[:, others], wb[:, others], rtol=0, atol=0)
    assert (wa[:, ids] - wb[:, ids]).abs().amax() > 1e-4


def test_forward_shapes_gradients_and_a_frozen_prior(generator):
    g = generator.train()
    attr = torch.rand(1, 3, 256, 256) * 2 - 1
    out = g(attr, torch.randn(1, 128))
    assert out.shape == (1, 3, 256, 256) and torch.isfinite(out).all()
    out.mean().backward()
    assert all(p.grad is None for p in g.prior.parameters())
    assert not any(p is q for p in g.trainable() for q in g.prior.parameters())
    assert g.encoder.levels[0][0].weight.grad is not None
    assert not g.prior.training


def test_bad_inputs_are_named(generator):
    with pytest.raises(ValueError, match=r"attr must be \(N, 3, 256, 256\)"):
        generator(torch.zeros(1, 3, 128, 128), torch.zeros(1, 128))
    with pytest.raises(ValueError, match=r"identity must be \(2, 128\)"):
        generator(torch.zeros(2, 3, 256, 256), torch.zeros(2, 64))
