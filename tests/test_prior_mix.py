"""The prior-256 model (reference/prior_mix.py, models/prior_weights.py) and the blend steps
it uses (pipeline/blend.py realign_rendered, match_colour)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from identitydp_fast.models import mobile_stylegan as spec
from identitydp_fast.models.prior_weights import load_mix_generator, save_mix_generator
from identitydp_fast.pipeline.align import PRIOR_EYES_Y, crop_template
from identitydp_fast.pipeline.attributes import gaussian_blur
from identitydp_fast.pipeline.blend import antialias_for_paste, match_colour, paste_mask, realign_rendered
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
    assert model.config.id_blocks == (1, 2, 3)
    assert ids == [spec.style_index(b, k) for b in (1, 2, 3) for k in ("up", "conv1", "conv2")]
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


def test_antialias_blurs_only_crops_pasted_smaller():
    g = torch.Generator().manual_seed(9)
    px = torch.rand(2, 40, 40, 3, generator=g) * 255
    mats = torch.tensor([[[0.5, 0, 3], [0, 0.5, 4]], [[1.2, 0, 0], [0, 1.2, 0]]], dtype=torch.float64)
    out = antialias_for_paste(px, mats)
    want = gaussian_blur(px[:1].permute(0, 3, 1, 2), 0.5 * 3 ** 0.5)[0].permute(1, 2, 0)
    torch.testing.assert_close(out[0], want, rtol=0, atol=1e-4)
    assert torch.equal(out[1], px[1])


def test_realign_rendered_moves_a_shifted_face_back_onto_the_template(prior):
    """A prior face drawn at the template, then shifted and scaled inside its crop by a
    known map: after realign_rendered dlib finds its landmarks back on the template (to
    within dlib's own landmark noise, ~1.5 px at 256), far off before."""
    from identitydp_fast.pipeline.detect import detect_faces

    g = torch.Generator().manual_seed(21)
    with torch.no_grad():
        w = prior.truncate(prior.mapping(torch.randn(3, 512, generator=g)), 0.6)
        faces = ((prior.render256(w).clamp(-1, 1) + 1) * 127.5)          # (3, 3, 256, 256)
    template = crop_template(256, PRIOR_EYES_Y)
    moves = [(9.0, -6.0, 1.0), (-7.0, 8.0, 1.07), (0.0, 5.0, 0.94)]
    shifted = []
    for i, (dx, dy, s) in enumerate(moves):
        c = 127.5   # out(q) = face(B q): B scales by 1/s about the centre and shifts by -(dx, dy)/s
        b = torch.tensor([[[1 / s, 0, c - (c + dx) / s], [0, 1 / s, c - (c + dy) / s]]])
        shifted.append(warp_affine(faces[i:i + 1].permute(0, 2, 3, 1).contiguous(), b, 256, 256))
    pixels = torch.cat(shifted).permute(0, 2, 3, 1)

    def error(px):
        img = torch.floor(px + 0.5).clamp(0, 255).to(torch.uint8).numpy()
        return max(float(np.abs(detect_faces(im, "hog", 0)[0].landmarks - template.numpy()).mean())
                   for im in img)

    before, after = error(pixels), error(realign_rendered(pixels, template))
    assert before > 5 and after < 2.0, (before, after)
    # no face found (a blank crop): returned as it is
    blank = torch.full((1, 256, 256, 3), 128.0)
    assert torch.equal(realign_rendered(blank, template), blank)


PACKAGED = Path(__file__).resolve().parents[1] / "identitydp_fast" / "weights" / "prior-256.safetensors"


@pytest.mark.skipif(not PACKAGED.is_file(), reason="the packaged prior-256 weights are not built "
                    "(tools/fit_prior_mix.py)")
def test_packaged_prior_model_anonymizes_the_astronaut():
    from identitydp_fast import Anonymizer
    from identitydp_fast.pipeline.align import crop_transform
    from identitydp_fast.pipeline.blend import footprint
    from identitydp_fast.pipeline.decode import read_image
    from identitydp_fast.pipeline.detect import detect_faces

    image = read_image(Path(__file__).resolve().parents[1] / "examples" / "astronaut.png")
    anon = Anonymizer("prior-256", backend="reference")
    assert anon.crop_size == 256 and anon.eyes_y == PRIOR_EYES_Y
    # the model's own paste ellipse: paste_scale times the AEI-Net one, on the prior's canvas
    assert torch.equal(anon.paste_mask, paste_mask(256, PRIOR_EYES_Y, anon.model.config.paste_scale))
    assert anon.model.config.paste_scale > 1 and int((anon.paste_mask > 0).sum()) > int(
        (paste_mask(256, PRIOR_EYES_Y) > 0).sum())
    face = max(anon.detect(image), key=lambda f: f.score)
    out, results = anon.anonymize(image, [face], key=bytes(32))
    again, _ = anon.anonymize(image, [face], key=bytes(32))
    np.testing.assert_array_equal(out, again)                     # reproducible with a key
    other, _ = anon.anonymize(image, [face], key=bytes(range(32)))
    assert not np.array_equal(out, other)
    assert results[0].epsilon == 1.0 and results[0].effective_epsilon >= 1.0
    # pixels outside the crop's footprint are untouched; the face changed
    x0, y0, x1, y1 = footprint(crop_transform(face.landmarks[None], 256, PRIOR_EYES_Y)[0], 256,
                               *image.shape[:2])
    outside = np.ones(image.shape[:2], bool)
    outside[y0:y1 + 1, x0:x1 + 1] = False
    assert np.array_equal(out[outside], image[outside])
    l, t, r, b = face.box
    assert np.abs(out[t:b, l:r].astype(int) - image[t:b, l:r]).mean() > 5
    # a face is found again, its eyes and nose where hers were (realigned paste)
    found = detect_faces(out, "hog", 1)
    iod = np.linalg.norm(face.landmarks[0] - face.landmarks[2])
    shift = min(np.abs(f.landmarks - face.landmarks).mean() for f in found) / iod
    assert shift < 0.06, shift
