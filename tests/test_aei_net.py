"""The reference AEI-Net (identitydp_fast/reference/aei_net.py, bottleneck.py) and its
configs (identitydp_fast/models/config.py): shapes of both configs, float64 vs float32,
gradients to every parameter, the identity and attribute paths both used, the DP release."""
from __future__ import annotations

import copy
import math
import time

import pytest
import torch
import torch.nn.functional as F

from identitydp_fast.models.config import AEINetConfig, config_names, get_config
from identitydp_fast.reference import aad
from identitydp_fast.reference.aei_net import AADLayer, AEINet, PatchDiscriminator
from identitydp_fast.reference.bottleneck import IdentityBottleneck

TINY = AEINetConfig(name="tiny", crop_size=32, encoder_channels=(8, 16, 16),
                    generator_channels=(32, 16, 8, 8), modulation_kernels=(3, 3, 1, 1))


def _inputs(config: AEINetConfig, n: int, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    s = config.crop_size
    x = (torch.rand(n, 3, s, s, generator=g, dtype=dtype) * 2 - 1)
    v = torch.randn(n, config.identity_dim, generator=g, dtype=dtype) * 0.1 + 0.12
    return x, v


@pytest.fixture(scope="module")
def fast():
    torch.manual_seed(0)
    return AEINet("fast-128").eval()


# ---- configs -----------------------------------------------------------------------
def test_registry_and_json_round_trip():
    assert config_names()[0] == "fast-128" and "paper-256" in config_names()
    for name in config_names():
        c = get_config(name)
        assert AEINetConfig.from_json(c.to_json()) == c
    assert get_config() is get_config("fast-128")
    p = get_config("paper-256")
    assert p.crop_size == 256 and p.depth == 7 and p.encoder_channels[0] == 32
    assert p.encoder_channels[-1] == 1024 and p.num_levels == 8 and p.start_size == 2
    f = get_config("fast-128")
    assert f.encoder_channels == (16, 32, 64, 128, 128) and f.start_size == 4
    assert f.generator_channels[0] == 256 and f.generator_channels[-1] == 16
    with pytest.raises(ValueError, match="unknown AEI-Net config 'nope'"):
        get_config("nope")


def test_config_checks_name_the_field():
    with pytest.raises(ValueError, match="generator_channels needs L \\+ 1 = 4"):
        TINY.replace(generator_channels=(8, 8))
    with pytest.raises(ValueError, match="modulation_kernels"):
        TINY.replace(modulation_kernels=(3, 3, 5, 1))
    with pytest.raises(ValueError, match="divisible by 2\\^L"):
        TINY.replace(crop_size=36)
    with pytest.raises(ValueError, match="unknown AEINetConfig fields \\['bogus'\\]"):
        AEINetConfig.from_dict({**TINY.to_dict(), "bogus": 1})


# ---- shapes --------------------------------------------------------------------------
def test_fast128_shapes_and_range(fast):
    cfg = fast.config
    x, v = _inputs(cfg, 2)
    with torch.no_grad():
        z = fast.attributes(x)
        y = fast(x, v)
    assert [tuple(t.shape[1:]) for t in z] == [
        (a, s, s) for a, s in zip(cfg.attribute_channels(), cfg.level_sizes())]
    assert cfg.level_sizes() == (4, 8, 16, 32, 64, 128)
    assert y.shape == (2, 3, 128, 128) and y.dtype == torch.float32
    assert bool(torch.isfinite(y).all()) and float(y.abs().max()) <= 1.0
    with pytest.raises(ValueError, match=r"crop must have shape \(N, 3, 128, 128\)"):
        fast(torch.zeros(1, 3, 64, 64), v[:1])
    with pytest.raises(ValueError, match="identity must be"):
        fast(x, v[:1])


def test_paper256_shapes_batch1():
    """paper-256 (~156M parameters, ~66 GFLOPs): built and run once at batch 1 (~1-2 s here)."""
    torch.manual_seed(0)
    m = AEINet("paper-256").eval()
    cfg = m.config
    assert cfg.level_sizes() == (2, 4, 8, 16, 32, 64, 128, 256)
    assert len(m.generator.blocks) == 8
    x, v = _inputs(cfg, 1)
    t = time.perf_counter()
    with torch.no_grad():
        z = m.attributes(x)
        y = m.generator(z, m.bottleneck(v))
    assert time.perf_counter() - t < 30
    assert [t.shape[1] for t in z] == list(cfg.attribute_channels())
    assert [t.shape[-1] for t in z] == list(cfg.level_sizes())
    assert y.shape == (1, 3, 256, 256) and bool(torch.isfinite(y).all())


# ---- numerics --------------------------------------------------------------------------
def test_float64_agrees_with_float32(fast):
    x, v = _inputs(fast.config, 2)
    with torch.no_grad():
        y32 = fast(x, v)
        m64 = copy.deepcopy(fast).double()
        y64 = m64(x.double(), v.double())
    assert y64.dtype == torch.float64
    err = float((y32.double() - y64).abs().max())
    assert err < 1e-4, err


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_gradients_reach_every_parameter(norm):
    """A training-style step (train mode, reconstruction + adversarial-like loss):
    every parameter of encoder, bottleneck and generator gets a finite, non-zero grad."""
    torch.manual_seed(1)
    m = AEINet(TINY.replace(encoder_norm=norm)).train()
    d = PatchDiscriminator(channels=8, layers=2, scales=2)
    x, v = _inputs(TINY, 3, seed=1)
    y = m(x, v)
    loss = F.mse_loss(y, x) - sum(o.mean() for o in d(y))
    loss.backward()
    for name, p in list(m.named_parameters()) + list(d.named_parameters()):
        assert p.grad is not None, f"{name} got no gradient"
        assert bool(torch.isfinite(p.grad).all()), f"{name} has a non-finite gradient"
        assert float(p.grad.abs().max()) > 0, f"{name} has an all-zero gradient"


def test_identity_pathway_changes_output(fast):
    x, v = _inputs(fast.config, 2)
    v2 = torch.roll(v, 1, dims=1) * 0.5 + torch.randn_like(v) * 0.1
    with torch.no_grad():
        y1, y2 = fast(x, v), fast(x, v2)
        y3 = fast(x, 3.0 * v)  # the bottleneck puts v on the sphere first: scale is ignored
    assert float((y1 - y2).abs().mean()) > 1e-3
    assert float((y1 - y3).abs().max()) < 1e-5


def test_attribute_pathway_changes_output(fast):
    x, v = _inputs(fast.config, 2)
    x2, _ = _inputs(fast.config, 2, seed=5)
    with torch.no_grad():
        assert float((fast(x, v) - fast(x2, v)).abs().mean()) > 1e-3


def test_aad_layer_is_the_reference_math():
    torch.manual_seed(2)
    layer = AADLayer(6, 4, 3).double()
    h = torch.randn(2, 6, 5, 5, dtype=torch.float64)
    z = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    gi, bi = torch.randn(2, 6, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64)
    h_hat = aad.instance_norm(h)
    ga, ba = layer.att(z).chunk(2, dim=1)
    want = aad.aad_blend_relu(h_hat, ga, ba, gi, bi, layer.mask(h_hat))
    torch.testing.assert_close(layer(h, z, (gi, bi)), want, rtol=0, atol=0)


# ---- bottleneck ----------------------------------------------------------------------------
def test_bottleneck_one_gemm_layout_and_whitening():
    torch.manual_seed(3)
    b = IdentityBottleneck([4, 6], identity_dim=8).double()
    v = torch.randn(3, 8, dtype=torch.float64)
    pairs = b(v)
    assert [(g.shape, be.shape) for g, be in pairs] == [((3, 4), (3, 4)), ((3, 6), (3, 6))]
    packed = b.project(b.whiten(v))
    assert packed.shape == (3, 20)
    torch.testing.assert_close(pairs[1][0], packed[:, 8:14])
    torch.testing.assert_close(pairs[1][1], packed[:, 14:20])
    # whitening: z = (v r / ||v|| - mu) / std
    b.input_mean.fill_(0.1)
    b.input_std.fill_(2.0)
    r = float(b.dp_output_norm)
    want = (v / v.norm(dim=1, keepdim=True) * r - 0.1) / 2.0
    torch.testing.assert_close(b.whiten(v), want)


def test_set_identity_statistics_and_privatise():
    from identitydp_fast.pipeline.release import privatise

    torch.manual_seed(4)
    b = IdentityBottleneck([4], identity_dim=128)
    e = torch.randn(50, 128) * 0.05 + 0.12  # dlib-like: a shared strong direction
    b.set_identity_statistics(e, clip=4.5)
    assert math.isclose(float(b.dp_clip), 4.5)
    assert math.isclose(float(b.dp_output_norm), float(e.norm(dim=1).median()), rel_tol=1e-6)
    z = b.whiten(e)
    assert float(z.mean(dim=0).abs().max()) < 1e-4
    assert float((z.std(dim=0) - 1).abs().max()) < 1e-3
    key = bytes(range(32))
    out1, res1 = privatise(b, e[:3], epsilon=100.0, key=key)
    out2, _ = privatise(b, e[:3], epsilon=100.0, key=key)
    assert out1.shape == (3, 128) and torch.equal(out1, out2)
    torch.testing.assert_close(out1.norm(dim=1), torch.full((3,), float(b.dp_output_norm)))
    assert res1.key_supplied and res1.epsilon == 100.0
    assert math.isclose(res1.sensitivity, 9.0)  # Delta_1 = 2 C
    out3, res3 = privatise(b, e[:3], epsilon=100.0)  # fresh OS key by default
    assert not res3.key_supplied and not torch.equal(out3, out1)
