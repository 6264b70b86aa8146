"""The prior-256 generator on the engine (engine/prior_mix.py) against its reference
(reference/prior_mix.py) on every kernel backend: fresh random attribute inputs and
identities, batch 1 and 3, the packaged weights.

Accuracy rule: the engine's max error against the float64 reference is at most 5x the
float32 reference's own, plus 4 float32 ulps of the largest |output|. Not the op tests'
2x: through five blocks and the head the engine rounds differently (the style folded into
the taps and weights, GEMMs in another order), and the max over 196,608 outputs is an
extreme value; measured over 60 random draws the ratio was 1.05-3.34 (RMS ratio 1.1-2.8),
absolute errors 2e-6 to 7e-6 on outputs of size ~1.3.
"""
from __future__ import annotations

import secrets

import pytest
import torch

from identitydp_fast.pipeline.generate import DEFAULT_MODEL_PATH, Generator, load_model

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(),
                                reason=f"the prior-256 weights {DEFAULT_MODEL_PATH} are not in the tree")


@pytest.fixture(scope="module")
def generators():
    g32, _ = load_model("prior-256", torch.device("cpu"))
    g64, _ = load_model("prior-256", torch.device("cpu"))
    return g32, g64.double()


@pytest.mark.parametrize("batch", [1, 3])
def test_engine_matches_the_reference(batch, kernel, generators):
    from identitydp_fast.engine.prior_mix import EnginePriorMix

    backend, device = kernel
    if backend == "triton" and batch == 3:
        pytest.skip("one batch size is enough under Triton's CPU interpreter (slow)")
    g32, g64 = generators
    gen = torch.Generator().manual_seed(secrets.randbelow(2**31))
    x = torch.rand(batch, 3, 256, 256, generator=gen) * 2 - 1
    identity = torch.nn.functional.normalize(torch.randn(batch, 128, generator=gen), dim=1)
    engine = EnginePriorMix(g32, backend).to(device)
    with torch.inference_mode():
        got = engine(x.to(device), identity.to(device)).cpu().double()
        want = g64(x.double(), identity.double())
        ref32 = g32(x, identity).double()
    assert got.shape == (batch, 3, 256, 256)
    err, ref_err = float((got - want).abs().max()), float((ref32 - want).abs().max())
    assert err <= 5 * ref_err + 2.0**-21 * float(want.abs().max()), (err, ref_err)


def test_the_generator_stage_uses_the_engine_for_prior_models(generators):
    from identitydp_fast.engine.prior_mix import EnginePriorMix

    g32, _ = generators
    assert isinstance(Generator(g32, "cpu", torch.device("cpu")).net, EnginePriorMix)
    assert Generator(g32, "reference", torch.device("cpu")).net is g32


def test_engine_refuses_bad_arguments(generators):
    from identitydp_fast.engine.prior_mix import EnginePriorMix

    g32, _ = generators
    with pytest.raises(ValueError, match="backend"):
        EnginePriorMix(g32, "reference")
    with pytest.raises(ValueError, match="identity must be"):
        EnginePriorMix(g32, "cpu")(torch.zeros(1, 3, 256, 256), torch.zeros(2, 128))


def test_engine_compiles_as_one_graph(generators):
    """torch.compile(fullgraph=True) traces the whole engine (the fused ops are
    torch.library custom ops with fake rules; the epilogue mutates in place) and gives
    the eager engine's output within float32 rounding."""
    from identitydp_fast.engine.prior_mix import EnginePriorMix

    g32, _ = generators
    engine = EnginePriorMix(g32, "cpu")
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    identity = torch.nn.functional.normalize(torch.randn(1, 128), dim=1)
    with torch.inference_mode():
        eager = engine(x, identity)
        compiled = torch.compile(engine, fullgraph=True)(x, identity)
    assert float((compiled - eager).abs().max()) <= 1e-4
