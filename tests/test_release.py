"""The release stage (identitydp_fast/pipeline/release.py): privatise with the model's
public DP parameters, then to_typical_identity, the post-processing that moves a released
identity vector onto the shell of typical identities; the records; its use by the
Anonymizer."""
from __future__ import annotations

import pytest
import torch

from identitydp_fast.pipeline.release import (check_identities, privatise, release, release_faces,
                                              to_typical_identity, typical_residual_norm)
from identitydp_fast.privacy.ledger import ReleaseLedger
from identitydp_fast.reference.aei_net import AEINet


@pytest.fixture(scope="module")
def bottleneck():
    gen = torch.Generator().manual_seed(0)
    shared = torch.randn(128, generator=gen)
    desc = 2.5 * shared / shared.norm() + 0.12 * torch.randn(500, 128, generator=gen)
    model = AEINet("fast-128").eval()
    model.bottleneck.set_identity_statistics(desc, clip=5.0)
    return model.bottleneck, desc


def test_typical_norm_matches_training_spread(bottleneck):
    b, desc = bottleneck
    u = torch.nn.functional.normalize(desc.double(), dim=1)
    rms = ((u - u.mean(0)) ** 2).sum(1).mean().sqrt()
    # input_std is the unbiased std: sqrt(M / (M - 1)) = 1 + 1e-3 above the biased rms
    assert typical_residual_norm(b) == pytest.approx(float(rms) * (500 / 499) ** 0.5, rel=1e-6)


def test_far_vectors_are_shrunk_to_rho_and_near_ones_kept(bottleneck):
    b, desc = bottleneck
    mu, rho, r = b.dp_center.double(), typical_residual_norm(b), float(b.dp_output_norm)
    gen = torch.Generator().manual_seed(1)
    far = torch.randn(7, 128, generator=gen)                     # random directions
    out = to_typical_identity(b, far).double()
    assert torch.allclose(out.norm(dim=1), torch.full((7,), r, dtype=torch.float64), rtol=1e-6)
    u = out / out.norm(dim=1, keepdim=True)
    assert torch.allclose((u - mu).norm(dim=1), torch.full((7,), rho, dtype=torch.float64),
                          rtol=1e-5)
    # the part orthogonal to the centre keeps its direction
    mu_hat = mu / mu.norm()
    def orth(x):
        x = x.double() - (x.double() @ mu_hat)[:, None] * mu_hat
        return torch.nn.functional.normalize(x, dim=1)
    assert torch.allclose(orth(out), orth(far), atol=1e-6)
    # a vector already within rho of the centre comes back unchanged (up to its norm)
    near = (mu + 0.5 * rho * torch.nn.functional.normalize(torch.randn(3, 128, generator=gen,
                                                                     dtype=torch.float64), dim=1))
    back = to_typical_identity(b, near.float() * 3.0).double()
    assert torch.allclose(back / r, near / near.norm(dim=1, keepdim=True), atol=1e-6)


def test_release_is_privatise_then_postprocessing(bottleneck):
    b, desc = bottleneck
    raw, r1 = release(b, desc[:4], 1.0, key=bytes(32), typical=False)
    typ, r2 = release(b, desc[:4], 1.0, key=bytes(32))
    priv, r3 = privatise(b, desc[:4], 1.0, key=bytes(32))
    assert torch.equal(raw, priv)
    assert torch.allclose(typ, to_typical_identity(b, priv))
    assert r1.effective_epsilon == r2.effective_epsilon == r3.effective_epsilon
    # at epsilon 1 the noise dominates: the raw release is far outside the shell
    mu, rho = b.dp_center, typical_residual_norm(b)
    far = (torch.nn.functional.normalize(raw, dim=1) - mu).norm(dim=1)
    assert bool((far > 1.5 * rho).all())


def test_anonymizer_uses_it(tiny_model_path):
    import numpy as np

    from identitydp_fast import Anonymizer
    from identitydp_fast.pipeline.decode import read_image
    from pathlib import Path
    img = read_image(Path(__file__).resolve().parents[1] / "examples" / "astronaut.png")[40:220, 130:310]
    a = Anonymizer(tiny_model_path, epsilon=1.0, min_score=0.5)
    raw = Anonymizer(tiny_model_path, epsilon=1.0, min_score=0.5, typical_identity=False)
    faces = a.detect(img)
    va = a.release_identities(img, faces, key=bytes(32))
    vr = raw.release_identities(img, faces, key=bytes(32))
    assert torch.allclose(va, to_typical_identity(a.model.bottleneck, vr))
    out, res = a.render(img, faces, va)        # the ledger knows the post-processed vector
    assert res[0].epsilon == 1.0 and np.isfinite(res[0].effective_epsilon)


def test_release_faces_records_in_the_ledger(bottleneck):
    b, desc = bottleneck
    ledger = ReleaseLedger()
    vectors, rec = release_faces(b, desc[:3], 10.0, bytes(32), "reference", ledger=ledger)
    assert vectors.shape == (3, 128) and vectors.dtype == torch.float32 and not vectors.is_cuda
    assert rec.epsilon == 10.0 and rec.key_supplied and len(ledger) == 3
    assert ledger.lookup(vectors) == [rec] * 3
    empty, none = release_faces(b, desc[:0], 10.0, None, "reference", ledger=ledger)
    assert empty.shape == (0, 128) and none is None and len(ledger) == 3


def test_check_identities():
    assert check_identities([[1.0] * 4], 1, 4).dtype == torch.float32
    assert check_identities(torch.empty(0, 4), 0, 4).shape == (0, 4)
    with pytest.raises(ValueError, match="shape"):
        check_identities(torch.ones(2, 4), 1, 4)
    with pytest.raises(ValueError, match="all-zero"):
        check_identities(torch.zeros(1, 4), 1, 4)
    with pytest.raises(TypeError):
        check_identities("x", 1, 4)
