"""The prior-256 model (reference/prior_mix.py, models/prior_weights.py) and the blend steps
it uses (pipeline/blend.py realign_rendered, match_colour)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from identitydp_fast.models import mobile_stylegan as spec
from identitydp_fast.models.prior_weights import load_mix_generator, save_mix_generator
from identitydp_fast.pipeline.align import PRIOR_EYES_Y, crop_template, similarity_transform
from identitydp_fast.pipeline.blend import match_colour, paste_mask, realign_rendered
from identitydp_fast.reference.mobile_stylegan import load_prior
from identitydp_fast.reference.prior_mix import (LinearMap, PriorMixConfig, PriorMixGenerator,
                                                 attribute_features)
from identitydp_fast.reference.warp_affine import warp_affine


@pytest.fixture(scope="module")
def prior():
    return load_prior()


def test_attribute_features_are_block_means():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 3, 96, 96, generator=g) * 2 - 1
    f = attribute_features(x)
    assert f.shape == (3, 3 * 16 * 16 + 32 * 32)
    colour = x.reshape(3, 3, 16, 6, 16, 6).mean(dim=(3, 5)).flatten(1)
    luma = x.mean(1).reshape(3, 32, 3, 32, 3).mean(dim=(2, 4)).flatten(1)
    torch.testing.assert_close(f, torch.cat([colour, luma], 1), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of 32"):
        attribute_features(torch.zeros(1, 3, 100, 100))


def test_linear_map_fit_recovers_a_linear_map():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(301, 37, generator=g, dtype=torch.float64) * 3 + 1
    b = torch.randn(37, 11, generator=g, dtype=torch.float64)
    y = x @ b + 0.5
    m = LinearMap(37, 11).double()
    m.fit(x, y, lam=1e-9)
    torch.testing.assert_close(m(x), y, rtol=0, atol=1e-6)
    m.gain.fill_(2.0)   # gain scales the deviation from the mean output
    torch.testing.assert_close(m(x) - m.y_mean, 2 * (y - y.mean(0)), rtol=0, atol=1e-6)


def _fitted(prior) -> PriorMixGenerator:
    """A PriorMixGenerator with seeded (not fitted) maps and DP statistics."""
    g = torch.Generator().manual_seed(11)
    model = PriorMixGenerator(PriorMixConfig(), prior)
    with torch.no_grad():
        for lm in (model.attribute_encoder.map, model.identity_mapper.map):
            lm.weight.normal_(0, 0.01, generator=g)
            lm.y_mean.copy_(prior.w_avg)
        model.bottleneck.set_identity_statistics(torch.randn(64, 128, generator=g).abs() + 0.1, clip=5.0)
    return model


def test_styles_take_the_identity_w_exactly_on_the_identity_layers(prior):
    model = _fitted(prior)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 256, 256, generator=g) * 2 - 1
    ident = torch.randn(2, 128, generator=g)
    wp = model.styles(x, ident)
    ids = list(model.config.id_style_indices())
    assert ids == [spec.style_index(b, k) for b in (2, 3) for k in ("up", "conv1", "conv2")]
    w_id, w_attr = model.identity_mapper(ident), model.attribute_encoder(x)
    for k in range(spec.N_STYLES):
        torch.testing.assert_close(wp[:, k], w_id if k in ids else w_attr, rtol=0, atol=1e-6)
    # the mapper sees only the direction of the identity vector
    torch.testing.assert_close(model.styles(x, 3.7 * ident), wp, rtol=0, atol=1e-5)
    out = model(x, ident)
    assert out.shape == (2, 3, 256, 256) and bool(torch.isfinite(out).all())
    with pytest.raises(ValueError, match="identity must be"):
        model(x, ident[:1])


def test_weights_file_round_trip_and_errors(prior, tmp_path):
    model = _fitted(prior)
    path = save_mix_generator(tmp_path / "m.safetensors", model, {"hparams": {"degrade_sigma": 10.0}})
    back = load_mix_generator(path)
    assert back.training_summary["hparams"]["degrade_sigma"] == 10.0
    assert back.training_summary["dp"]["clip_l1"] == 5.0
    for name in ("dp_center", "dp_clip", "dp_output_norm", "input_std"):   # stored exactly (float32)
        assert torch.equal(getattr(back.bottleneck, name), getattr(model.bottleneck, name))
    g = torch.Generator().manual_seed(2)
    x, ident = torch.rand(1, 3, 256, 256, generator=g) * 2 - 1, torch.randn(1, 128, generator=g)
    torch.testing.assert_close(back.styles(x, ident), model.styles(x, ident), rtol=1e-3, atol=2e-3)

    with pytest.raises(FileNotFoundError, match="not found"):
        load_mix_generator(tmp_path / "none.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"a": torch.zeros(1)}, str(other), metadata={"format": "something-else"})
    with pytest.raises(ValueError, match="not a prior-256 weights file"):
        load_mix_generator(other)
    state = load_file(str(path))
    state["identity_mapper.map.weight"][0, 0] = float("nan")
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    bad = tmp_path / "nan.safetensors"
    save_file(state, str(bad), metadata=meta)
    with pytest.raises(ValueError, match="NaN or inf in identity_mapper.map.weight"):
        load_mix_generator(bad)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="cut.safetensors"):
        load_mix_generator(cut)
    meta2 = dict(meta, config=json.dumps({**json.loads(meta["config"]), "crop_size": 128}))
    wrong = tmp_path / "wrong.safetensors"
    save_file(load_file(str(path)), str(wrong), metadata=meta2)
    with pytest.raises(ValueError, match="256"):
        load_mix_generator(wrong)


def test_match_colour_recovers_a_constant_offset():
    g = torch.Generator().manual_seed(5)
    crops = torch.rand(2, 3, 64, 64, generator=g) * 1.6 - 0.8
    photo = (crops.permute(0, 2, 3, 1) + 1) * 127.5
    offset = torch.tensor([[12.0, -7.5, 3.25], [-20.0, 0.0, 9.0]]).view(2, 1, 1, 3)
    mask = paste_mask(64)
    out = match_colour(photo - offset, crops, mask)
    torch.testing.assert_close(out, photo.clamp(0, 255), rtol=0, atol=1e-3)


def test_realign_rendered_undoes_a_known_shift_of_the_generated_face(prior):
    """A prior face drawn at the template, then shifted by (dx, dy) and scaled inside its crop:
    the realigned map must send its landmarks back onto the photo's (to within dlib's own
    landmark noise, ~1 px at 256)."""
    g = torch.Generator().manual_seed(21)
    with torch.no_grad():
        w = prior.truncate(prior.mapping(torch.randn(3, 512, generator=g)), 0.6)
        faces = ((prior.render256(w).clamp(-1, 1) + 1) * 127.5)          # (3, 3, 256, 256)
    template = crop_template(256, PRIOR_EYES_Y)
    photo_map = torch.tensor([[[0.9, -0.1, 40.0], [0.1, 0.9, 25.0]]], dtype=torch.float64).repeat(3, 1, 1)
    moves = [(6.0, -4.0, 1.0), (-5.0, 7.0, 1.06), (0.0, 0.0, 0.95)]
    shifted, expected = [], []
    for i, (dx, dy, s) in enumerate(moves):
        # generated crop pixel q shows face point p = A^-1 q: A = scale s about the centre, then shift
        c = 127.5
        a = torch.tensor([[s, 0, (1 - s) * c + dx], [0, s, (1 - s) * c + dy]], dtype=torch.float64)
        inv = torch.linalg.inv(torch.cat([a, torch.tensor([[0, 0, 1.0]], dtype=torch.float64)]))[:2]
        img = faces[i:i + 1].permute(0, 2, 3, 1).contiguous()
        shifted.append(warp_affine(img, inv.unsqueeze(0), 256, 256))   # out(q) = face(A^-1 q)
        moved = template @ a[:, :2].T + a[:, 2]                         # where the landmarks went
        expected.append(similarity_transform(moved, (template @ photo_map[i, :, :2].T
                                                     + photo_map[i, :, 2]).unsqueeze(0))[0])
    pixels = torch.cat(shifted).permute(0, 2, 3, 1)
    new = realign_rendered(pixels, photo_map, template)
    for i in range(3):
        moved = template @ torch.tensor([[moves[i][2], 0], [0, moves[i][2]]], dtype=torch.float64) \
            + torch.tensor(moves[i][:2], dtype=torch.float64) + (1 - moves[i][2]) * 127.5
        got = moved @ new[i, :, :2].T + new[i, :, 2]
        want = template @ photo_map[i, :, :2].T + photo_map[i, :, 2]
        assert float((got - want).norm(dim=1).mean()) < 2.5, (i, got, want)
    # a correction beyond the bounds (the predictor got no face) keeps the given map
    blank = torch.full((1, 256, 256, 3), 128.0)
    assert torch.equal(realign_rendered(blank, photo_map[:1], template), photo_map[:1])
